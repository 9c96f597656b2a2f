package bgpplan

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Route is a Path after validation: canonical prefix, sorted and
// de-duplicated attributes, so that two routes compare cheaply.
type Route struct {
	Prefix       netip.Prefix
	Communities  []uint32
	Large        []LargeCommunity
	LocalPref    uint32
	HasLocalPref bool
	Peers        []string // sorted; empty = every peer
}

// SameAttrs reports whether r and o carry the same path attributes.
func (r *Route) SameAttrs(o *Route) bool {
	return slices.Equal(r.Communities, o.Communities) && slices.Equal(r.Large, o.Large) &&
		r.HasLocalPref == o.HasLocalPref && r.LocalPref == o.LocalPref
}

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

// merge folds a second Path for the same prefix into r: the union of the
// communities and of the peers (where either means "all", the result does),
// and the higher local-pref.
func (r *Route) merge(o *Route) {
	r.Communities = sortedUnique(append(r.Communities, o.Communities...), cmp.Compare[uint32])
	r.Large = sortedUnique(append(r.Large, o.Large...), compareLarge)
	if o.HasLocalPref && (!r.HasLocalPref || o.LocalPref > r.LocalPref) {
		r.LocalPref, r.HasLocalPref = o.LocalPref, true
	}
	if len(r.Peers) == 0 || len(o.Peers) == 0 {
		r.Peers = nil
	} else {
		r.Peers = sortedUnique(append(r.Peers, o.Peers...), strings.Compare)
	}
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

// Routes validates paths and merges those for the same prefix (see merge).
// An invalid path is left out and reported; the others are returned.
func Routes(paths []Path) (map[netip.Prefix]*Route, []error) {
	out := make(map[netip.Prefix]*Route, len(paths))
	var errs []error
	for _, p := range paths {
		r, err := NewRoute(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := out[r.Prefix]; ok {
			prev.merge(r)
			continue
		}
		out[r.Prefix] = r
	}
	return out, errs
}
