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

// MaxCount is the most addresses of one family a Service may ask for.
// Each address of a layer-2 Service wants a node of its own, so more than
// a handful rarely helps; the cap bounds what one Service's annotation can
// take from a pool and what the speakers place for it.
const MaxCount = 16

// perFamily is how many addresses of each family svc asks for.
func (svc *Service) perFamily() int { return max(svc.Count, 1) }

// wantedFamilies returns the families to allocate, primary first, and
// validates the requested addresses against them.
func wantedFamilies(svc *Service) ([]Family, error) {
	fams := svc.Families // read-only: sliced, never written
	if len(fams) == 2 && fams[0] == fams[1] || len(fams) > 2 {
		return nil, fmt.Errorf("%w: ipFamilies %v", ErrInvalidRequest, fams)
	}
	if svc.Count < 0 || svc.Count > MaxCount {
		return nil, fmt.Errorf("%w: %d addresses per family asked for; the most is %d", ErrInvalidRequest, svc.Count, MaxCount)
	}
	if svc.Policy == SingleStack && len(fams) > 1 {
		fams = fams[:1]
	}
	if svc.Policy == RequireDualStack && len(fams) != 2 {
		return nil, fmt.Errorf("%w: RequireDualStack needs two ipFamilies, the Service has %v", ErrInvalidRequest, fams)
	}
	n := svc.perFamily()
	var seen [2]int
	for i, r := range svc.Requested {
		f := FamilyOf(r)
		if slices.Contains(svc.Requested[:i], r) {
			return nil, fmt.Errorf("%w: %s requested twice", ErrInvalidRequest, r)
		}
		if seen[f]++; seen[f] > n {
			if n == 1 {
				return nil, fmt.Errorf("%w: more than one %s address requested", ErrInvalidRequest, f)
			}
			return nil, fmt.Errorf("%w: more than %d %s addresses requested, the number the Service asks for", ErrInvalidRequest, n, f)
		}
		if len(fams) > 0 && !slices.Contains(fams, f) {
			return nil, fmt.Errorf("%w: %s requested, but the Service's ipFamilies are %v", ErrWrongFamily, r, fams)
		}
	}
	if len(fams) == 0 && seen[IPv4] > 0 && seen[IPv6] > 0 {
		return nil, fmt.Errorf("%w: addresses of two families requested for a single-stack Service", ErrInvalidRequest)
	}
	return fams, nil
}

// keeps decides whether the current assignment still satisfies the spec.
// It returns the assignment to keep (possibly trimmed, or extended by a
// family or by more addresses of a family, from the same pool), nil when
// the spec asks for new addresses, or an error when the current addresses
// fit the spec but can no longer be shared, or the addresses the spec adds
// cannot be had: the Service keeps what it holds and the user is told.
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
	if len(fams) == 0 {
		// No families given: stay with the family held (or requested).
		f := FamilyOf(cur.Addrs[0])
		if len(svc.Requested) > 0 {
			f = FamilyOf(svc.Requested[0])
		}
		fams = []Family{f}
	}
	n := svc.perFamily()
	held := make([][]netip.Addr, len(fams))
	total := 0
	for i, f := range fams {
		held[i] = keepOf(cur.Addrs, f, requestedOf(svc, f), n)
		total += len(held[i])
	}
	if total == 0 {
		// The family changed: the spec asks for new addresses.
		return nil, nil
	}
	keep := &Assignment{Pool: cur.Pool}
	if keep.Pool == "" {
		// Restored outside every pool; adopt it if a pool covers it now.
		if p := a.readyPoolFor(slices.Concat(held...)[0]); p != nil {
			keep.Pool = p.cfg.Name
		}
	}
	for _, ad := range slices.Concat(held...) {
		if err := compatible(svc, ad, a.used[ad]); err != nil {
			return nil, err
		}
	}
	// A single-stack Service became dual-stack, or asks for more addresses
	// per family: add them from the same pool, keeping what it has. A family
	// it already holds must be completed; a new one is optional only for
	// PreferDualStack.
	p := a.pools[keep.Pool]
	var added []netip.Addr
	for i, f := range fams {
		missing := n - len(held[i])
		if missing == 0 {
			continue
		}
		required := svc.Policy == RequireDualStack || len(held[i]) > 0
		if p == nil || !p.state.Ready {
			if required {
				a.undo(p, added)
				return nil, fmt.Errorf("%w: cannot add %s addresses to %v: IPPool %q is not usable", ErrPoolExhausted, f, slices.Concat(held...), keep.Pool)
			}
			continue
		}
		before := len(added)
		for range missing {
			ad, err := a.pick(svc, p, f, netip.Addr{}, slices.Concat(slices.Concat(held...), added))
			if err != nil {
				if required {
					a.undo(p, added)
					return nil, countedErr(err, p, f, len(held[i])+len(added)-before, n)
				}
				a.undo(p, added[before:])
				added = added[:before]
				break
			}
			added = append(added, ad)
		}
		held[i] = append(held[i], added[before:]...)
	}
	keep.Addrs = interleave(held)
	return keep, nil
}

