package membership

import "github.com/hashicorp/memberlist"

// Node metadata format (a compatibility contract between speaker versions):
// byte 0 is the format version (1); byte 1 holds flags, bit 0 = healthy.
// Later versions may append bytes but must keep bit 0 of byte 1, so that
// speakers of both versions agree on who is a candidate during a rolling
// upgrade.
const (
	metaVersion     = 1
	metaFlagHealthy = 1 << 0
)

// nodeMeta is what a member publishes about itself.
type nodeMeta struct {
	healthy bool
}

func (m nodeMeta) encode() []byte {
	var flags byte
	if m.healthy {
		flags |= metaFlagHealthy
	}
	return []byte{metaVersion, flags}
}

// decodeMeta reads any version's metadata; what it cannot read counts as
// unhealthy, so a member publishing garbage is never a candidate.
func decodeMeta(b []byte) nodeMeta {
	return nodeMeta{healthy: len(b) >= 2 && b[1]&metaFlagHealthy != 0}
}

// delegate publishes this node's metadata; herald sends no user messages.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(int) []byte           { return nodeMeta{healthy: d.c.healthy.Load()}.encode() }
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
