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
	// The Service and slot whose key is key: with several slots, that
	// Service's placement decides the address's layer-2 owner.
	svc    int
	slot   int
	nslots int
}

// announcements computes what self announces. nodes describes every node
// known from the API together with its membership state; it is not
// modified.
//
// Layer 2 has one owner per address, chosen by rendezvous hashing on the
// Service's IPv4 address (else its IPv6 one), so both families of a
// dual-stack Service and all Services sharing an address land on one node.
// A Service with several addresses per family has them in slots (the i-th
// of each family together) placed on distinct nodes by election.Placer.
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
	slotKeys := make([][]netip.Addr, len(sorted))
	for si, s := range sorted {
		slotKeys[si] = slotKeysOf(s.Addrs)
		key := electionKey(s.Addrs)
		if !key.IsValid() {
			key = electionKey(s.ExternalIPs)
		}
		var n4, n6 int // which slot each address is in: its rank in its family
		for i, a := range slices.Concat(s.Addrs, s.ExternalIPs) {
			var p *Pool
			slot := 0 // externalIPs go with the first slot
			if i < len(s.Addrs) {
				p = poolIdx.lookup(a, s.PoolHint)
				switch {
				case a.Is4():
					slot, n4 = n4, n4+1
				case a.Is6():
					slot, n6 = n6, n6+1
				}
			} else if !lbAddrs[a] {
				p = poolIdx.lookupExternal(a)
			}
			if p == nil {
				refuse(a, s.Key)
				continue
			}
			k, nslots := key, max(1, len(slotKeys[si]))
			if slot < len(slotKeys[si]) {
				k = slotKeys[si][slot]
			}
			u := uses[a]
			if u == nil {
				u = &addrUse{pool: p.Name, key: k, svc: si, slot: slot, nslots: nslots}
				uses[a] = u
			} else if betterKey(k, u.key) || (k == u.key && nslots > u.nslots) {
				u.key, u.svc, u.slot, u.nslots = k, si, slot, nslots
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
	type cacheKey struct {
		pool   string
		policy int // the BGP advertisement's index; 0 for layer 2
	}
	l2Cache, bgpCache := map[cacheKey]cached{}, map[cacheKey]cached{}
	candidates := func(cache map[cacheKey]cached, nodes []election.NodeInfo, pool cacheKey, sel labels.Selector, local map[string]bool) cached {
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
	l2n := newL2Nodes(nodes)
	pl := placements{all: nodes, nodes: l2n.of, uses: uses, slotKeys: slotKeys, sorted: sorted}
	for _, a := range slices.SortedFunc(func(yield func(netip.Addr) bool) {
		for a := range uses {
			if !yield(a) {
				return
			}
		}
	}, netip.Addr.Compare) {
		u := uses[a]
		p := poolIdx.byName[u.pool]
		if p.Hold {
			continue
		}
		if p.L2 != nil {
			var owner string
			if u.nslots > 1 {
				owner = pl.owner(p, u.svc, u.slot)
			} else {
				owner = candidates(l2Cache, l2n.of(p), cacheKey{pool: p.Name}, p.L2.NodeSelector, u.local).ranker.Owner(u.key)
			}
			if owner == self {
				out.L2 = append(out.L2, L2Announcement{Addr: a, Interfaces: p.L2.Interfaces, Pool: p.Name, Services: u.services})
			}
		}
		var mine []*BGPPolicy
		for i, pol := range p.BGP {
			c := candidates(bgpCache, nodes, cacheKey{p.Name, i}, pol.NodeSelector, u.local)
			if _, ok := slices.BinarySearch(c.cands, self); ok {
				if mine == nil {
					mine = make([]*BGPPolicy, 0, len(p.BGP)-i)
				}
				mine = append(mine, pol)
			}
		}
		if mine != nil {
			out.BGP = append(out.BGP, BGPAnnouncement{Addr: a, Pool: p.Name, Policies: mine, Services: u.services})
		}
	}
	return out
}

// l2Nodes gives each layer-2 pool its view of the nodes: a node that
// cannot answer on any interface the pool names counts as unhealthy for
// that pool alone, so a second interface going down moves only the
// addresses of the pools that use it, and BGP and the node's other pools
// stay where they are.
type l2Nodes struct {
	all    []election.NodeInfo
	anyOff bool // some node has an interface down: the common case copies nothing
	byPool map[string][]election.NodeInfo
}

func newL2Nodes(nodes []election.NodeInfo) *l2Nodes {
	l := &l2Nodes{all: nodes}
	for i := range nodes {
		if len(nodes[i].InterfacesDown) > 0 || nodes[i].InterfacesUnlisted {
			l.anyOff = true
		}
	}
	return l
}

// of returns the nodes as pool p's layer-2 announcement sees them.
func (l *l2Nodes) of(p *Pool) []election.NodeInfo {
	if !l.anyOff || len(p.L2.Interfaces) == 0 {
		return l.all
	}
	if n, ok := l.byPool[p.Name]; ok {
		return n
	}
	n := slices.Clone(l.all)
	for i := range n {
		if !n[i].CanAnswerOn(p.L2.Interfaces) {
			n[i].Healthy = false
		}
	}
	if l.byPool == nil {
		l.byPool = map[string][]election.NodeInfo{}
	}
	l.byPool[p.Name] = n
	return n
}

// placements computes, once per Service and pool, where the slots of a
// Service with several addresses per family are announced over layer 2.
type placements struct {
	all      []election.NodeInfo
	nodes    func(*Pool) []election.NodeInfo // as the pool's layer 2 sees them
	uses     map[netip.Addr]*addrUse
	slotKeys [][]netip.Addr
	sorted   []Service
	allUp    []election.NodeInfo // nodes as if every one were alive and healthy
	placers  map[string]*election.Placer
	done     map[placementKey][]string
}

type placementKey struct {
	svc  int
	pool string
}

// owner is the layer-2 owner of slot of the Service sorted[svc] in pool p.
//
// The eligible nodes are those that would be candidates if every node were
// alive and healthy: membership and health change during a failure, and
// keeping them out of the eligible set is what lets a failure move only
// the failed node's slot (see election.Placer). Not excluded, the pool's
// nodeSelector and, for externalTrafficPolicy Local, holding an endpoint
// still narrow it. The endpoint nodes are the union over the Service's
// addresses of what each address's users ask, as for one address.
func (pl *placements) owner(p *Pool, svc, slot int) string {
	k := placementKey{svc: svc, pool: p.Name}
	if o, ok := pl.done[k]; ok {
		return o[slot]
	}
	if pl.allUp == nil {
		pl.allUp = slices.Clone(pl.all)
		for i := range pl.allUp {
			pl.allUp[i].Alive, pl.allUp[i].Healthy, pl.allUp[i].NetworkUnavailable = true, true, false
		}
		pl.placers = map[string]*election.Placer{}
		pl.done = map[placementKey][]string{}
	}
	s := pl.sorted[svc]
	var local map[string]bool
	for _, list := range [][]netip.Addr{s.Addrs, s.ExternalIPs} {
		for _, a := range list {
			if u := pl.uses[a]; u != nil && u.local != nil {
				if local == nil {
					local = map[string]bool{}
				}
				for n := range u.local {
					local[n] = true
				}
			}
		}
	}
	var placer *election.Placer
	if local == nil {
		placer = pl.placers[p.Name]
	}
	if placer == nil {
		sel := p.L2.NodeSelector
		placer = election.NewPlacer(election.Candidates(pl.allUp, sel, local), election.Candidates(pl.nodes(p), sel, local))
		if local == nil {
			pl.placers[p.Name] = placer
		}
	}
	o := placer.Place(pl.slotKeys[svc])
	pl.done[k] = o
	return o[slot]
}

// slotKeysOf is the keys of election.Slots(addrs), or nil for one slot:
// most Services have one address per family and need no placement, and
// computing nothing for them keeps their cost what it was.
func slotKeysOf(addrs []netip.Addr) []netip.Addr {
	var n4, n6 int
	for _, a := range addrs {
		switch {
		case a.Is4():
			n4++
		case a.Is6():
			n6++
		}
	}
	if max(n4, n6) <= 1 {
		return nil
	}
	keys := make([]netip.Addr, 0, max(n4, n6))
	for _, sl := range election.Slots(addrs) {
		keys = append(keys, sl.Key)
	}
	return keys
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
