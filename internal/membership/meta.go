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
// memberkey.FingerprintLen bytes each, the primary first. Version 3
// appends the interfaces the node cannot answer on: a count d, then d
// names, each a length byte and the name; d = metaDownUnlisted says there
// were more than the metadata can carry. A version 2 reader stops after
// the keyring, so it counts such a node as a candidate for every pool (as
// it did before interfaces were judged).
const (
	metaVersion      = 3
	metaFlagHealthy  = 1 << 0
	metaFlagHolding  = 1 << 1
	metaDownUnlisted = 0xff
)

// nodeMeta is what a member publishes about itself.
type nodeMeta struct {
	healthy bool
	holding bool
	keyring Keyring
	down    Interfaces
}

// Interfaces are the interfaces, among those named by layer-2 pools, that a
// node cannot answer on: down, or absent on that node.
type Interfaces struct {
	// Down lists them, sorted.
	Down []string
	// Unlisted: there were more than the metadata can carry; Down is
	// empty, and the node must be taken as unable to answer on any named
	// interface.
	Unlisted bool
}

// Equal reports whether d and o say the same.
func (d Interfaces) Equal(o Interfaces) bool {
	return d.Unlisted == o.Unlisted && slices.Equal(d.Down, o.Down)
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
		return m.appendDown(b)
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
	return m.appendDown(b)
}

func (m nodeMeta) appendDown(b []byte) []byte {
	size := 1
	for _, n := range m.down.Down {
		size += 1 + len(n)
	}
	if m.down.Unlisted || len(m.down.Down) >= metaDownUnlisted || len(b)+size > memberlist.MetaMaxSize {
		return append(b, metaDownUnlisted)
	}
	b = append(b, byte(len(m.down.Down)))
	for _, n := range m.down.Down {
		b = append(b, byte(len(n)))
		b = append(b, n...)
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
	end := 3 + n*memberkey.FingerprintLen
	if len(b) < end {
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
	if b[0] >= 3 {
		m.down = decodeDown(b[end:])
	}
	return m
}

// decodeDown reads version 3's interface list. A list it cannot read
// counts as unlisted: a node publishing garbage there answers for no pool
// that names interfaces, rather than for pools it may not reach.
func decodeDown(b []byte) Interfaces {
	if len(b) == 0 || b[0] == metaDownUnlisted {
		return Interfaces{Unlisted: true}
	}
	d := Interfaces{}
	rest := b[1:]
	for range int(b[0]) {
		if len(rest) == 0 || len(rest) < 1+int(rest[0]) || rest[0] == 0 {
			return Interfaces{Unlisted: true}
		}
		d.Down = append(d.Down, string(rest[1:1+int(rest[0])]))
		rest = rest[1+int(rest[0]):]
	}
	slices.Sort(d.Down)
	return d
}

// delegate publishes this node's metadata; herald sends no user messages.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(int) []byte {
	st := d.c.published()
	return nodeMeta{healthy: st.healthy, holding: st.holding, keyring: d.c.Keyring(), down: st.down}.encode()
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
