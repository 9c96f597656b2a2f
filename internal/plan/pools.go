package plan

import (
	"net/netip"
	"slices"
	"strings"
)

type poolIndex struct {
	byName map[string]*Pool
	// ordered: oldest first, so that when pools overlap the one the
	// controller allocates from (the older) is found first.
	ordered []*Pool
}

func newPoolIndex(pools []Pool) *poolIndex {
	idx := &poolIndex{byName: make(map[string]*Pool, len(pools))}
	for i := range pools {
		p := &pools[i]
		idx.byName[p.Name] = p
		idx.ordered = append(idx.ordered, p)
	}
	slices.SortFunc(idx.ordered, func(a, b *Pool) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return idx
}

// lookup finds the pool holding a, preferring the one the controller says
// it allocated from. The hint is the Service's own annotation, which its
// owner may rewrite: it wins only for an address the hinted pool holds,
// in its spec or kept outside it, never for one the pool never held.
func (idx *poolIndex) lookup(a netip.Addr, hint string) *Pool {
	if p, ok := idx.byName[hint]; ok && (p.contains(a) || p.OutsideSpecUnknown || p.keepsOutside(a)) {
		return p
	}
	for _, p := range idx.ordered {
		if p.contains(a) {
			return p
		}
	}
	return nil
}

// lookupExternal finds the opt-in pool holding an externalIP.
func (idx *poolIndex) lookupExternal(a netip.Addr) *Pool {
	for _, p := range idx.ordered {
		if p.ExternalIPs && p.contains(a) {
			return p
		}
	}
	return nil
}

func (p *Pool) keepsOutside(a netip.Addr) bool {
	for _, r := range p.HeldOutsideSpec {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

func (p *Pool) contains(a netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}
