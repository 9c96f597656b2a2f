package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cluster is one random placement problem: a Service's slot keys, the
// eligible nodes and the candidates among them.
type cluster struct {
	eligible, candidates []string
	keys                 []netip.Addr
}

func (c cluster) String() string {
	return fmt.Sprintf("eligible %v, candidates %v, keys %v", c.eligible, c.candidates, c.keys)
}

// randomCluster draws 1-40 node names in one of several naming styles, an
// eligible subset (sometimes every node, as with externalTrafficPolicy
// Cluster; sometimes a few, as with Local), candidates among the eligible
// (sometimes all of them) and 1-16 distinct keys of one family.
func randomCluster(r *rand.Rand) cluster {
	n := 1 + r.IntN(40)
	var names []string
	switch r.IntN(3) {
	case 0:
		names = nodeNames("node-%d", n)
	case 1:
		names = nodeNames("ip-10-0-0-%d.ec2.internal", n)
	default:
		for range n {
			names = append(names, fmt.Sprintf("n%x", r.Uint32()))
		}
	}
	subset := func(from []string, keepAll bool) []string {
		if keepAll {
			return slices.Clone(from)
		}
		p := r.Float64()
		var out []string
		for _, x := range from {
			if r.Float64() < p {
				out = append(out, x)
			}
		}
		return out
	}
	c := cluster{eligible: subset(names, r.IntN(3) == 0)}
	c.candidates = subset(c.eligible, r.IntN(3) == 0)
	base := netip.MustParseAddr("198.18.0.0")
	if r.IntN(2) == 0 {
		base = netip.MustParseAddr("2001:db8::")
	}
	seen := map[netip.Addr]bool{}
	for range 1 + r.IntN(16) {
		k := base
		for range r.IntN(5000) {
			k = k.Next()
		}
		if !seen[k] {
			seen[k] = true
			c.keys = append(c.keys, k)
		}
	}
	return c
}

const randomClusters = 5000

// TestPlaceOneSlotIsOwner: a Service with one address per family keeps its
// owner exactly, whatever the eligible set.
func TestPlaceOneSlotIsOwner(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 1))
	for range randomClusters {
		c := randomCluster(r)
		for _, k := range c.keys {
			if got, want := Place(c.eligible, c.candidates, []netip.Addr{k})[0], Owner(c.candidates, k); got != want {
				t.Fatalf("%v: Place(%s) = %q, Owner = %q", c, k, got, want)
			}
		}
	}
}

// TestPlaceSpreadsSlots: the slots are on distinct candidates whenever there
// are enough, and as evenly as possible otherwise; none without candidates.
func TestPlaceSpreadsSlots(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 2))
	distinct, even := 0, 0
	for range randomClusters {
		c := randomCluster(r)
		owners := Place(c.eligible, c.candidates, c.keys)
		if len(owners) != len(c.keys) {
			t.Fatalf("%v: %d owners for %d keys", c, len(owners), len(c.keys))
		}
		if len(c.candidates) == 0 {
			if slices.ContainsFunc(owners, func(o string) bool { return o != "" }) {
				t.Fatalf("%v: owners %v without candidates", c, owners)
			}
			continue
		}
		count := map[string]int{}
		for _, o := range owners {
			if !slices.Contains(c.candidates, o) {
				t.Fatalf("%v: owner %q is not a candidate", c, o)
			}
			count[o]++
		}
		limit := (len(c.keys) + len(c.candidates) - 1) / len(c.candidates)
		for o, n := range count {
			if n > limit {
				t.Fatalf("%v: %s holds %d of %d slots, more than ⌈%d/%d⌉: %v", c, o, n, len(c.keys), len(c.keys), len(c.candidates), owners)
			}
		}
		if len(c.candidates) <= len(c.keys) && len(count) != len(c.candidates) {
			t.Fatalf("%v: %d slots left candidates idle: %v", c, len(c.keys), owners)
		}
		if limit == 1 {
			distinct++
		} else {
			even++
		}
	}
	t.Logf("%d clusters with enough candidates (distinct owners), %d with fewer (even spread)", distinct, even)
	if distinct < randomClusters/4 || even < randomClusters/20 {
		t.Errorf("the generator covers too little of one case: %d distinct, %d even", distinct, even)
	}
}

