package allocator

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// FamilyPolicy mirrors a Service's spec.ipFamilyPolicy.
type FamilyPolicy int

// The three policies; the zero value is SingleStack, as in Kubernetes.
const (
	SingleStack FamilyPolicy = iota
	PreferDualStack
	RequireDualStack
)

// Port is one protocol and port a Service exposes, for sharing checks.
type Port struct {
	Protocol string
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// Service is what the allocator needs to know of a Service.
type Service struct {
	// Key identifies the Service, namespace/name.
	Key             string
	Namespace       string
	Labels          map[string]string
	NamespaceLabels map[string]string
	// Families is spec.ipFamilies in order; empty means one address of
	// whichever family the pool offers, IPv4 first.
	Families []Family
	Policy   FamilyPolicy
	// Count is how many addresses of each family the Service asks for
	// (herald.dev/address-count), at most MaxCount; 0 means 1.
	Count int
	// Requested are explicit addresses (herald.dev/ips or
	// spec.loadBalancerIP), at most Count per family.
	Requested []netip.Addr
	// Pool is the pool the Service names (herald.dev/pool), if any.
	Pool string
	// SharingKey (herald.dev/share) lets Services with equal keys share an
	// address when their ports do not collide.
	SharingKey string
	Ports      []Port
	// Local is externalTrafficPolicy: Local; BackendKey identifies the
	// endpoints it selects (a canonical selector string). Local Services
	// share only with Local Services of the same BackendKey, because one
	// address has one set of announcing nodes.
	Local      bool
	BackendKey string
	// ExternalIP marks a record made by UseExternalIPs.
	ExternalIP bool
}

// Assignment is the set of addresses a Service holds and the pool they
// count against ("" for restored addresses that lie in no pool). Addrs is
// slot by slot: the first address of each family in the order of the
// Service's families, then the second of each, and so on, so that a
// Service with one address per family reads as it always did.
type Assignment struct {
	Addrs []netip.Addr
	Pool  string
}

type addrState struct {
	pool     string
	shareKey string
	// users is a slice, not a map: almost every address has one user, and
	// this is on the allocation path.
	users []*Service
}

func (st *addrState) has(key string) bool {
	return slices.ContainsFunc(st.users, func(u *Service) bool { return u.Key == key })
}

// Allocator tracks pools and assignments. It is not safe for concurrent use:
// the controller calls it from its single worker.
type Allocator struct {
	pools map[string]*pool
	// ready holds every range of every ready pool sorted by start; ready
	// pools never overlap, so an address has at most one entry.
	ready []readyRange
	// auto is the ready autoAssign pools in allocation order.
	auto     []*pool
	used     map[netip.Addr]*addrState
	services map[string]Assignment
	// shared indexes addresses by sharing key so a Service with a key finds
	// its partners without scanning.
	shared map[string]map[netip.Addr]struct{}
	// external indexes the accepted spec.externalIPs by Service key.
	external map[string][]netip.Addr
}

type readyRange struct {
	r Range
	p *pool
}

// New returns an empty allocator.
func New() *Allocator {
	return &Allocator{
		pools:    map[string]*pool{},
		used:     map[netip.Addr]*addrState{},
		services: map[string]Assignment{},
		shared:   map[string]map[netip.Addr]struct{}{},
		external: map[string][]netip.Addr{},
	}
}

// SetPools replaces the pool configuration and returns each pool's state.
// Nothing already assigned moves: addresses of removed or shrunk pools stay
// with their Services and keep counting against their pool.
func (a *Allocator) SetPools(cfgs []PoolConfig) map[string]PoolState {
	next := make(map[string]*pool, len(cfgs))
	for _, c := range cfgs {
		p := &pool{cfg: c, state: PoolState{Ready: true, Reason: ReasonValid}}
		var bad []string
		for _, s := range c.Addresses {
			r, err := ParseRange(s)
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			p.ranges = append(p.ranges, r)
		}
		if c.Unusable != nil {
			p.state = *c.Unusable
			p.state.Ready = false
		} else if len(bad) > 0 {
			p.state = PoolState{Reason: ReasonInvalidAddresses, Message: strings.Join(bad, "; ")}
		} else if msg := selfOverlap(p.ranges); msg != "" {
			p.state = PoolState{Reason: ReasonInvalidAddresses, Message: msg}
		}
		if old, ok := a.pools[c.Name]; ok {
			p.allocated = old.allocated
		}
		next[c.Name] = p
	}
	// The older pool (then the lower name) keeps overlapping addresses.
	order := slices.SortedFunc(maps.Values(next), func(x, y *pool) int {
		if c := x.cfg.Created.Compare(y.cfg.Created); c != 0 {
			return c
		}
		return strings.Compare(x.cfg.Name, y.cfg.Name)
	})
	var accepted []*pool
	for _, p := range order {
		if !p.state.Ready {
			continue
		}
		for _, q := range accepted {
			if r, s, ok := overlap(p.ranges, q.ranges); ok {
				p.state = PoolState{Reason: ReasonOverlap, Message: fmt.Sprintf("%s overlaps %s of IPPool %q, which is older; none of this pool's addresses are used", r, s, q.cfg.Name)}
				break
			}
		}
		if p.state.Ready {
			accepted = append(accepted, p)
		}
	}
	// Pools that still have addresses but vanished from the config keep
	// their bookkeeping so those addresses stay accounted for.
	for name, old := range a.pools {
		if _, ok := next[name]; !ok && old.allocated != [2]int{} {
			old.state = PoolState{Reason: ReasonInvalidAddresses, Message: "IPPool was deleted while addresses were in use"}
			old.deleted = true
			old.ranges = nil
			old.free = [2]*freeSet{}
			next[name] = old
		}
	}
	for name, p := range next {
		old, ok := a.pools[name]
		switch {
		case old == p: // a deleted pool kept for its addresses
		case ok && old.state.Ready && p.state.Ready && sameSpec(old, p):
			// Rebuilding costs O(addresses in use); skip it when only
			// selectors, priority or autoAssign changed.
			p.free, p.taken, p.total = old.free, old.taken, old.total
		default:
			p.build(a.used)
		}
	}
	a.pools = next
	a.ready = a.ready[:0]
	a.auto = a.auto[:0]
	for _, p := range accepted {
		for _, r := range p.ranges {
			a.ready = append(a.ready, readyRange{r: r, p: p})
		}
		if p.cfg.AutoAssign {
			a.auto = append(a.auto, p)
		}
	}
	slices.SortFunc(a.ready, func(x, y readyRange) int { return x.r.From.Compare(y.r.From) })
	slices.SortFunc(a.auto, poolOrder)
	states := make(map[string]PoolState, len(cfgs))
	for _, c := range cfgs {
		states[c.Name] = a.pools[c.Name].state
	}
	return states
}

func sameSpec(a, b *pool) bool {
	return slices.Equal(a.ranges, b.ranges) && a.cfg.AvoidBuggyIPs == b.cfg.AvoidBuggyIPs
}

func selfOverlap(rs []Range) string {
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			if rs[i].Overlaps(rs[j]) {
				return fmt.Sprintf("entries %s and %s overlap", rs[i], rs[j])
			}
		}
	}
	return ""
}

