package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Allocate gives svc the addresses its spec asks for and returns them.
//
// The order is: keep what the Service holds when it still satisfies the
// spec; else its requested addresses; else its named pool; else the
// eligible autoAssign pools in priority order. It is transactional: on
// error nothing changes and the Service keeps its previous assignment, so a
// bad edit never costs a working address. The allocator keeps svc, and the
// returned Addrs are shared with it: neither may be modified afterwards.
func (a *Allocator) Allocate(svc *Service) (Assignment, error) {
	fams, err := wantedFamilies(svc)
	if err != nil {
		return Assignment{}, err
	}
	if cur, ok := a.services[svc.Key]; ok {
		keep, err := a.keeps(svc, &cur, fams)
		if err != nil {
			return Assignment{}, err
		}
		if keep != nil {
			a.Release(svc.Key)
			a.record(svc, *keep)
			return *keep, nil
		}
	}
	next, err := a.choose(svc, fams)
	if err != nil {
		return Assignment{}, err
	}
	a.Release(svc.Key)
	a.record(svc, next)
	return next, nil
}

// wantedFamilies returns the families to allocate, primary first, and
// validates the requested addresses against them.
func wantedFamilies(svc *Service) ([]Family, error) {
	fams := svc.Families // read-only: sliced, never written
	if len(fams) == 2 && fams[0] == fams[1] || len(fams) > 2 {
		return nil, fmt.Errorf("%w: ipFamilies %v", ErrInvalidRequest, fams)
	}
	if svc.Policy == SingleStack && len(fams) > 1 {
		fams = fams[:1]
	}
	if svc.Policy == RequireDualStack && len(fams) != 2 {
		return nil, fmt.Errorf("%w: RequireDualStack needs two ipFamilies, the Service has %v", ErrInvalidRequest, fams)
	}
	seen := map[Family]bool{}
	for _, r := range svc.Requested {
		f := FamilyOf(r)
		if seen[f] {
			return nil, fmt.Errorf("%w: more than one %s address requested", ErrInvalidRequest, f)
		}
		seen[f] = true
		if len(fams) > 0 && !slices.Contains(fams, f) {
			return nil, fmt.Errorf("%w: %s requested, but the Service's ipFamilies are %v", ErrWrongFamily, r, fams)
		}
	}
	if len(fams) == 0 && len(svc.Requested) > 1 {
		return nil, fmt.Errorf("%w: two addresses requested for a single-stack Service", ErrInvalidRequest)
	}
	return fams, nil
}

// keeps decides whether the current assignment still satisfies the spec.
// It returns the assignment to keep (possibly trimmed or extended by a
// family, from the same pool), nil when the spec asks for new addresses, or
// an error when the current addresses fit the spec but can no longer be
// shared: the Service keeps them and the user is told.
func (a *Allocator) keeps(svc *Service, cur *Assignment, fams []Family) (*Assignment, error) {
	for _, r := range svc.Requested {
		if !slices.Contains(cur.Addrs, r) {
			return nil, nil
		}
	}
	// A named pool asks for a move only when the address is known to come
	// from another pool; an address of unknown origin (restored outside
	// every pool) stays.
	if svc.Pool != "" && cur.Pool != "" && svc.Pool != cur.Pool {
		return nil, nil
	}
	byFam := map[Family]netip.Addr{}
	for _, ad := range cur.Addrs {
		byFam[FamilyOf(ad)] = ad
	}
	keep := &Assignment{Pool: cur.Pool}
	if len(fams) == 0 {
		// No families given: keep what is held (one address).
		keep.Addrs = slices.Clone(cur.Addrs[:1])
	}
	var missing []Family
	for _, f := range fams {
		if ad, ok := byFam[f]; ok {
			keep.Addrs = append(keep.Addrs, ad)
		} else {
			missing = append(missing, f)
		}
	}
	if len(keep.Addrs) == 0 {
		// The primary family changed: the spec asks for a new address.
		return nil, nil
	}
	if keep.Pool == "" {
		// Restored outside every pool; adopt it if a pool covers it now.
		if p := a.readyPoolFor(keep.Addrs[0]); p != nil {
			keep.Pool = p.cfg.Name
		}
	}
	for _, ad := range keep.Addrs {
		if err := compatible(svc, ad, a.used[ad]); err != nil {
			return nil, err
		}
	}
	if len(missing) > 0 {
		// A single-stack Service became dual-stack: add the other family
		// from the same pool, keeping the address it has.
		p := a.pools[keep.Pool]
		var added []netip.Addr
		for _, f := range missing {
			want := requestedOf(svc, f)
			if p == nil || !p.state.Ready {
				if svc.Policy == RequireDualStack || want.IsValid() {
					return nil, fmt.Errorf("%w: cannot add a %s address to %v: IPPool %q is not usable", ErrPoolExhausted, f, keep.Addrs, keep.Pool)
				}
				continue
			}
			ad, err := a.pick(svc, p, f, want)
			if err != nil {
				if svc.Policy == RequireDualStack || want.IsValid() {
					a.undo(p, added)
					return nil, err
				}
				continue
			}
			added = append(added, ad)
		}
		keep.Addrs = append(keep.Addrs, added...)
		slices.SortStableFunc(keep.Addrs, func(x, y netip.Addr) int {
			return slices.Index(fams, FamilyOf(x)) - slices.Index(fams, FamilyOf(y))
		})
	}
	return keep, nil
}

