package allocator

import (
	"cmp"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// PoolConfig is what the allocator needs to know of an IPPool.
type PoolConfig struct {
	Name string
	// Addresses are the spec's entries, parsed here so that a pool with a
	// bad entry is reported rather than half used.
	Addresses     []string
	AutoAssign    bool
	AvoidBuggyIPs bool
	// Priority orders eligible pools, lower first; nil sorts after every set one.
	Priority *int32
	// Selectors: nil or empty matches everything.
	ServiceSelector   labels.Selector
	NamespaceSelector labels.Selector
	// Namespaces, when not empty, limits the pool to these namespaces.
	Namespaces []string
	// ExternalIPs lets spec.externalIPs inside the pool be used (and
	// announced); they are then never handed to a load balancer.
	ExternalIPs bool
	// Created orders overlapping pools: the older one wins.
	Created time.Time
	// Unusable, when set, keeps the pool from handing out addresses for a
	// reason the caller found (the pool is being deleted, a selector does
	// not parse); its addresses in use stay accounted to it.
	Unusable *PoolState
	// HeldOutsideSpec are the addresses the pool was last known to keep
	// outside its spec (its published status). With OutsideSpecKnown,
	// Restore attributes an address outside the spec to this pool only if
	// it is listed; without (a pool never judged, or judged before the
	// list existed) any hint naming the pool is trusted.
	HeldOutsideSpec  []Range
	OutsideSpecKnown bool
}

// Pool readiness reasons, shared with the IPPool Ready condition.
const (
	ReasonValid            = "Valid"
	ReasonOverlap          = "Overlap"
	ReasonInvalidAddresses = "InvalidAddresses"
)

// PoolState says whether a pool hands out addresses, and why not.
type PoolState struct {
	Ready   bool
	Reason  string
	Message string
}

type pool struct {
	cfg    PoolConfig
	ranges []Range
	state  PoolState
	// free is set only for ready pools: one per family present.
	free [2]*freeSet
	// taken counts addresses removed from free, per family: free = total - taken.
	taken [2]int64
	total [2]*big.Int
	// allocated counts the addresses attributed to this pool, in or
	// outside its spec, per family.
	allocated [2]int
	// deleted pools are kept only to account for addresses still in use.
	deleted bool
}

func (p *pool) specific() bool {
	return len(p.cfg.Namespaces) > 0 || !selectorEmpty(p.cfg.ServiceSelector) || !selectorEmpty(p.cfg.NamespaceSelector)
}

func selectorEmpty(s labels.Selector) bool { return s == nil || s.Empty() }

// allows reports whether the pool's namespace and label rules admit svc.
func (p *pool) allows(svc *Service) error {
	if len(p.cfg.Namespaces) > 0 && !slices.Contains(p.cfg.Namespaces, svc.Namespace) {
		return fmt.Errorf("%w: IPPool %q is limited to namespaces %v", ErrPoolNotAllowed, p.cfg.Name, p.cfg.Namespaces)
	}
	if !selectorEmpty(p.cfg.NamespaceSelector) && !p.cfg.NamespaceSelector.Matches(labels.Set(svc.NamespaceLabels)) {
		return fmt.Errorf("%w: namespace %q does not match IPPool %q's namespaceSelector %q", ErrPoolNotAllowed, svc.Namespace, p.cfg.Name, p.cfg.NamespaceSelector)
	}
	if !selectorEmpty(p.cfg.ServiceSelector) && !p.cfg.ServiceSelector.Matches(labels.Set(svc.Labels)) {
		return fmt.Errorf("%w: service labels do not match IPPool %q's serviceSelector %q", ErrPoolNotAllowed, p.cfg.Name, p.cfg.ServiceSelector)
	}
	return nil
}

// contains reports whether a lies in the pool's current spec.
func (p *pool) contains(a netip.Addr) bool {
	for _, r := range p.ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// mayHold reports whether a is this pool's by its spec or by what it is
// known to keep outside it (see PoolConfig.HeldOutsideSpec).
func (p *pool) mayHold(a netip.Addr) bool {
	if p.contains(a) || !p.cfg.OutsideSpecKnown {
		return true
	}
	for _, r := range p.cfg.HeldOutsideSpec {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// allocatable: in the spec and not skipped by avoidBuggyIPs.
func (p *pool) allocatable(a netip.Addr) bool {
	return p.contains(a) && !p.skips(a)
}

// skips reports addresses avoidBuggyIPs keeps out of use.
func (p *pool) skips(a netip.Addr) bool { return p.cfg.AvoidBuggyIPs && isBuggy(a) }

func (p *pool) hasFamily(f Family) bool { return p.total[f] != nil && p.total[f].Sign() > 0 }

// build (re)creates the free sets of a ready pool from its ranges minus the
// addresses in use anywhere.
func (p *pool) build(used map[netip.Addr]*addrState) {
	p.free = [2]*freeSet{}
	p.taken = [2]int64{}
	p.total = [2]*big.Int{new(big.Int), new(big.Int)}
	for _, r := range p.ranges {
		n := r.Size()
		if p.cfg.AvoidBuggyIPs {
			n.Sub(n, big.NewInt(r.buggyCount()))
		}
		p.total[r.Family()].Add(p.total[r.Family()], n)
	}
	if !p.state.Ready {
		return
	}
	// Used addresses inside the ranges split the intervals; sort them once.
	var inside []netip.Addr
	for a := range used {
		if p.contains(a) {
			inside = append(inside, a)
		}
	}
	slices.SortFunc(inside, netip.Addr.Compare)
	for _, r := range p.ranges {
		f := r.Family()
		if p.free[f] == nil {
			p.free[f] = newFreeSet()
		}
		from := r.From
		i, _ := slices.BinarySearchFunc(inside, r.From, netip.Addr.Compare)
		for ; i < len(inside) && inside[i].Compare(r.To) <= 0; i++ {
			a := inside[i]
			if from.Less(a) {
				p.free[f].add(interval{from: from, to: a.Prev()})
			}
			if p.allocatable(a) {
				p.taken[f]++
			}
			from = a.Next()
		}
		if from.IsValid() && from.Compare(r.To) <= 0 && from.Is4() == r.From.Is4() {
			p.free[f].add(interval{from: from, to: r.To})
		}
	}
}

// takeLowest hands out the lowest free address of family f.
func (p *pool) takeLowest(f Family) (netip.Addr, bool) {
	if p.free[f] == nil {
		return netip.Addr{}, false
	}
	a, ok := p.free[f].lowest(func(a netip.Addr) bool { return !p.skips(a) })
	if ok {
		p.taken[f]++
	}
	return a, ok
}

// take removes a specific address from the free set; false if it is not free.
func (p *pool) take(a netip.Addr) bool {
	f := FamilyOf(a)
	if p.free[f] == nil || !p.allocatable(a) || !p.free[f].take(a) {
		return false
	}
	p.taken[f]++
	return true
}

// give returns an address this pool could hand out.
func (p *pool) give(a netip.Addr) {
	f := FamilyOf(a)
	if p.free[f] == nil || !p.allocatable(a) {
		return
	}
	if p.free[f].give(a) {
		p.taken[f]--
	}
}

// poolOrder sorts eligible pools: a set priority first (lowest wins), then
// pools whose selectors single the Service out before catch-all pools,
// then name, so the choice is deterministic.
func poolOrder(a, b *pool) int {
	switch {
	case a.cfg.Priority != nil && b.cfg.Priority == nil:
		return -1
	case a.cfg.Priority == nil && b.cfg.Priority != nil:
		return 1
	case a.cfg.Priority != nil && *a.cfg.Priority != *b.cfg.Priority:
		return cmp.Compare(*a.cfg.Priority, *b.cfg.Priority)
	case a.specific() != b.specific():
		if a.specific() {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.cfg.Name, b.cfg.Name)
}