func overlap(a, b []Range) (Range, Range, bool) {
	for _, r := range a {
		for _, s := range b {
			if r.Overlaps(s) {
				return r, s, true
			}
		}
	}
	return Range{}, Range{}, false
}

// readyPoolFor returns the ready pool whose spec holds a, if any.
func (a *Allocator) readyPoolFor(addr netip.Addr) *pool {
	i, found := slices.BinarySearchFunc(a.ready, addr, func(rr readyRange, t netip.Addr) int { return rr.r.From.Compare(t) })
	if !found {
		i--
	}
	if i >= 0 && a.ready[i].r.Contains(addr) {
		return a.ready[i].p
	}
	return nil
}

// anyPoolFor returns some pool whose spec holds a, ready or not, preferring
// the ready one; used to explain refusals and to attribute restored addresses.
func (a *Allocator) anyPoolFor(addr netip.Addr) *pool {
	if p := a.readyPoolFor(addr); p != nil {
		return p
	}
	for _, name := range slices.Sorted(maps.Keys(a.pools)) {
		if a.pools[name].contains(addr) {
			return a.pools[name]
		}
	}
	return nil
}

// Assigned returns what a Service holds.
func (a *Allocator) Assigned(key string) (Assignment, bool) {
	as, ok := a.services[key]
	if !ok {
		return Assignment{}, false
	}
	return Assignment{Addrs: slices.Clone(as.Addrs), Pool: as.Pool}, true
}

