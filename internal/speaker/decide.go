package speaker

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/election"
)

// Pool is what the speaker needs of an IPPool.
type Pool struct {
	Name    string
	Ranges  []allocator.Range
	Created time.Time
	// ExternalIPs: spec.externalIPs of any Service inside this pool may be announced.
	ExternalIPs bool
	// HoldsOutsideSpec is the pool's InUseOutsideSpec condition: it shrank
	// and the controller keeps addresses outside its spec with their
	// Services, so those are still the pool's to announce.
	HoldsOutsideSpec bool
	L2               *L2Policy
	BGP              *BGPPolicy
}

// L2Policy is a pool's announce.layer2.
type L2Policy struct {
	Interfaces   []string
	NodeSelector labels.Selector
}

// BGPPolicy is a pool's announce.bgp.
type BGPPolicy struct {
	Peers               []string
	NodeSelector        labels.Selector
	Communities         []string
	LargeCommunities    []string
	LocalPref           *uint32
	AggregationLength   int
	AggregationLengthV6 int
}

// Service is what the speaker needs of a Service.
type Service struct {
	Key string
	// Addrs are the load-balancer addresses from its status.
	Addrs []netip.Addr
	// PoolHint is the herald.dev/pool-allocated annotation.
	PoolHint string
	// ExternalIPs are spec.externalIPs: announced only when they lie in a
	// pool with externalIPs: true and are no load balancer's address.
	ExternalIPs []netip.Addr
	// Local is externalTrafficPolicy: Local; LocalNodes then holds the
	// nodes with a ready or serving endpoint.
	Local      bool
	LocalNodes map[string]bool
}

// L2Announcement is one address this node answers ARP/NDP for.
type L2Announcement struct {
	Addr       netip.Addr
	Interfaces []string
	Pool       string
	Services   []string
}

// BGPAnnouncement is one address this node advertises over BGP.
type BGPAnnouncement struct {
	Addr     netip.Addr
	Pool     string
	Policy   *BGPPolicy
	Services []string
}

// Desired is what this node announces, each list sorted by address.
type Desired struct {
	L2  []L2Announcement
	BGP []BGPAnnouncement
	// Refused are addresses in a Service's status that lie in no IPPool:
	// never announced, so that a status written by someone else cannot
	// hijack traffic (the CVE-2020-8554 class).
	Refused map[netip.Addr][]string
}

type addrUse struct {
	services []string
	pool     string
	local    map[string]bool // union over Local services; nil if none is Local
	key      netip.Addr      // the layer-2 election key
}

// Decide computes what self announces. nodes describes every node known
// from the API together with its membership state; it is not modified.
//
// Layer 2 has one owner per address, chosen by rendezvous hashing on the
// Service's IPv4 address (else its IPv6 one), so both families of a
// dual-stack Service and all Services sharing an address land on one node.
// BGP is announced by every candidate.
func Decide(self string, nodes []election.NodeInfo, pools []Pool, svcs []Service) Desired {
	poolIdx := newPoolIndex(pools)
	uses := map[netip.Addr]*addrUse{}
	out := Desired{}
	sorted := slices.SortedFunc(slices.Values(svcs), func(a, b Service) int { return cmp.Compare(a.Key, b.Key) })
	lbAddrs := map[netip.Addr]bool{}
	for _, s := range sorted {
		for _, a := range s.Addrs {
			lbAddrs[a] = true
		}
	}
	refuse := func(a netip.Addr, svc string) {
		if out.Refused == nil {
			out.Refused = map[netip.Addr][]string{}
		}
		out.Refused[a] = append(out.Refused[a], svc)
	}
	for _, s := range sorted {
		key := electionKey(s.Addrs)
		if !key.IsValid() {
			key = electionKey(s.ExternalIPs)
		}
		for i, a := range slices.Concat(s.Addrs, s.ExternalIPs) {
			var p *Pool
			if i < len(s.Addrs) {
				p = poolIdx.lookup(a, s.PoolHint)
			} else if !lbAddrs[a] {
				p = poolIdx.lookupExternal(a)
			}
			if p == nil {
				refuse(a, s.Key)
				continue
			}
			u := uses[a]
			if u == nil {
				u = &addrUse{pool: p.Name, key: key}
				uses[a] = u
			} else if betterKey(key, u.key) {
				u.key = key
			}
			u.services = append(u.services, s.Key)
			if s.Local {
				if u.local == nil {
					u.local = map[string]bool{}
				}
				for n, ok := range s.LocalNodes {
					if ok {
						u.local[n] = true
					}
				}
			}
		}
	}

	// Candidates for Cluster-policy addresses depend only on the selector,
	// so they are computed once per pool and protocol; rankers hash each
	// candidate name once for all addresses.
	type cached struct {
		cands  []string
		ranker *election.Ranker
	}
	l2Cache, bgpCache := map[string]cached{}, map[string]cached{}
	candidates := func(cache map[string]cached, pool string, sel labels.Selector, local map[string]bool) cached {
		if local != nil {
			c := election.Candidates(nodes, sel, local)
			return cached{cands: c, ranker: election.NewRanker(c)}
		}
		if c, ok := cache[pool]; ok {
			return c
		}
		c := election.Candidates(nodes, sel, nil)
		cache[pool] = cached{cands: c, ranker: election.NewRanker(c)}
		return cache[pool]
	}
	for _, a := range slices.SortedFunc(func(yield func(netip.Addr) bool) {
		for a := range uses {
			if !yield(a) {
				return
			}
		}
	}, netip.Addr.Compare) {
		u := uses[a]
		p := poolIdx.byName[u.pool]
		if p.L2 != nil {
			c := candidates(l2Cache, p.Name, p.L2.NodeSelector, u.local)
			if c.ranker.Owner(u.key) == self {
				out.L2 = append(out.L2, L2Announcement{Addr: a, Interfaces: p.L2.Interfaces, Pool: p.Name, Services: u.services})
			}
		}
		if p.BGP != nil {
			c := candidates(bgpCache, p.Name, p.BGP.NodeSelector, u.local)
			if _, ok := slices.BinarySearch(c.cands, self); ok {
				out.BGP = append(out.BGP, BGPAnnouncement{Addr: a, Pool: p.Name, Policy: p.BGP, Services: u.services})
			}
		}
	}
	return out
}

// electionKey is the Service's IPv4 address if it has one, else its IPv6 one.
func electionKey(addrs []netip.Addr) netip.Addr {
	for _, a := range addrs {
		if a.Is4() {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return netip.Addr{}
}

// betterKey orders the election keys of Services sharing an address, so
// that every speaker picks the same one: an IPv4 key first (it keeps a
// dual-stack Service's two families together when an IPv6-only Service
// shares one of them), then the lowest.
func betterKey(k, than netip.Addr) bool {
	if k.Is4() != than.Is4() {
		return k.Is4()
	}
	return k.Less(than)
}

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
// it allocated from.
func (idx *poolIndex) lookup(a netip.Addr, hint string) *Pool {
	if p, ok := idx.byName[hint]; ok && (p.contains(a) || p.HoldsOutsideSpec) {
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

func (p *Pool) contains(a netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}
