package bgpplan

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Attrs are the path attributes herald sets.
type Attrs struct {
	Communities  []uint32         // sorted, unique
	Large        []LargeCommunity // sorted, unique
	LocalPref    uint32
	HasLocalPref bool
}

// Equal reports whether a and o are the same attributes.
func (a *Attrs) Equal(o *Attrs) bool {
	return slices.Equal(a.Communities, o.Communities) && slices.Equal(a.Large, o.Large) &&
		a.HasLocalPref == o.HasLocalPref && a.LocalPref == o.LocalPref
}

// IsZero reports whether a sets nothing.
func (a *Attrs) IsZero() bool {
	return len(a.Communities) == 0 && len(a.Large) == 0 && !a.HasLocalPref
}

// union folds o into a: every community of either, the higher local-pref.
func (a *Attrs) union(o *Attrs) {
	a.Communities = sortedUnique(append(a.Communities, o.Communities...), cmp.Compare[uint32])
	a.Large = sortedUnique(append(a.Large, o.Large...), compareLarge)
	if o.HasLocalPref && (!a.HasLocalPref || o.LocalPref > a.LocalPref) {
		a.LocalPref, a.HasLocalPref = o.LocalPref, true
	}
}

// intersect keeps in a what o has too; a local-pref only if both have
// one, the lower: a peer's filter can raise it (SET), never take it away.
func (a *Attrs) intersect(o *Attrs) {
	a.Communities = slices.DeleteFunc(a.Communities, func(c uint32) bool {
		_, ok := slices.BinarySearch(o.Communities, c)
		return !ok
	})
	a.Large = slices.DeleteFunc(a.Large, func(c LargeCommunity) bool {
		_, ok := slices.BinarySearchFunc(o.Large, c, compareLarge)
		return !ok
	})
	switch {
	case !o.HasLocalPref:
		a.LocalPref, a.HasLocalPref = 0, false
	case a.HasLocalPref && o.LocalPref < a.LocalPref:
		a.LocalPref = o.LocalPref
	}
}

// beyond is what a has that base does not: the communities base lacks,
// and a's local-pref where it differs from base's.
func (a *Attrs) beyond(base *Attrs) Attrs {
	var out Attrs
	for _, c := range a.Communities {
		if _, ok := slices.BinarySearch(base.Communities, c); !ok {
			out.Communities = append(out.Communities, c)
		}
	}
	for _, c := range a.Large {
		if _, ok := slices.BinarySearchFunc(base.Large, c, compareLarge); !ok {
			out.Large = append(out.Large, c)
		}
	}
	if a.HasLocalPref && (!base.HasLocalPref || a.LocalPref != base.LocalPref) {
		out.LocalPref, out.HasLocalPref = a.LocalPref, true
	}
	return out
}

// plus is what a peer receives when its filter adds extra to a: the
// communities of both, and extra's local-pref when it sets one.
func (a *Attrs) plus(extra *Attrs) Attrs {
	out := Attrs{
		Communities:  slices.Clone(a.Communities),
		Large:        slices.Clone(a.Large),
		LocalPref:    a.LocalPref,
		HasLocalPref: a.HasLocalPref,
	}
	if extra == nil {
		return out
	}
	out.Communities = sortedUnique(append(out.Communities, extra.Communities...), cmp.Compare[uint32])
	out.Large = sortedUnique(append(out.Large, extra.Large...), compareLarge)
	if extra.HasLocalPref {
		out.LocalPref, out.HasLocalPref = extra.LocalPref, true
	}
	return out
}

// Route is what herald announces for one prefix, from one or more Paths
// after validation: canonical prefix, sorted and de-duplicated
// attributes, so that two routes compare cheaply.
//
// The table holds one path per prefix, so the attributes it carries
// (Attrs) are those every peer the route reaches receives; a peer that
// must receive more (several Paths with different Peers) has them in
// Extra, and its export filter adds them.
type Route struct {
	Prefix netip.Prefix
	Attrs
	Peers []string // sorted; empty = every peer
	// Extra holds, per peer name, what that peer's filter adds to Attrs:
	// communities and large communities Attrs lacks, and a local-pref
	// that replaces Attrs'. Nil when every peer gets Attrs, which is the
	// case whenever all Paths of the prefix have the same Peers.
	Extra map[string]Attrs
}

// SameAttrs reports whether r and o carry the same path attributes in
// the table (Extra aside).
func (r *Route) SameAttrs(o *Route) bool { return r.Equal(&o.Attrs) }

// SamePeers reports whether r and o may reach the same peers.
func (r *Route) SamePeers(o *Route) bool { return slices.Equal(r.Peers, o.Peers) }

// Allows reports whether the route may be advertised to the named peer.
func (r *Route) Allows(peer string) bool {
	if len(r.Peers) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(r.Peers, peer)
	return ok
}

