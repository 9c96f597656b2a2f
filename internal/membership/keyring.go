package membership

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/heraldlb/herald/internal/memberkey"
)

// Keyring is a member's memberlist keys by fingerprint: Primary encrypts
// what it sends; every key of Keys (Primary included, sorted) decrypts
// what it receives.
type Keyring struct {
	Primary string
	Keys    []string
}

// Known reports whether the member published its keyring (speakers of
// the first release do not).
func (k Keyring) Known() bool { return k.Primary != "" }

func (k Keyring) has(fp string) bool { return slices.Contains(k.Keys, fp) }

// keyStep is what one member does next to its keyring: install keys,
// switch the primary, remove keys. waiting names what holds back the part
// of the wanted state that is not done yet ("" when nothing does).
type keyStep struct {
	add     []string
	primary string
	remove  []string
	waiting string
}

// planKeys decides a member's next keyring from the keys it has (cur),
// the keys it is told to have (want, the first to encrypt with) and the
// keyrings the other live members publish (others, by member name). The
// order keeps every member able to read every other at every moment,
// whatever order and timing the members see the Secret change in:
//
//   - a wanted key is installed at once: an extra key costs nothing;
//   - the wanted primary is used only once every other live member has
//     installed it; until then the current primary stays, even when the
//     wanted list no longer names it (a list that replaces the key in one
//     step is still carried out in this order);
//   - a key is removed only when it is not wanted, is not this member's
//     primary, and no other live member still encrypts with it.
//
// A member that publishes no keyring (an older speaker) holds back every
// primary switch: it cannot tell whether it could read the new key.
func planKeys(cur Keyring, want []string, others map[string]Keyring) keyStep {
	var s keyStep
	for _, fp := range want {
		if !cur.has(fp) {
			s.add = append(s.add, fp)
		}
	}
	s.primary = cur.Primary
	if len(want) > 0 && want[0] != cur.Primary {
		var lacking []string
		for name, k := range others {
			if !k.has(want[0]) {
				lacking = append(lacking, name)
			}
		}
		slices.Sort(lacking)
		if len(lacking) == 0 {
			s.primary = want[0]
		} else {
			s.waiting = fmt.Sprintf("key %s becomes primary once these members have it: %v", want[0], lacking)
		}
	}
	for _, fp := range cur.Keys {
		if slices.Contains(want, fp) || fp == s.primary {
			continue
		}
		var users []string
		for name, k := range others {
			if k.Primary == fp {
				users = append(users, name)
			}
		}
		slices.Sort(users)
		if len(users) > 0 {
			if s.waiting == "" {
				s.waiting = fmt.Sprintf("key %s is removed once these members stop encrypting with it: %v", fp, users)
			}
			continue
		}
		s.remove = append(s.remove, fp)
	}
	return s
}

// SetKeys makes keys the keyring this member moves to, the first to
// encrypt with, in the order planKeys explains: at once as far as that
// order allows, the rest as the other members catch up (their keyrings
// arrive in their metadata). It fails on a cluster started without
// encryption, which cannot start encrypting without a restart.
func (c *Cluster) SetKeys(keys [][]byte) error {
	if c.keyring == nil {
		return fmt.Errorf("setting memberlist keys: memberlist runs without encryption")
	}
	if len(keys) == 0 {
		return fmt.Errorf("setting memberlist keys: no key")
	}
	for _, k := range keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("setting memberlist keys: a key is %d bytes, want 16, 24 or 32", n)
		}
	}
	c.keysMu.Lock()
	c.wantKeys = slices.Clone(keys)
	for _, k := range keys {
		c.keyBytes[memberkey.Fingerprint(k)] = k
	}
	c.keysMu.Unlock()
	c.kickKeys()
	return nil
}

// Keyring is this member's keyring now; the zero Keyring without
// encryption.
func (c *Cluster) Keyring() Keyring {
	if c.keyring == nil {
		return Keyring{}
	}
	return keyringOf(c.keyring.GetPrimaryKey(), c.keyring.GetKeys())
}

func keyringOf(primary []byte, keys [][]byte) Keyring {
	k := Keyring{Primary: memberkey.Fingerprint(primary), Keys: memberkey.Fingerprints(keys)}
	slices.Sort(k.Keys)
	return k
}

// Keyrings are the keyrings the other live members publish, by name; a
// member that publishes none has the zero Keyring.
func (c *Cluster) Keyrings() map[string]Keyring {
	c.membersMu.Lock()
	defer c.membersMu.Unlock()
	out := make(map[string]Keyring, len(c.members))
	for name, m := range c.members {
		if name != c.cfg.NodeName {
			out[name] = m.keyring
		}
	}
	return out
}

// keysLoop carries out SetKeys: after each SetKeys and each change of the
// membership (another member's keyring may have changed) it takes the
// next step planKeys allows, then publishes the result in this member's
// metadata.
func (c *Cluster) keysLoop(ctx context.Context) {
	defer close(c.keysDone)
	var lastWaiting string
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.keysKick:
		}
		c.keysMu.Lock()
		want := memberkey.Fingerprints(c.wantKeys)
		c.keysMu.Unlock()
		if len(want) == 0 {
			continue
		}
		cur := c.Keyring()
		step := planKeys(cur, want, c.Keyrings())
		if step.waiting != lastWaiting && step.waiting != "" {
			c.log.Info("memberlist key rotation waiting", "reason", step.waiting)
		}
		lastWaiting = step.waiting
		if len(step.add) == 0 && len(step.remove) == 0 && step.primary == cur.Primary {
			continue
		}
		if err := c.applyKeys(step); err != nil {
			c.log.Error("changing memberlist keys", "err", err)
		}
	}
}

// applyKeys runs on keysLoop's goroutine only. It takes no c.mu: Leave
// and Shutdown hold c.mu while they wait for keysLoop to end (stopLoop),
// and they stop it before they stop memberlist, so it never races them.
func (c *Cluster) applyKeys(s keyStep) error {
	c.keysMu.Lock()
	keys := maps.Clone(c.keyBytes)
	c.keysMu.Unlock()
	key := func(fp string) []byte { return keys[fp] }
	for _, fp := range s.add {
		if err := c.keyring.AddKey(key(fp)); err != nil {
			return fmt.Errorf("installing key %s: %w", fp, err)
		}
	}
	if s.primary != c.Keyring().Primary {
		if err := c.keyring.UseKey(key(s.primary)); err != nil {
			return fmt.Errorf("encrypting with key %s: %w", s.primary, err)
		}
	}
	for _, fp := range s.remove {
		if err := c.keyring.RemoveKey(key(fp)); err != nil {
			return fmt.Errorf("removing key %s: %w", fp, err)
		}
	}
	k := c.Keyring()
	c.log.Info("memberlist keys changed", "primary", k.Primary, "keys", k.Keys,
		"installed", s.add, "removed", s.remove)
	// The others decide their next steps on this member's keyring.
	if err := c.ml.UpdateNode(defaultUpdateTimeout); err != nil {
		c.log.Warn("publishing memberlist keys", "err", err)
	}
	c.signal()
	return nil
}

// kickKeys makes keysLoop look again.
func (c *Cluster) kickKeys() {
	select {
	case c.keysKick <- struct{}{}:
	default:
	}
}
