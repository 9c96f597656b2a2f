package bgp

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/heraldlb/herald/internal/bfd"
	"github.com/heraldlb/herald/internal/bgpplan"
)

// bfdAdminDownGrace is how long Run waits after taking the BFD sessions
// AdminDown for that packet to leave before the sockets close.
const bfdAdminDownGrace = 50 * time.Millisecond

// bfdSession is the BFD session of peer p on this node: from the
// session's source address, else from the node's own address of the
// peer's family (the address the router's BFD expects packets from, as
// its BGP session comes from there); in a VRF, or on an interface, from
// the address the kernel picks there.
func (a *Announcer) bfdSession(p Peer) bfd.Session {
	local := p.SourceAddress
	if p.Interface != "" {
		// An unnumbered session runs between link-local addresses: the
		// kernel picks ours on the interface the socket is bound to.
		return bfd.Session{Peer: p.Address, Interface: p.Interface, Profile: bfdProfile(p.BFD)}
	}
	// In a VRF the node's InternalIP (default VRF) is not ours to send
	// from: there the kernel picks, inside the VRF, as for the BGP
	// session.
	if !local.IsValid() && p.VRF == "" {
		if p.Address.Is4() {
			local = a.cfg.NextHopV4
		} else {
			local = a.cfg.NextHopV6
		}
	}
	return bfd.Session{
		Peer: p.Address, Local: local, Multihop: p.EBGPMultiHop, Interface: p.VRF, Profile: bfdProfile(p.BFD),
	}
}

func bfdProfile(b bgpplan.BFD) bfd.Profile {
	return bfd.Profile{
		ReceiveInterval: b.ReceiveInterval, TransmitInterval: b.TransmitInterval,
		DetectMultiplier: b.DetectMultiplier, Passive: b.Passive, MinimumTTL: b.MinimumTTL,
	}
}

// syncBFD runs a BFD session for each configured peer that asks for one.
// The caller holds a.mu.
func (a *Announcer) syncBFD() error {
	if a.stopping {
		return nil // Run has taken every session AdminDown
	}
	var sessions []bfd.Session
	for _, name := range slices.Sorted(maps.Keys(a.peers)) {
		if p := a.peers[name]; p.BFD.Enabled {
			sessions = append(sessions, a.bfdSession(p))
		}
	}
	if err := a.bfd.Set(sessions); err != nil {
		return fmt.Errorf("BFD: %w", err)
	}
	return nil
}

// bfdChanged runs on the BFD engine's goroutine. A session that leaves Up
// (not one taken away by SetPeers, which the engine does not report)
// means the path to the router failed: the BGP session over it is
// dropped at once rather than when its hold time runs out, as the router
// does on its side. GoBGP dials again after the connect time. The work
// is done on a goroutine of its own: SetPeers holds a.mu while it calls
// into the engine.
func (a *Announcer) bfdChanged(k bfd.Key, up bool, diag bfd.Diag) {
	if up {
		return
	}
	if diag == bfd.DiagAdminDown {
		// The router took BFD off the session (RFC 5882 §3.2): no path
		// failure, and the BGP session stays.
		a.log.Info("BFD session taken AdminDown by the router: the BGP session stays", "session", k.String())
		return
	}
	go a.bfdDown(k, diag)
}

func (a *Announcer) bfdDown(k bfd.Key, diag bfd.Diag) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(a.peers)) {
		p := a.peers[name]
		if !p.BFD.Enabled || a.bfdSession(p).Key() != k {
			continue
		}
		a.log.Warn("BFD session down: dropping the BGP session", "peer", name, "diag", diag.String())
		// GoBGP dials again after the connect time, which may come before
		// the watch goroutine closes a dynamicASN gate: close it now, so
		// the next session waits for its router's AS check.
		if err := a.closeGate(context.Background(), name); err != nil {
			a.log.Error("closing the BGP gate of a dynamicASN peer", "peer", name, "err", err)
		}
		if err := a.srv.ResetPeer(context.Background(), &api.ResetPeerRequest{
			Address: p.Address.String(), Communication: "BFD session down: " + diag.String(),
		}); err != nil {
			a.log.Warn("dropping a BGP session after its BFD session went down", "peer", name, "err", err)
		}
	}
}

// BFDUp reports whether the BFD session of the named peer is Up, and
// false when the peer runs none.
func (a *Announcer) BFDUp(peer string) bool {
	a.mu.Lock()
	p, ok := a.peers[peer]
	a.mu.Unlock()
	if !ok || !p.BFD.Enabled {
		return false
	}
	st, ok := a.bfd.State(a.bfdSession(p).Key())
	return ok && st == bfd.Up
}