// Restore records an assignment that already exists in a Service's status,
// without the checks Allocate makes on pools: at controller start every
// existing address must be replayed before any new one is handed out, and
// it stays where it is even if its pool changed meanwhile. poolHint is the
// herald.dev/pool-allocated annotation. It refuses only an address that
// another Service already holds without a compatible sharing key: that is
// a duplicate, and the caller decides which Service keeps it. The returned
// pool is "" when the address lies in no pool; it is recorded anyway so
// that no other Service is ever given it.
func (a *Allocator) Restore(svc *Service, addrs []netip.Addr, poolHint string) (string, error) {
	// A status written by hand may repeat an address. Every distinct
	// address is kept, up to MaxCount per family, even beyond what the
	// Service asks for: a bad or missing herald.dev/address-count must not
	// free an address another Service could take before this one is
	// synced; the sync then trims to what the spec asks.
	var uniq []netip.Addr
	var perFam [2]int
	for _, ad := range addrs {
		if f := FamilyOf(ad); !slices.Contains(uniq, ad) && perFam[f] < MaxCount {
			uniq = append(uniq, ad)
			perFam[f]++
		}
	}
	addrs = uniq
	if len(addrs) == 0 {
		return "", fmt.Errorf("%w: nothing to restore", ErrInvalidRequest)
	}
	for _, ad := range addrs {
		if st, ok := a.used[ad]; ok {
			if err := compatible(svc, ad, st); err != nil {
				return "", err
			}
		}
	}
	// Attribution, most trusted first: the controller's own annotation, the
	// pool whose spec holds the address, then the pool the Service names
	// (its address may lie outside a shrunk pool, and attributing it
	// elsewhere would make the next sync think the spec asks for a move).
	// Both annotations are the Service's, which its owner may rewrite: a
	// pool they name gets an address outside its spec only if the pool is
	// known to have kept it (mayHold).
	poolName := ""
	if p, ok := a.pools[poolHint]; ok && poolHint != "" && p.mayHold(addrs[0]) {
		poolName = p.cfg.Name
	} else if p := a.anyPoolFor(addrs[0]); p != nil {
		poolName = p.cfg.Name
	} else if p, ok := a.pools[svc.Pool]; ok && svc.Pool != "" && p.mayHold(addrs[0]) {
		poolName = p.cfg.Name
	}
	a.Release(svc.Key)
	a.record(svc, Assignment{Addrs: addrs, Pool: poolName})
	return poolName, nil
}

// Release drops a Service's assignment and returns the addresses that no
// Service holds any more.
func (a *Allocator) Release(key string) []netip.Addr {
	as, ok := a.services[key]
	if !ok {
		return nil
	}
	var freed []netip.Addr
	for _, ad := range as.Addrs {
		if a.unuse(key, ad) {
			freed = append(freed, ad)
		}
	}
	delete(a.services, key)
	return freed
}

