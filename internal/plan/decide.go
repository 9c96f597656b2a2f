package plan

import (
	"cmp"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/election"
)

type addrUse struct {
	services []string
	pool     string
	local    map[string]bool // union over Local services; nil if none is Local
	key      netip.Addr      // the layer-2 election key
}

// announcements computes what self announces. nodes describes every node
// known from the API together with its membership state; it is not
// modified.
//
// Layer 2 has one owner per address, chosen by rendezvous hashing on the
// Service's IPv4 address (else its IPv6 one), so both families of a
// dual-stack Service and all Services sharing an address land on one node.
// BGP is announced by every candidate.
func announcements(self string, nodes []election.NodeInfo, pools []Pool, svcs []Service) Plan {
	poolIdx := newPoolIndex(pools)
	uses := map[netip.Addr]*addrUse{}
	out := Plan{}
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