// ExtraFor is what the filter of peer adds to r, nil if nothing.
func (r *Route) ExtraFor(peer string) *Attrs {
	if e, ok := r.Extra[peer]; ok {
		return &e
	}
	return nil
}

// AttrsFor is what peer receives, if r allows it.
func (r *Route) AttrsFor(peer string) (Attrs, bool) {
	if !r.Allows(peer) {
		return Attrs{}, false
	}
	return r.plus(r.ExtraFor(peer)), true
}

// combine makes one route of the routes of several Paths for the same
// prefix (see Routes). rs are fresh from NewRoute: combine may reuse them.
func combine(rs []*Route) *Route {
	r := rs[0]
	same := true
	for _, o := range rs[1:] {
		same = same && r.SamePeers(o)
	}
	if same {
		// Every peer gets the same: the table's path carries it all.
		for _, o := range rs[1:] {
			r.union(&o.Attrs)
		}
		return r
	}
	var named []string
	var everyone *Attrs // what the Paths for every peer carry
	for _, o := range rs {
		if len(o.Peers) == 0 {
			if everyone == nil {
				everyone = &Attrs{}
			}
			everyone.union(&o.Attrs)
		}
		named = append(named, o.Peers...)
	}
	named = sortedUnique(named, strings.Compare)
	got := make([]Attrs, len(named)) // what each named peer must receive
	for i, name := range named {
		for _, o := range rs {
			if o.Allows(name) {
				got[i].union(&o.Attrs)
			}
		}
	}
	// The table's path carries what every peer it reaches receives; the
	// peers not named receive exactly what the Paths for everyone carry.
	var base Attrs
	if everyone != nil {
		base = everyone.plus(nil)
	} else {
		base = got[0].plus(nil)
	}
	for i := range got {
		base.intersect(&got[i])
	}
	out := &Route{Prefix: r.Prefix, Attrs: base}
	if everyone == nil {
		out.Peers = named
	}
	for i, name := range named {
		if e := got[i].beyond(&base); !e.IsZero() {
			if out.Extra == nil {
				out.Extra = map[string]Attrs{}
			}
			out.Extra[name] = e
		}
	}
	return out
}

func sortedUnique[T comparable](s []T, c func(a, b T) int) []T {
	slices.SortFunc(s, c)
	return slices.Compact(s)
}

// NewRoute validates p.
func NewRoute(p Path) (*Route, error) {
	if !p.Prefix.IsValid() {
		return nil, errors.New("invalid prefix")
	}
	pfx := p.Prefix
	if pfx.Addr().Is4In6() {
		if pfx.Bits() < 96 {
			return nil, fmt.Errorf("prefix %s: IPv4-mapped prefix shorter than /96", pfx)
		}
		pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
	}
	if pfx.Addr().Zone() != "" {
		return nil, fmt.Errorf("prefix %s: zones are not allowed", pfx)
	}
	r := &Route{Prefix: pfx.Masked()}
	var errs []error
	for _, c := range p.Communities {
		v, err := ParseCommunity(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Communities = append(r.Communities, v)
	}
	for _, c := range p.LargeCommunities {
		v, err := ParseLargeCommunity(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Large = append(r.Large, v)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("prefix %s: %w", r.Prefix, err)
	}
	r.Communities = sortedUnique(r.Communities, cmp.Compare[uint32])
	r.Large = sortedUnique(r.Large, compareLarge)
	if p.LocalPref != nil {
		r.LocalPref, r.HasLocalPref = *p.LocalPref, true
	}
	for _, name := range p.Peers {
		if name != "" {
			r.Peers = append(r.Peers, name)
		}
	}
	if len(r.Peers) > 0 {
		r.Peers = sortedUnique(r.Peers, strings.Compare)
	}
	return r, nil
}

// Routes validates paths and makes one Route per prefix. A peer receives
// a prefix when at least one Path for it allows the peer; it receives the
// communities and large communities of exactly the Paths that allow it,
// and the highest local-pref among them (sent to iBGP peers only). When
// all Paths of a prefix have the same Peers, that is one path carrying
// the union of their attributes, as one Path would; otherwise the route's
// Attrs are what all its peers receive and Extra the rest, per peer.
// An invalid path is left out and reported; the others are returned.
func Routes(paths []Path) (map[netip.Prefix]*Route, []error) {
	out := make(map[netip.Prefix]*Route, len(paths))
	var more map[netip.Prefix][]*Route // prefixes with several Paths
	var errs []error
	for _, p := range paths {
		r, err := NewRoute(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := out[r.Prefix]; ok {
			if more == nil {
				more = map[netip.Prefix][]*Route{}
			}
			if more[r.Prefix] == nil {
				more[r.Prefix] = []*Route{prev}
			}
			more[r.Prefix] = append(more[r.Prefix], r)
			continue
		}
		out[r.Prefix] = r
	}
	for pfx, rs := range more {
		out[pfx] = combine(rs)
	}
	return out, errs
}
