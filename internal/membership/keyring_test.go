package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/memberkey"
)

func ring(primary string, keys ...string) Keyring {
	k := Keyring{Primary: primary, Keys: slices.Sorted(slices.Values(append(keys, primary)))}
	k.Keys = slices.Compact(k.Keys)
	return k
}

func TestPlanKeys(t *testing.T) {
	tests := []struct {
		name   string
		cur    Keyring
		want   []string
		others map[string]Keyring
		step   keyStep
	}{
		{"nothing to do", ring("old"), []string{"old"}, map[string]Keyring{"b": ring("old")}, keyStep{primary: "old"}},
		{
			"step 1: a new key is installed at once",
			ring("old"), []string{"old", "new"}, map[string]Keyring{"b": ring("old")},
			keyStep{add: []string{"new"}, primary: "old"},
		},
		{
			"step 2: primary waits for a member without the key",
			ring("old", "new"), []string{"new", "old"}, map[string]Keyring{"b": ring("old", "new"), "c": ring("old")},
			keyStep{primary: "old", waiting: "key new becomes primary once these members have it: [c]"},
		},
		{
			"step 2: primary switches once every member has the key",
			ring("old", "new"), []string{"new", "old"}, map[string]Keyring{"b": ring("old", "new"), "c": ring("new", "old")},
			keyStep{primary: "new"},
		},
		{
			"step 2: a member publishing no keyring holds the switch back",
			ring("old", "new"), []string{"new", "old"}, map[string]Keyring{"b": {}},
			keyStep{primary: "old", waiting: "key new becomes primary once these members have it: [b]"},
		},
		{
			"step 3: the old key stays while a member encrypts with it",
			ring("new", "old"), []string{"new"}, map[string]Keyring{"b": ring("old", "new")},
			keyStep{primary: "new", waiting: "key old is removed once these members stop encrypting with it: [b]"},
		},
		{
			"step 3: the old key goes once nobody encrypts with it",
			ring("new", "old"), []string{"new"}, map[string]Keyring{"b": ring("new", "old"), "c": ring("new")},
			keyStep{primary: "new", remove: []string{"old"}},
		},
		{
			"one-step replacement: the current primary is kept until the new one may be used",
			ring("old"), []string{"new"}, map[string]Keyring{"b": ring("old")},
			keyStep{add: []string{"new"}, primary: "old", waiting: "key new becomes primary once these members have it: [b]"},
		},
		{
			"one-step replacement: switch and removal in one step when everyone is ready",
			ring("old", "new"), []string{"new"}, map[string]Keyring{"b": ring("new", "old")},
			keyStep{primary: "new", remove: []string{"old"}},
		},
		{
			"alone: nothing to wait for",
			ring("old"), []string{"new"}, nil,
			keyStep{add: []string{"new"}, primary: "new", remove: []string{"old"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planKeys(tt.cur, tt.want, tt.others)
			if diff := cmp.Diff(tt.step, got, cmp.AllowUnexported(keyStep{})); diff != "" {
				t.Errorf("planKeys (-want +got):\n%s", diff)
			}
		})
	}
}

// trouble counts what memberlist says when members cannot read each
// other or suspect one another: every warning and error, and every
// suspicion.
type trouble struct {
	counting atomic.Bool
	mu       sync.Mutex
	lines    []string
}

func (tr *trouble) Enabled(context.Context, slog.Level) bool { return true }
func (tr *trouble) Handle(_ context.Context, r slog.Record) error {
	if !tr.counting.Load() {
		return nil
	}
	if r.Level >= slog.LevelWarn || strings.Contains(r.Message, "Suspect") {
		tr.mu.Lock()
		tr.lines = append(tr.lines, r.Level.String()+" "+r.Message)
		tr.mu.Unlock()
	}
	return nil
}
func (tr *trouble) WithAttrs([]slog.Attr) slog.Handler { return tr }
func (tr *trouble) WithGroup(string) slog.Handler      { return tr }

func (tr *trouble) seen() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.lines)
}