// TestPlaceMovesLittle: losing a node and getting it back. From any state,
// a slot on its home never moves while the home is a candidate, so only the
// slots on the lost node and orphans (slots away from their home) move.
// From the state where every eligible node is a candidate, exactly the lost
// node's slots move, each to a node holding none of the Service's slots if
// one is left, and its return moves exactly them back.
func TestPlaceMovesLittle(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 3))
	losses, extra, fullLosses := 0, 0, 0
	for range randomClusters {
		c := randomCluster(r)
		if len(c.candidates) == 0 {
			continue
		}
		homes := Place(c.eligible, c.eligible, c.keys)
		for _, full := range []bool{false, true} {
			cands := c.candidates
			if full {
				cands = c.eligible
			}
			gone := cands[r.IntN(len(cands))]
			rest := slices.DeleteFunc(slices.Clone(cands), func(n string) bool { return n == gone })
			before := Place(c.eligible, cands, c.keys)
			after := Place(c.eligible, rest, c.keys)
			losses++
			for s := range c.keys {
				atHome := before[s] == homes[s]
				switch {
				case before[s] == gone:
					if after[s] == gone {
						t.Fatalf("%v: %s still on lost %s", c, c.keys[s], gone)
					}
				case atHome && after[s] != before[s]:
					t.Fatalf("%v: losing %s moved %s from its home %s to %s", c, gone, c.keys[s], before[s], after[s])
				case after[s] != before[s]:
					extra++ // an orphan moved
					if full {
						t.Fatalf("%v: all eligible were candidates, yet losing %s moved %s from %s", c, gone, c.keys[s], before[s])
					}
				}
			}
			if full {
				fullLosses++
				checkLandedApart(t, c, gone, before, after)
			}
			// The return: the mirror image, from after back to before.
			back := Place(c.eligible, cands, c.keys)
			for s := range c.keys {
				if after[s] != back[s] && after[s] == homes[s] {
					t.Fatalf("%v: %s returning moved %s from its home %s to %s", c, gone, c.keys[s], after[s], back[s])
				}
				if full && after[s] != back[s] && back[s] != gone {
					t.Fatalf("%v: %s returning moved %s to %s, not to it", c, gone, c.keys[s], back[s])
				}
			}
		}
	}
	t.Logf("%d node losses (%d from the all-eligible state): %d orphans moved besides the lost node's slots", losses, fullLosses, extra)
}

// checkLandedApart checks that the slots that left gone went to nodes that
// held none of the Service's slots, as long as there were such nodes.
func checkLandedApart(t *testing.T, c cluster, gone string, before, after []string) {
	t.Helper()
	held := map[string]int{}
	for _, o := range before {
		held[o]++
	}
	free := len(c.eligible) - 1 - (len(held) - 1) // eligible nodes other than gone holding nothing
	landed := map[string]int{}
	for s := range c.keys {
		if before[s] == gone {
			landed[after[s]]++
		}
	}
	for o, n := range landed {
		if held[o] > 0 && free > 0 {
			t.Fatalf("%v: a slot of lost %s went to %s, which holds %d others, while %d nodes hold none: %v -> %v", c, gone, o, held[o], free, before, after)
		}
		if n > 1 && free >= n {
			t.Fatalf("%v: %d slots of lost %s went to one node %s while %d nodes hold none", c, n, gone, o, free)
		}
	}
}

