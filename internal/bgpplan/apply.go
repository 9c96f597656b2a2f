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
	// AddToClass makes peer's filter add c's attributes to pfxs (of c's
	// family); with create, the class does not exist yet and is made.
	AddToClass(peer string, c *Class, pfxs []netip.Prefix, create bool) error
	// RemoveFromClass stops that for pfxs; with last, no prefix remains
	// and the class is deleted.
	RemoveFromClass(peer string, c *Class, pfxs []netip.Prefix, last bool) error
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
	// Classes holds, per configured peer, the attribute classes of its
	// filter by Class.ID. A peer without any may have no entry.
	Classes map[string]map[string]*ClassSet

	// resend are the peers owed a soft reset that failed or was not safe
	// yet (their classes did not match the table): the next Apply tries
	// again.
	resend map[string]bool
}

// NewState is the state of an empty table with no peers.
func NewState() *State {
	return &State{
		Applied: map[netip.Prefix]*Route{},
		Denied:  map[string]map[netip.Prefix]struct{}{},
		Classes: map[string]map[string]*ClassSet{},
	}
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

// ClassesFor are the attribute classes a new peer's filter must have
// before its session exists, for the routes in the table, as DenyFor.
func (s *State) ClassesFor(peer string) map[string]*ClassSet {
	out := map[string]*ClassSet{}
	for pfx, r := range s.Applied {
		id, c := wantClass(r, peer)
		if c == nil {
			continue
		}
		cs := out[id]
		if cs == nil {
			cs = &ClassSet{Class: *c, Prefixes: map[netip.Prefix]struct{}{}}
			out[id] = cs
		}
		cs.Prefixes[pfx] = struct{}{}
	}
	return out
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
// desired, in an order that never sends a peer a prefix it may not have,
// nor a prefix it did not have without its extra attributes:
//
//  1. withdraw the prefixes no longer wanted, and those some configured
//     peer loses (a prefix cannot be withdrawn from one peer only);
//  2. update each peer's deny filter;
//  3. update each peer's attribute classes (Route.Extra): a prefix leaves
//     its old class before it joins its new one, so it is never in two;
//  4. announce new and changed routes, except those whose withdrawal or
//     filter update failed (announcing them could reach a peer that must
//     not have them, or reach one without its attributes);
//  5. soft-reset the peers that gained a route whose attributes in the
//     table did not change, and those whose extra attributes changed on
//     a route the table did not send again: GoBGP re-sends neither by
//     itself, and does not re-evaluate its filters when a set changes.
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

	// changed holds, per peer, the prefixes its filter now treats
	// differently: let through again, or with other extra attributes.
	changed := map[string][]netip.Prefix{}
	// Classes before filters: a peer let through again must already
	// find its extra attributes, should its session come up in between
	// and GoBGP send it the table.
	errs = append(errs, s.syncClasses(desired, x, held, changed)...)
	errs = append(errs, s.syncDeny(desired, x, held, changed)...)

	// The prefixes some filter treats differently whose route the table
	// sends again anyway, to every peer it reaches: no soft reset for them.
	var touched, sent map[netip.Prefix]bool
	for _, pfxs := range changed {
		for _, p := range pfxs {
			if touched == nil {
				touched, sent = map[netip.Prefix]bool{}, map[netip.Prefix]bool{}
			}
			touched[p] = true
		}
	}
	for _, pfx := range sortedPrefixes(desired) {
		r := desired[pfx]
		old, ok := s.Applied[pfx]
		if held[pfx] {
			continue
		}
		if ok && old.SameAttrs(r) && old.SamePeers(r) {
			s.Applied[pfx] = r // Extra may differ: the classes carry it
			continue
		}
		if peer := s.misclassed(r); peer != "" {
			errs = append(errs, fmt.Errorf("announcing %s: the attribute classes of BGP peer %s are not in place", pfx, peer))
			continue
		}
		if err := x.Announce(r); err != nil {
			errs = append(errs, fmt.Errorf("announcing %s: %w", pfx, err))
			continue
		}
		if ok && old.SameAttrs(r) {
			for name := range s.Denied {
				if !old.Allows(name) && r.Allows(name) {
					s.owe(name)
				}
			}
		} else if touched[pfx] {
			sent[pfx] = true
		}
		s.Applied[pfx] = r
	}
	for name, pfxs := range changed {
		for _, pfx := range pfxs {
			if r, ok := s.Applied[pfx]; ok && !sent[pfx] && r.Allows(name) {
				s.owe(name)
				break
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.resend)) {
		if _, ok := s.Denied[name]; !ok {
			delete(s.resend, name)
			continue
		}
		// A soft reset sends the whole table through the filter: it must
		// wait until the peer's classes match it.
		if pfx, bad := s.peerMisclassed(name); bad {
			errs = append(errs, fmt.Errorf("re-sending routes to BGP peer %s: the route of %s is not in place", name, pfx))
			continue
		}
		if err := x.SoftResetOut(name); err != nil {
			errs = append(errs, fmt.Errorf("re-sending routes to BGP peer %s: %w", name, err))
			continue
		}
		delete(s.resend, name)
	}
	return errors.Join(errs...)
}

func (s *State) owe(peer string) {
	if s.resend == nil {
		s.resend = map[string]bool{}
	}
	s.resend[peer] = true
}

// misclassed is a configured peer r reaches whose classes do not give it
// r's extra attributes, "" if there is none.
func (s *State) misclassed(r *Route) string {
	for name := range s.Denied {
		if len(r.Extra) == 0 && len(s.Classes[name]) == 0 {
			continue
		}
		if !r.Allows(name) {
			continue
		}
		if id, _ := wantClass(r, name); classOf(s.Classes[name], r.Prefix) != id {
			return name
		}
	}
	return ""
}

// peerMisclassed reports a prefix in the table that a soft reset would
// send peer with other attributes than the table's route gives it: its
// classes do not match, or the route does not allow the peer at all (its
// filter already lets through the route that was to replace it, whose
// announcement failed).
func (s *State) peerMisclassed(peer string) (netip.Prefix, bool) {
	classes := s.Classes[peer]
	deny := s.Denied[peer]
	for pfx, r := range s.Applied {
		if _, denied := deny[pfx]; denied {
			continue
		}
		if !r.Allows(peer) {
			return pfx, true
		}
		if len(r.Extra) == 0 && len(classes) == 0 {
			continue
		}
		if id, _ := wantClass(r, peer); classOf(classes, pfx) != id {
			return pfx, true
		}
	}
	return netip.Prefix{}, false
}

// syncClasses puts each prefix about to be announced in the class its
// extra attributes call for, per peer, and takes the withdrawn prefixes
// out of theirs; the table's prefixes that stay as they are (held, or not
// withdrawn) keep theirs. It adds to changed the prefixes whose class
// changed. A prefix whose removal from its old class failed does not join
// its new one; the announcement step then holds it back.
func (s *State) syncClasses(desired map[netip.Prefix]*Route, x Executor, held map[netip.Prefix]bool, changed map[string][]netip.Prefix) []error {
	var errs []error
	var extra []*Route // the desired routes that carry extra attributes
	for _, r := range desired {
		if len(r.Extra) > 0 && !held[r.Prefix] {
			extra = append(extra, r)
		}
	}
	keep := func(pfx netip.Prefix) bool {
		if held[pfx] {
			return true
		}
		_, want := desired[pfx]
		_, in := s.Applied[pfx]
		return in && !want
	}
	for _, name := range slices.Sorted(maps.Keys(s.Denied)) {
		have := s.Classes[name]
		if len(have) == 0 && len(extra) == 0 {
			continue
		}
		if have == nil {
			have = map[string]*ClassSet{}
			s.Classes[name] = have
		}
		want := map[netip.Prefix]string{}
		classes := map[string]*Class{}
		for _, r := range extra {
			if id, c := wantClass(r, name); c != nil {
				want[r.Prefix] = id
				classes[id] = c
			}
		}

		stuck := map[netip.Prefix]bool{} // still in a class it should leave
		for _, id := range slices.Sorted(maps.Keys(have)) {
			cs := have[id]
			var del []netip.Prefix
			for pfx := range cs.Prefixes {
				if !keep(pfx) && want[pfx] != id {
					del = append(del, pfx)
				}
			}
			if len(del) == 0 {
				continue
			}
			slices.SortFunc(del, netip.Prefix.Compare)
			last := len(del) == len(cs.Prefixes)
			if err := x.RemoveFromClass(name, &cs.Class, del, last); err != nil {
				errs = append(errs, fmt.Errorf("updating attribute class %s of BGP peer %s: %w", id, name, err))
				for _, p := range del {
					stuck[p] = true
				}
				continue
			}
			for _, p := range del {
				delete(cs.Prefixes, p)
			}
			if last {
				delete(have, id)
			}
			changed[name] = append(changed[name], del...)
		}

		add := map[string][]netip.Prefix{}
		for pfx, id := range want {
			if stuck[pfx] {
				continue
			}
			if cs := have[id]; cs != nil {
				if _, ok := cs.Prefixes[pfx]; ok {
					continue
				}
			}
			add[id] = append(add[id], pfx)
		}
		for _, id := range slices.Sorted(maps.Keys(add)) {
			pfxs := add[id]
			slices.SortFunc(pfxs, netip.Prefix.Compare)
			cs := have[id]
			if err := x.AddToClass(name, classes[id], pfxs, cs == nil); err != nil {
				errs = append(errs, fmt.Errorf("updating attribute class %s of BGP peer %s: %w", id, name, err))
				continue
			}
			if cs == nil {
				cs = &ClassSet{Class: *classes[id], Prefixes: map[netip.Prefix]struct{}{}}
				have[id] = cs
			}
			for _, p := range pfxs {
				cs.Prefixes[p] = struct{}{}
			}
			changed[name] = append(changed[name], pfxs...)
		}
		if len(have) == 0 {
			delete(s.Classes, name)
		}
	}
	return errs
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
func (s *State) syncDeny(desired map[netip.Prefix]*Route, x Executor, held map[netip.Prefix]bool, changed map[string][]netip.Prefix) []error {
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
					changed[name] = append(changed[name], del...)
				}
			}
		}
	}
	return errs
}

func sortedPrefixes(m map[netip.Prefix]*Route) []netip.Prefix {
	return slices.SortedFunc(maps.Keys(m), netip.Prefix.Compare)
}
