package allocator

import (
	"math/big"
	"net/netip"
	"slices"
)

// FamilyUsage counts one family of a pool. Total and Free are big because
// an IPv6 /64 holds 2^64 addresses.
type FamilyUsage struct {
	Total     *big.Int
	Allocated int
	Free      *big.Int
}

// Usage is what a pool's status reports.
type Usage struct {
	State PoolState
	// Families is indexed by Family.
	Families [2]FamilyUsage
	// OutsideSpec lists addresses still held from this pool that its
	// current addresses no longer include (the pool shrank).
	OutsideSpec []netip.Addr
}

// Has reports whether the pool has or holds addresses of family f.
func (u Usage) Has(f Family) bool {
	return u.Families[f].Total.Sign() > 0 || u.Families[f].Allocated > 0
}

// PoolUsage reports a pool's counts; ok is false for an unknown pool.
// Finding addresses outside the spec walks every address in use, so
// callers compute it when they write status, not per allocation.
func (a *Allocator) PoolUsage(name string) (Usage, bool) {
	p, ok := a.pools[name]
	if !ok {
		return Usage{}, false
	}
	u := Usage{State: p.state}
	for f := range u.Families {
		total := new(big.Int)
		if p.total[f] != nil {
			total.Set(p.total[f])
		}
		u.Families[f] = FamilyUsage{Total: total, Free: new(big.Int)}
	}
	for f := range u.Families {
		u.Families[f].Allocated = p.allocated[f]
	}
	for ad, st := range a.used {
		if st.pool == name && !p.contains(ad) {
			u.OutsideSpec = append(u.OutsideSpec, ad)
		}
	}
	for f := range u.Families {
		// A pool that is not ready hands out nothing: nothing is free.
		if p.state.Ready {
			u.Families[f].Free.Sub(u.Families[f].Total, big.NewInt(p.taken[f]))
		}
	}
	slices.SortFunc(u.OutsideSpec, netip.Addr.Compare)
	return u, true
}
