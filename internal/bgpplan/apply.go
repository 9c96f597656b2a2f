package bgpplan

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Executor makes the changes in the real routing table and export filters
// (internal/bgp: GoBGP calls). Each method either succeeds or leaves the
// table as it was; Apply records only what succeeded.
type Executor interface {
	// Withdraw removes the prefix of r, as announced, from every peer.
	Withdraw(r *Route) error
	// Announce adds r, or replaces the route of its prefix; the export
	// filters apply as it is sent.
	Announce(r *Route) error
	// AddDeny and DeleteDeny change the prefixes of one address family
	// that peer's export filter rejects.
	AddDeny(peer string, v6 bool, pfxs []netip.Prefix) error
	DeleteDeny(peer string, v6 bool, pfxs []netip.Prefix) error
	// SoftResetOut sends peer its routes again, without resetting the
	// session.
	SoftResetOut(peer string) error
}

// State is what the routing table and the export filters hold.
type State struct {
	// Applied are the routes in the table.
	Applied map[netip.Prefix]*Route
	// Denied holds, per configured peer, the prefixes its filter rejects.
	// Its keys are the configured peers.
	Denied map[string]map[netip.Prefix]struct{}
}

// NewState is the state of an empty table with no peers.
func NewState() *State {
	return &State{Applied: map[netip.Prefix]*Route{}, Denied: map[string]map[netip.Prefix]struct{}{}}
}

// DenyFor is the filter a new peer must have before its session exists:
// every route in the table it may not receive.
func (s *State) DenyFor(peer string) map[netip.Prefix]struct{} {
	deny := map[netip.Prefix]struct{}{}
	for pfx, r := range s.Applied {
		if !r.Allows(peer) {
			deny[pfx] = struct{}{}
		}
	}
	return deny
}

// Advertised counts the routes in the table that peer may receive.
func (s *State) Advertised(peer string) int {
	n := 0
	for _, r := range s.Applied {
		if r.Allows(peer) {
			n++
		}
	}
	return n
}

// Apply brings the table and the filters of the configured peers from s to
// desired, in an order that never sends a peer a prefix it may not have:
//
//  1. withdraw the prefixes no longer wanted, and those some configured
//     peer loses (a prefix cannot be withdrawn from one peer only);
//  2. update each peer's filter;
//  3. announce new and changed routes, except those whose withdrawal or
//     filter update failed (announcing them could reach a peer that must
//     not have them);
//  4. soft-reset the peers that gained a route whose attributes did not
//     change, which the table would not send again by itself.
//
// s records what succeeded; the error joins every failure.
func (s *State) Apply(desired map[netip.Prefix]*Route, x Executor) error {
	var errs []error
	held := map[netip.Prefix]bool{} // not to be announced this round
	for _, pfx := range sortedPrefixes(s.Applied) {
		old := s.Applied[pfx]
		if r, ok := desired[pfx]; ok && !s.losesPeer(old, r) {
			continue
		}
		if err := x.Withdraw(old); err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %s: %w", pfx, err))
			held[pfx] = true
			continue
		}
		delete(s.Applied, pfx)
	}

	errs = append(errs, s.syncDeny(desired, x, held)...)

	gained := map[string]bool{}
	for _, pfx := range sortedPrefixes(desired) {
		r := desired[pfx]
		old, ok := s.Applied[pfx]
		if held[pfx] || ok && old.SameAttrs(r) && old.SamePeers(r) {
			continue
		}
		if err := x.Announce(r); err != nil {
			errs = append(errs, fmt.Errorf("announcing %s: %w", pfx, err))
			continue
		}
		if ok && old.SameAttrs(r) {
			for name := range s.Denied {
				if !old.Allows(name) && r.Allows(name) {
					gained[name] = true
				}
			}
		}
		s.Applied[pfx] = r
	}
	for _, name := range slices.Sorted(maps.Keys(gained)) {
		if err := x.SoftResetOut(name); err != nil {
			errs = append(errs, fmt.Errorf("re-sending routes to BGP peer %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// losesPeer reports whether a configured peer that old may reach is not
// allowed by r.
func (s *State) losesPeer(old, r *Route) bool {
	if old.SamePeers(r) {
		return false
	}
	for name := range s.Denied {
		if old.Allows(name) && !r.Allows(name) {
			return true
		}
	}
	return false
}

// syncDeny makes each peer's filter reject exactly the prefixes, in the
// table or about to be announced, that the peer must not receive. A
// prefix whose addition to some filter failed is held back from
// announcement.
func (s *State) syncDeny(desired map[netip.Prefix]*Route, x Executor, held map[netip.Prefix]bool) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s.Denied)) {
		want := map[netip.Prefix]struct{}{}
		for pfx, r := range desired {
			if !r.Allows(name) {
				want[pfx] = struct{}{}
			}
		}
		for pfx, r := range s.Applied {
			if _, ok := desired[pfx]; !ok && !r.Allows(name) {
				want[pfx] = struct{}{}
			}
		}
		have := s.Denied[name]
		for _, v6 := range []bool{false, true} {
			var add, del []netip.Prefix
			for pfx := range want {
				if _, ok := have[pfx]; !ok && pfx.Addr().Is6() == v6 {
					add = append(add, pfx)
				}
			}
			for pfx := range have {
				if _, ok := want[pfx]; !ok && pfx.Addr().Is6() == v6 {
					del = append(del, pfx)
				}
			}
			slices.SortFunc(add, netip.Prefix.Compare)
			slices.SortFunc(del, netip.Prefix.Compare)
			if len(add) > 0 {
				if err := x.AddDeny(name, v6, add); err != nil {
					errs = append(errs, fmt.Errorf("updating deny set of BGP peer %s: %w", name, err))
					for _, p := range add {
						held[p] = true
					}
				} else {
					for _, p := range add {
						have[p] = struct{}{}
					}
				}
			}
			if len(del) > 0 {
				// A failure here only keeps a prefix from a peer that may
				// now have it; the next Apply tries again.
				if err := x.DeleteDeny(name, v6, del); err != nil {
					errs = append(errs, fmt.Errorf("updating deny set of BGP peer %s: %w", name, err))
				} else {
					for _, p := range del {
						delete(have, p)
					}
				}
			}
		}
	}
	return errs
}

func sortedPrefixes(m map[netip.Prefix]*Route) []netip.Prefix {
	return slices.SortedFunc(maps.Keys(m), netip.Prefix.Compare)
}