// TestPlaceIndependentOfOrder: shuffled or repeated nodes give the same
// owners; shuffled keys give the same owner per key.
func TestPlaceIndependentOfOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 4))
	shuffle := func(s []string) []string {
		out := slices.Clone(s)
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		if len(out) > 0 && r.IntN(2) == 0 {
			out = append(out, out[r.IntN(len(out))])
		}
		return out
	}
	for range randomClusters {
		c := randomCluster(r)
		want := Place(c.eligible, c.candidates, c.keys)
		perm := r.Perm(len(c.keys))
		keys := make([]netip.Addr, len(c.keys))
		for i, p := range perm {
			keys[i] = c.keys[p]
		}
		elig, cands, keysBefore := shuffle(c.eligible), shuffle(c.candidates), slices.Clone(keys)
		got := Place(elig, cands, keys)
		for i, p := range perm {
			if got[i] != want[p] {
				t.Fatalf("%v: reordered inputs moved %s from %s to %s", c, keys[i], want[p], got[i])
			}
		}
		if !slices.Equal(keys, keysBefore) {
			t.Fatalf("Place modified its keys")
		}
	}
}

// TestPlacerReuse: one Placer gives every Service the same answer as a
// fresh one, whatever it placed before (its scratch space is reused).
func TestPlacerReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 5))
	c := randomCluster(r)
	for len(c.candidates) < 3 {
		c = randomCluster(r)
	}
	p := NewPlacer(c.eligible, c.candidates)
	for i := range 2000 {
		var keys []netip.Addr
		for j := range 1 + r.IntN(16) {
			keys = append(keys, netip.AddrFrom4([4]byte{198, 18, byte(i >> 4), byte(16*(i%16) + j)}))
		}
		if diff := cmp.Diff(Place(c.eligible, c.candidates, keys), p.Place(keys)); diff != "" {
			t.Fatalf("reused Placer differs (-fresh +reused):\n%s", diff)
		}
	}
}