func requestedOf(svc *Service, f Family) netip.Addr {
	for _, r := range svc.Requested {
		if FamilyOf(r) == f {
			return r
		}
	}
	return netip.Addr{}
}

// choose computes a new assignment, ignoring what svc holds now except that
// its own addresses count as available to it.
func (a *Allocator) choose(svc *Service, fams []Family) (Assignment, error) {
	if len(svc.Requested) > 0 {
		p, err := a.requestedPool(svc)
		if err != nil {
			return Assignment{}, err
		}
		return a.fromPool(svc, p, fams)
	}
	if svc.Pool != "" {
		p, ok := a.pools[svc.Pool]
		if !ok || p.deleted {
			return Assignment{}, fmt.Errorf("%w: %q", ErrPoolNotFound, svc.Pool)
		}
		if !p.state.Ready {
			return Assignment{}, fmt.Errorf("%w: IPPool %q: %s", ErrPoolNotReady, svc.Pool, p.state.Message)
		}
		if err := p.allows(svc); err != nil {
			return Assignment{}, err
		}
		return a.fromPool(svc, p, fams)
	}
	// PreferDualStack first looks for a pool that can give both families,
	// then settles for the first that gives one.
	passes := 1
	if svc.Policy == PreferDualStack && len(fams) == 2 {
		passes = 2
	}
	var firstErr error
	for pass := range passes {
		try := svc
		if passes == 2 && pass == 0 {
			strict := *svc
			strict.Policy = RequireDualStack
			try = &strict
		}
		for _, p := range a.auto {
			if p.allows(svc) != nil {
				continue
			}
			as, err := a.fromPool(try, p, fams)
			if err == nil {
				return as, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr == nil {
		return Assignment{}, fmt.Errorf("%w: no ready IPPool with autoAssign admits this Service (check the pools' serviceSelector, namespaceSelector and namespaces)", ErrNoPool)
	}
	return Assignment{}, firstErr
}

// requestedPool finds the one pool that holds every requested address and
// admits the Service.
func (a *Allocator) requestedPool(svc *Service) (*pool, error) {
	var chosen *pool
	for _, r := range svc.Requested {
		p := a.readyPoolFor(r)
		if p == nil {
			if q := a.anyPoolFor(r); q != nil {
				return nil, fmt.Errorf("%w: %s is in IPPool %q: %s", ErrPoolNotReady, r, q.cfg.Name, q.state.Message)
			}
			return nil, fmt.Errorf("%w: %s", ErrNotInPool, r)
		}
		if svc.Pool != "" && p.cfg.Name != svc.Pool {
			return nil, fmt.Errorf("%w: %s is in IPPool %q, but the Service names IPPool %q", ErrNotInPool, r, p.cfg.Name, svc.Pool)
		}
		if chosen != nil && chosen != p {
			return nil, fmt.Errorf("%w: requested addresses lie in different IPPools (%q and %q); a Service's addresses come from one pool", ErrInvalidRequest, chosen.cfg.Name, p.cfg.Name)
		}
		chosen = p
	}
	if err := chosen.allows(svc); err != nil {
		return nil, err
	}
	return chosen, nil
}

// fromPool takes one address per wanted family from p, all or nothing
// (PreferDualStack settles for the families the pool has).
func (a *Allocator) fromPool(svc *Service, p *pool, fams []Family) (Assignment, error) {
	if len(fams) == 0 {
		fams = []Family{IPv4}
		if !p.hasFamily(IPv4) {
			fams = []Family{IPv6}
		}
		if r := svc.Requested; len(r) == 1 {
			fams = []Family{FamilyOf(r[0])}
		}
	}
	var got []netip.Addr
	var firstErr error
	for _, f := range fams {
		want := requestedOf(svc, f)
		if !p.hasFamily(f) {
			err := fmt.Errorf("%w: IPPool %q has no %s addresses", ErrPoolExhausted, p.cfg.Name, f)
			if svc.Policy == PreferDualStack && len(fams) == 2 && !want.IsValid() {
				firstErr = err
				continue
			}
			a.undo(p, got)
			return Assignment{}, err
		}
		ad, err := a.pick(svc, p, f, want)
		if err != nil {
			if svc.Policy == PreferDualStack && len(fams) == 2 && !want.IsValid() && errors.Is(err, ErrPoolExhausted) {
				firstErr = err
				continue
			}
			a.undo(p, got)
			return Assignment{}, err
		}
		got = append(got, ad)
	}
	if len(got) == 0 {
		return Assignment{}, firstErr
	}
	return Assignment{Addrs: got, Pool: p.cfg.Name}, nil
}

// pick chooses one address of family f from p for svc: the requested one,
// else one svc already holds, else one shared under svc's sharing key,
// else the lowest free one. A free address it chooses is taken from the
// free set at once, so a second pick in the same transaction cannot get it;
// callers give it back with undo if the transaction fails, and record
// finds it already taken if it succeeds.
func (a *Allocator) pick(svc *Service, p *pool, f Family, want netip.Addr) (netip.Addr, error) {
	if want.IsValid() {
		if p.cfg.AvoidBuggyIPs && isBuggy(want) {
			return netip.Addr{}, fmt.Errorf("%w: %s ends in .0 or .255 and IPPool %q sets avoidBuggyIPs", ErrPoolNotAllowed, want, p.cfg.Name)
		}
		if st, ok := a.used[want]; ok {
			if err := compatible(svc, want, st); err != nil {
				return netip.Addr{}, err
			}
			if st.pool != p.cfg.Name && !st.has(svc.Key) {
				return netip.Addr{}, fmt.Errorf("%w: %s is held from IPPool %q, not %q", ErrAddressInUse, want, st.pool, p.cfg.Name)
			}
			return want, nil
		}
		if !p.take(want) {
			return netip.Addr{}, fmt.Errorf("%w: %s is not free in IPPool %q", ErrAddressInUse, want, p.cfg.Name)
		}
		return want, nil
	}
	if cur, ok := a.services[svc.Key]; ok {
		for _, ad := range cur.Addrs {
			if FamilyOf(ad) == f && p.contains(ad) && compatible(svc, ad, a.used[ad]) == nil {
				return ad, nil
			}
		}
	}
	if svc.SharingKey != "" {
		// Share only addresses counted against this pool, so every holder
		// of an address agrees on its pool and the pool's finalizer sees it.
		for _, ad := range sortedAddrs(a.shared[svc.SharingKey]) {
			if FamilyOf(ad) == f && p.contains(ad) && a.used[ad].pool == p.cfg.Name && compatible(svc, ad, a.used[ad]) == nil {
				return ad, nil
			}
		}
	}
	ad, ok := p.takeLowest(f)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: IPPool %q has no free %s address", ErrPoolExhausted, p.cfg.Name, f)
	}
	return ad, nil
}

// undo gives back addresses pick took from p's free set and that nobody uses.
func (a *Allocator) undo(p *pool, addrs []netip.Addr) {
	for _, ad := range addrs {
		if _, used := a.used[ad]; !used {
			p.give(ad)
		}
	}
}

func sortedAddrs(m map[netip.Addr]struct{}) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for ad := range m {
		out = append(out, ad)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