// unuse removes key from the users of ad and frees ad when it was the last.
func (a *Allocator) unuse(key string, ad netip.Addr) bool {
	st, ok := a.used[ad]
	if !ok {
		return false
	}
	st.users = slices.DeleteFunc(st.users, func(u *Service) bool { return u.Key == key })
	if len(st.users) > 0 {
		return false
	}
	delete(a.used, ad)
	if st.shareKey != "" {
		delete(a.shared[st.shareKey], ad)
		if len(a.shared[st.shareKey]) == 0 {
			delete(a.shared, st.shareKey)
		}
	}
	if p, ok := a.pools[st.pool]; ok {
		p.allocated[FamilyOf(ad)]--
	}
	if p := a.readyPoolFor(ad); p != nil {
		p.give(ad)
	}
	return true
}

// record marks every address of as used by svc. It keeps svc itself:
// callers hand over a Service they no longer modify.
func (a *Allocator) record(svc *Service, as Assignment) {
	a.services[svc.Key] = as
	for _, ad := range as.Addrs {
		st, ok := a.used[ad]
		if !ok {
			st = &addrState{pool: as.Pool, shareKey: svc.SharingKey}
			a.used[ad] = st
			if p := a.readyPoolFor(ad); p != nil {
				p.take(ad)
			}
			if p, ok := a.pools[as.Pool]; ok {
				p.allocated[FamilyOf(ad)]++
			}
			if svc.SharingKey != "" {
				if a.shared[svc.SharingKey] == nil {
					a.shared[svc.SharingKey] = map[netip.Addr]struct{}{}
				}
				a.shared[svc.SharingKey][ad] = struct{}{}
			}
		}
		if !st.has(svc.Key) {
			st.users = append(st.users, svc)
		}
	}
}

// compatible reports whether svc may use ad alongside its current users.
func compatible(svc *Service, ad netip.Addr, st *addrState) error {
	if len(st.users) == 0 || len(st.users) == 1 && st.users[0].Key == svc.Key {
		return nil
	}
	others := slices.DeleteFunc(slices.Clone(st.users), func(u *Service) bool { return u.Key == svc.Key })
	if len(others) == 0 {
		return nil
	}
	slices.SortFunc(others, func(x, y *Service) int { return strings.Compare(x.Key, y.Key) })
	// spec.externalIPs are shared freely among Services listing them (as
	// kube-proxy allows) and never with a load-balancer assignment.
	for _, o := range others {
		if o.ExternalIP != svc.ExternalIP {
			if svc.ExternalIP {
				return fmt.Errorf("%w: %s is the load-balancer address of %s", ErrAddressInUse, ad, o.Key)
			}
			return fmt.Errorf("%w: %s is an externalIP of %s", ErrAddressInUse, ad, strings.TrimPrefix(o.Key, externalPrefix))
		}
	}
	if svc.ExternalIP {
		return nil
	}
	if svc.SharingKey == "" || st.shareKey != svc.SharingKey {
		hint := "it has no sharing key"
		if st.shareKey != "" {
			hint = fmt.Sprintf("its sharing key is %q", st.shareKey)
		}
		return fmt.Errorf("%w: %s is held by %s and %s", ErrAddressInUse, ad, others[0].Key, hint)
	}
	for _, o := range others {
		for _, p := range svc.Ports {
			if slices.Contains(o.Ports, p) {
				return fmt.Errorf("%w: %s %s is already used on %s by %s", ErrPortCollision, p, "port", ad, o.Key)
			}
		}
		if svc.Local || o.Local {
			if !svc.Local || !o.Local {
				return fmt.Errorf("%w: %s is shared with %s and only Services that both use externalTrafficPolicy Local may share it with a Local one", ErrSharingIncompatible, ad, o.Key)
			}
			if svc.BackendKey != o.BackendKey {
				return fmt.Errorf("%w: %s is shared with %s, and externalTrafficPolicy Local Services must select the same endpoints (%q vs %q)", ErrSharingIncompatible, ad, o.Key, svc.BackendKey, o.BackendKey)
			}
		}
	}
	return nil
}