func TestSlots(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name  string
		addrs []netip.Addr
		want  []Slot
	}{
		{"one IPv4", []netip.Addr{a("198.51.100.1")}, []Slot{{[]netip.Addr{a("198.51.100.1")}, a("198.51.100.1")}}},
		{"dual-stack, IPv6 first", []netip.Addr{a("2001:db8::1"), a("198.51.100.1")}, []Slot{{[]netip.Addr{a("198.51.100.1"), a("2001:db8::1")}, a("198.51.100.1")}}},
		{"three pairs, listed pair by pair", []netip.Addr{a("198.51.100.9"), a("2001:db8::9"), a("198.51.100.2"), a("2001:db8::2"), a("198.51.100.5"), a("2001:db8::5")}, []Slot{
			{[]netip.Addr{a("198.51.100.9"), a("2001:db8::9")}, a("198.51.100.9")},
			{[]netip.Addr{a("198.51.100.2"), a("2001:db8::2")}, a("198.51.100.2")},
			{[]netip.Addr{a("198.51.100.5"), a("2001:db8::5")}, a("198.51.100.5")},
		}},
		{"listed family by family", []netip.Addr{a("198.51.100.9"), a("198.51.100.2"), a("2001:db8::9"), a("2001:db8::2")}, []Slot{
			{[]netip.Addr{a("198.51.100.9"), a("2001:db8::9")}, a("198.51.100.9")},
			{[]netip.Addr{a("198.51.100.2"), a("2001:db8::2")}, a("198.51.100.2")},
		}},
		{"more IPv6 than IPv4", []netip.Addr{a("2001:db8::1"), a("198.51.100.1"), a("2001:db8::2")}, []Slot{
			{[]netip.Addr{a("198.51.100.1"), a("2001:db8::1")}, a("198.51.100.1")},
			{[]netip.Addr{a("2001:db8::2")}, a("2001:db8::2")},
		}},
		{"nothing", nil, []Slot{}},
		{"invalid skipped", []netip.Addr{{}, a("2001:db8::1")}, []Slot{{[]netip.Addr{a("2001:db8::1")}, a("2001:db8::1")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Slots(tc.addrs), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("Slots (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlaceLab is the lab's case: three addresses over three nodes, one
// each; one node lost, its address joins another and nothing else moves;
// back, it returns.
func TestPlaceLab(t *testing.T) {
	nodes := []string{"hl-node-1", "hl-node-2", "hl-node-3"}
	keys := []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.12")}
	all := Place(nodes, nodes, keys)
	if got := slices.Compact(slices.Sorted(slices.Values(all))); len(got) != 3 {
		t.Fatalf("three addresses over three nodes: %v", all)
	}
	for _, gone := range nodes {
		rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == gone })
		after := Place(nodes, rest, keys)
		for s := range keys {
			if all[s] != gone && after[s] != all[s] {
				t.Errorf("losing %s moved %s from %s to %s", gone, keys[s], all[s], after[s])
			}
		}
	}
	// Local: endpoints on two of three nodes narrow the eligible set.
	local := nodes[1:]
	got := Place(local, local, keys)
	for _, o := range got {
		if !slices.Contains(local, o) {
			t.Errorf("Local Service announced from %s, which has no endpoint: %v", o, got)
		}
	}
}

// TestPlaceSpread: 10 000 Services of 3 slots over 10 nodes, every node
// within ±15% of an even share, and 8 Services of 3 over 3 nodes give each
// node one slot of each Service.
func TestPlaceSpread(t *testing.T) {
	for _, ns := range nodeSets(10) {
		t.Run(ns.name, func(t *testing.T) {
			count := map[string]int{}
			p := NewPlacer(ns.nodes, ns.nodes)
			keys := addresses(30000, false)
			for i := 0; i < len(keys); i += 3 {
				for _, o := range p.Place(keys[i : i+3]) {
					count[o]++
				}
			}
			for _, n := range ns.nodes {
				if c := count[n]; c < 3000*85/100 || c > 3000*115/100 {
					t.Errorf("node %s owns %d slots, want 3000 ±15%%; all: %v", n, c, count)
				}
			}
		})
	}
	for _, ns := range nodeSets(3) {
		p := NewPlacer(ns.nodes, ns.nodes)
		keys := addresses(24, true)
		for i := 0; i < len(keys); i += 3 {
			if got := p.Place(keys[i : i+3]); len(slices.Compact(slices.Sorted(slices.Values(got)))) != 3 {
				t.Errorf("%s: %v not on three nodes", ns.name, got)
			}
		}
	}
}

// benchmarkServices places 10 000 Services of perService slots (half of the
// Services IPv4, half IPv6) over 100 nodes, with down nodes not candidates,
// and reports the busiest node's load against an even share.
func benchmarkServices(b *testing.B, perService, down int) {
	nodes := nodeNames("node-%d", 100)
	cands := nodes[down:]
	keys := append(addresses(5000*perService, false), addresses(5000*perService, true)...)
	out := make([]string, len(keys))
	b.ReportAllocs()
	for b.Loop() {
		p := NewPlacer(nodes, cands)
		for i := 0; i < len(keys); i += perService {
			copy(out[i:], p.Place(keys[i:i+perService]))
		}
	}
	count := map[string]int{}
	for _, o := range out {
		count[o]++
	}
	busiest := 0
	for _, c := range count {
		busiest = max(busiest, c)
	}
	b.ReportMetric(float64(busiest)/(float64(len(keys))/float64(len(cands))), "busiest/even")
}

// BenchmarkPlace10000x3x100: what a speaker recomputes for 10 000 Services
// of 3 addresses each over 100 nodes; BenchmarkRecompute10000x100Ranker is
// the same for one address each (today's cost), and
// BenchmarkPlace10000x1x100 the Placer doing that.
func BenchmarkPlace10000x3x100(b *testing.B)        { benchmarkServices(b, 3, 0) }
func BenchmarkPlace10000x3x100OneDown(b *testing.B) { benchmarkServices(b, 3, 1) }
func BenchmarkPlace10000x1x100(b *testing.B)        { benchmarkServices(b, 1, 0) }
func BenchmarkPlace10000x16x100(b *testing.B)       { benchmarkServices(b, 16, 0) }
func BenchmarkPlace10000x3x100TenDown(b *testing.B) { benchmarkServices(b, 3, 10) }