// lossWatch records every moment a member sees fewer than all members
// alive, from start until stop.
type lossWatch struct {
	stop   chan struct{}
	done   chan struct{}
	losses []string
}

func watchLoss(cs []*Cluster) *lossWatch {
	w := &lossWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			for _, c := range cs {
				if n := len(c.Members()); n != len(cs) {
					w.losses = append(w.losses, fmt.Sprintf("%s saw %d members", c.cfg.NodeName, n))
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(2 * time.Millisecond): // sampling a real cluster
			}
		}
	}()
	return w
}

func (w *lossWatch) end() []string {
	close(w.stop)
	<-w.done
	return w.losses
}

// waitKeyrings waits until every member has keyring want and publishes it.
func waitKeyrings(t *testing.T, cs []*Cluster, want Keyring) {
	t.Helper()
	waitFor(t, fmt.Sprintf("every member on keyring %+v", want), func() bool {
		for _, c := range cs {
			if !cmp.Equal(c.Keyring(), want) {
				return false
			}
			for _, k := range c.Keyrings() {
				if !cmp.Equal(k, want) {
					return false
				}
			}
		}
		return true
	})
}

// TestKeyRotationLosesNoMember rotates the key of a four-member encrypted
// cluster on loopback while every member's view is sampled every 2 ms:
// first in the three steps of docs/install.md (add, make primary, remove),
// each given to the members in a different order with pauses between
// them, then in one step (the new key replacing the old), which the
// members must carry out in the same safe order by themselves. No member
// may ever see another leave or die, suspect one, or fail to decrypt a
// packet. A control rotation that skips the order (one member encrypting
// with a key the others lack) shows that these checks see the trouble.
func TestKeyRotationLosesNoMember(t *testing.T) {
	k1, k2, k3 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 16)
	fp1, fp2, fp3 := memberkey.Fingerprint(k1), memberkey.Fingerprint(k2), memberkey.Fingerprint(k3)
	tr := &trouble{}
	cs := startN(t, 4, Config{Keys: [][]byte{k1}, Log: slog.New(tr)})
	waitMembers(t, cs, "m1", "m2", "m3", "m4")
	waitKeyrings(t, cs, ring(fp1))

	setAll := func(keys ...[]byte) {
		t.Helper()
		// A different order each time, with a gap: speakers see a Secret
		// change at different moments.
		order := slices.Clone(cs)
		slices.Reverse(order)
		for _, c := range order {
			if err := c.SetKeys(keys); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // real memberlist gossips in between
		}
	}
	tr.counting.Store(true)
	w := watchLoss(cs)

	setAll(k1, k2)
	waitKeyrings(t, cs, ring(fp1, fp2))
	setAll(k2, k1)
	waitKeyrings(t, cs, ring(fp2, fp1))
	setAll(k2)
	waitKeyrings(t, cs, ring(fp2))
	// One step: k3 replaces k2.
	setAll(k3)
	waitKeyrings(t, cs, ring(fp3))
	// Keep watching for a few probe rounds after the last change.
	time.Sleep(time.Second) // memberlist probes in real time

	if losses := w.end(); len(losses) > 0 {
		t.Errorf("%d samples saw a member missing during the rotations, first: %v", len(losses), losses[0])
	}
	if lines := tr.seen(); len(lines) > 0 {
		t.Errorf("memberlist reported %d problems during the rotations:\n%s", len(lines), strings.Join(lines, "\n"))
	}

	// Control: m1 alone encrypts with a key nobody else has.
	if err := cs[0].keyring.AddKey(k1); err != nil {
		t.Fatal(err)
	}
	if err := cs[0].keyring.UseKey(k1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the control rotation to show trouble", func() bool { return len(tr.seen()) > 0 })
	t.Logf("control rotation, first problem: %s", tr.seen()[0])
}
