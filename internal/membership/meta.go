package membership

import (
	"encoding/hex"
	"slices"

	"github.com/hashicorp/memberlist"

	"github.com/heraldlb/herald/internal/memberkey"
)

// Node metadata format (a compatibility contract between speaker versions):
// byte 0 is the format version; byte 1 holds flags, bit 0 = healthy,
// bit 1 = holding (the member announces an address whose owner is sticky:
// the control-plane VIP; Service speakers never set it, and older ones
// ignore it). Later versions may append bytes but must keep bit 0 of
// byte 1, so that
// speakers of both versions agree on who is a candidate during a rolling
// upgrade. Version 1 ends there. Version 2 appends the keyring: byte 2 is
// the number of keys n (0 without encryption), then n fingerprints of
// memberkey.FingerprintLen bytes each, the primary first.
const (
	metaVersion     = 2
	metaFlagHealthy = 1 << 0
	metaFlagHolding = 1 << 1
)

// nodeMeta is what a member publishes about itself.
type nodeMeta struct {
	healthy bool
	holding bool
	keyring Keyring
}

func (m nodeMeta) encode() []byte {
	var flags byte
	if m.healthy {
		flags |= metaFlagHealthy
	}
	if m.holding {
		flags |= metaFlagHolding
	}
	b := []byte{metaVersion, flags, 0}
	if !m.keyring.Known() {
		return b
	}
	fps := []string{m.keyring.Primary}
	for _, fp := range m.keyring.Keys {
		if fp != m.keyring.Primary {
			fps = append(fps, fp)
		}
	}
	b[2] = byte(len(fps))
	for _, fp := range fps {
		raw, _ := hex.DecodeString(fp) // Fingerprint's own output
		b = append(b, raw...)
	}
	return b
}

// decodeMeta reads any version's metadata; what it cannot read counts as
// unhealthy, so a member publishing garbage is never a candidate, and as
// publishing no keyring.
func decodeMeta(b []byte) nodeMeta {
	m := nodeMeta{healthy: len(b) >= 2 && b[1]&metaFlagHealthy != 0, holding: len(b) >= 2 && b[1]&metaFlagHolding != 0}
	if len(b) < 3 || b[0] < 2 {
		return m
	}
	n := int(b[2])
	if n == 0 || len(b) < 3+n*memberkey.FingerprintLen {
		return m
	}
	for i := range n {
		fp := hex.EncodeToString(b[3+i*memberkey.FingerprintLen : 3+(i+1)*memberkey.FingerprintLen])
		if i == 0 {
			m.keyring.Primary = fp
		}
		m.keyring.Keys = append(m.keyring.Keys, fp)
	}
	slices.Sort(m.keyring.Keys)
	return m
}

// delegate publishes this node's metadata; herald sends no user messages.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(int) []byte {
	return nodeMeta{healthy: d.c.healthy.Load(), holding: d.c.holding.Load(), keyring: d.c.Keyring()}.encode()
}
func (delegate) NotifyMsg([]byte)                {}
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (delegate) LocalState(bool) []byte          { return nil }
func (delegate) MergeRemoteState([]byte, bool)   {}

// events keeps the Cluster's copy of the membership and raises the Changed
// signal. memberlist calls it while holding its node lock, so it must not
// call back into memberlist; it is also the only race-free moment to read a
// *memberlist.Node, whose fields memberlist updates in place after
// Memberlist.Members has returned pointers to them.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.setMember(n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.setMember(n) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.dropMember(n.Name) }