// keepOf returns the addresses of family f in held, in their order, that a
// Service asking for n of them keeps: every requested one, then the first
// of the others.
func keepOf(held []netip.Addr, f Family, requested []netip.Addr, n int) []netip.Addr {
	room := n
	for _, ad := range held {
		if slices.Contains(requested, ad) {
			room--
		}
	}
	var out []netip.Addr
	for _, ad := range held {
		switch {
		case FamilyOf(ad) != f:
		case slices.Contains(requested, ad):
			out = append(out, ad)
		case room > 0:
			out = append(out, ad)
			room--
		}
	}
	return out
}

// interleave lists per-family addresses slot by slot (see Assignment).
func interleave(byFam [][]netip.Addr) []netip.Addr {
	var out []netip.Addr
	for i := 0; ; i++ {
		n := len(out)
		for _, fam := range byFam {
			if i < len(fam) {
				out = append(out, fam[i])
			}
		}
		if len(out) == n {
			return out
		}
	}
}

// countedErr says how far a Service asking for several addresses got
// before its pool ran out.
func countedErr(err error, p *pool, f Family, got, n int) error {
	if n == 1 || !errors.Is(err, ErrPoolExhausted) {
		return err
	}
	return fmt.Errorf("%w: IPPool %q ran out of free %s addresses after %d of the %d the Service asks for", ErrPoolExhausted, p.cfg.Name, f, got, n)
}

// requestedOf returns the requested addresses of family f, in order.
func requestedOf(svc *Service, f Family) []netip.Addr {
	var out []netip.Addr
	for _, r := range svc.Requested {
		if FamilyOf(r) == f {
			out = append(out, r)
		}
	}
	return out
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

// fromPool takes the wanted number of addresses of each wanted family from
// p, all or nothing (PreferDualStack settles for the families the pool can
// give in full).
func (a *Allocator) fromPool(svc *Service, p *pool, fams []Family) (Assignment, error) {
	if len(fams) == 0 {
		fams = []Family{IPv4}
		if !p.hasFamily(IPv4) {
			fams = []Family{IPv6}
		}
		if r := svc.Requested; len(r) > 0 {
			fams = []Family{FamilyOf(r[0])}
		}
	}
	n := svc.perFamily()
	got := make([][]netip.Addr, len(fams))
	var picked []netip.Addr
	var firstErr error
	for i, f := range fams {
		wants := requestedOf(svc, f)
		optional := svc.Policy == PreferDualStack && len(fams) == 2 && len(wants) == 0
		if !p.hasFamily(f) {
			err := fmt.Errorf("%w: IPPool %q has no %s addresses", ErrPoolExhausted, p.cfg.Name, f)
			if optional {
				firstErr = err
				continue
			}
			a.undo(p, picked)
			return Assignment{}, err
		}
		before := len(picked)
		for j := range n {
			var want netip.Addr
			if j < len(wants) {
				want = wants[j]
			}
			ad, err := a.pick(svc, p, f, want, picked)
			if err != nil {
				err = countedErr(err, p, f, j, n)
				if optional && errors.Is(err, ErrPoolExhausted) {
					a.undo(p, picked[before:])
					picked = picked[:before]
					firstErr = err
					break
				}
				a.undo(p, picked)
				return Assignment{}, err
			}
			picked = append(picked, ad)
		}
		got[i] = picked[before:]
	}
	if len(picked) == 0 {
		return Assignment{}, firstErr
	}
	if n > 1 {
		// With one address per family, picked is in slot order already.
		picked = interleave(got)
	}
	return Assignment{Addrs: picked, Pool: p.cfg.Name}, nil
}

// pick chooses one address of family f from p for svc, other than those in
// taken (already chosen in this transaction): the requested one, else one
// svc already holds, else one shared under svc's sharing key, else the
// lowest free one. A free address it chooses is taken from the free set at
// once, so a second pick in the same transaction cannot get it; callers
// give it back with undo if the transaction fails, and record finds it
// already taken if it succeeds.
func (a *Allocator) pick(svc *Service, p *pool, f Family, want netip.Addr, taken []netip.Addr) (netip.Addr, error) {
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
			if FamilyOf(ad) == f && !slices.Contains(taken, ad) && p.contains(ad) && compatible(svc, ad, a.used[ad]) == nil {
				return ad, nil
			}
		}
	}
	if svc.SharingKey != "" {
		// Share only addresses counted against this pool, so every holder
		// of an address agrees on its pool and the pool's finalizer sees it.
		for _, ad := range sortedAddrs(a.shared[svc.SharingKey]) {
			if FamilyOf(ad) == f && !slices.Contains(taken, ad) && p.contains(ad) && a.used[ad].pool == p.cfg.Name && compatible(svc, ad, a.used[ad]) == nil {
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
