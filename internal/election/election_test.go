package election

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
)

func TestCandidates(t *testing.T) {
	ok := func(name string, lbls map[string]string) NodeInfo {
		return NodeInfo{Name: name, Labels: lbls, Alive: true, Healthy: true}
	}
	zone := func(z string) map[string]string { return map[string]string{"zone": z} }
	sel := func(s string) labels.Selector {
		t.Helper()
		ls, err := labels.Parse(s)
		if err != nil {
			t.Fatalf("parsing selector %q: %v", s, err)
		}
		return ls
	}
	with := func(n NodeInfo, f func(*NodeInfo)) NodeInfo { f(&n); return n }

	tests := []struct {
		name  string
		nodes []NodeInfo
		sel   labels.Selector
		local map[string]bool
		want  []string
	}{
		{
			name: "no nodes",
			want: []string{},
		},
		{
			name:  "all eligible, sorted",
			nodes: []NodeInfo{ok("c", nil), ok("a", nil), ok("b", nil)},
			want:  []string{"a", "b", "c"},
		},
		{
			name:  "duplicates collapse",
			nodes: []NodeInfo{ok("b", nil), ok("a", nil), ok("b", nil)},
			want:  []string{"a", "b"},
		},
		{
			name:  "not alive",
			nodes: []NodeInfo{ok("a", nil), with(ok("b", nil), func(n *NodeInfo) { n.Alive = false })},
			want:  []string{"a"},
		},
		{
			name:  "alive but unhealthy",
			nodes: []NodeInfo{ok("a", nil), with(ok("b", nil), func(n *NodeInfo) { n.Healthy = false })},
			want:  []string{"a"},
		},
		{
			name:  "excluded from external load balancers",
			nodes: []NodeInfo{ok("a", nil), with(ok("b", nil), func(n *NodeInfo) { n.Excluded = true })},
			want:  []string{"a"},
		},
		{
			name:  "network unavailable",
			nodes: []NodeInfo{ok("a", nil), with(ok("b", nil), func(n *NodeInfo) { n.NetworkUnavailable = true })},
			want:  []string{"a"},
		},
		{
			name:  "nil selector matches all",
			nodes: []NodeInfo{ok("a", zone("x")), ok("b", nil)},
			sel:   nil,
			want:  []string{"a", "b"},
		},
		{
			name:  "empty selector matches all",
			nodes: []NodeInfo{ok("a", zone("x")), ok("b", nil)},
			sel:   labels.Everything(),
			want:  []string{"a", "b"},
		},
		{
			name:  "selector filters",
			nodes: []NodeInfo{ok("a", zone("x")), ok("b", zone("y")), ok("c", nil)},
			sel:   sel("zone=x"),
			want:  []string{"a"},
		},
		{
			name:  "selector with set-based requirement",
			nodes: []NodeInfo{ok("a", zone("x")), ok("b", zone("y")), ok("c", nil)},
			sel:   sel("zone in (x,y)"),
			want:  []string{"a", "b"},
		},
		{
			name:  "selector matching nothing",
			nodes: []NodeInfo{ok("a", zone("x"))},
			sel:   sel("zone=z"),
			want:  []string{},
		},
		{
			name:  "ETP Local: only nodes with a local endpoint",
			nodes: []NodeInfo{ok("a", nil), ok("b", nil), ok("c", nil)},
			local: map[string]bool{"b": true, "c": false, "elsewhere": true},
			want:  []string{"b"},
		},
		{
			name:  "ETP Local with no endpoints: nobody",
			nodes: []NodeInfo{ok("a", nil), ok("b", nil)},
			local: map[string]bool{},
			want:  []string{},
		},
		{
			name: "ETP Local does not override other rules",
			nodes: []NodeInfo{
				with(ok("a", zone("x")), func(n *NodeInfo) { n.Healthy = false }),
				ok("b", zone("y")),
				ok("c", zone("x")),
			},
			sel:   sel("zone=x"),
			local: map[string]bool{"a": true, "b": true, "c": true},
			want:  []string{"c"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.nodes)
			got := Candidates(tc.nodes, tc.sel, tc.local)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Candidates() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.nodes); diff != "" {
				t.Errorf("Candidates() modified its input (-before +after):\n%s", diff)
			}
		})
	}
}

func TestCandidatesReturnsNewSlice(t *testing.T) {
	nodes := []NodeInfo{{Name: "b", Alive: true, Healthy: true}, {Name: "a", Alive: true, Healthy: true}}
	a := Candidates(nodes, nil, nil)
	b := Candidates(nodes, nil, nil)
	a[0] = "mutated"
	if b[0] != "a" {
		t.Fatalf("two calls share a backing array: %v", b)
	}
}

// TestScoreGolden pins the compatibility contract documented on Score.
// These values must never change: if this test fails, the change would
// move addresses between nodes during a rolling upgrade.
func TestScoreGolden(t *testing.T) {
	tests := []struct {
		node string
		key  string
		want uint64
	}{
		{"node-1", "198.51.100.10", 0xcbf2d5a194f1c183},
		{"node-2", "198.51.100.10", 0x51dbcb398bf9504c},
		{"node-1", "198.51.100.11", 0x9cfeb7e4a9f70f3d},
		{"node-1", "2001:db8::1", 0xfb9e61b62efa79d6},
		{"node-1", "::ffff:198.51.100.10", 0xcbf2d5a194f1c183}, // hashed as its IPv4 form
		{"worker-a.example.com", "203.0.113.7", 0xcdbed7c6b99ec1f8},
		{"worker-a.example.com", "2001:db8:1::42", 0x43d0f4f112e0f5e6},
		{"", "198.51.100.10", 0x9bd7f459e4b19077},
		{"node-1", "", 0x1d6d452985ef8a77}, // invalid Addr: the name and separator only
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s", tc.node, tc.key), func(t *testing.T) {
			var key netip.Addr
			if tc.key != "" {
				key = netip.MustParseAddr(tc.key)
			}
			if got := Score(tc.node, key); got != tc.want {
				t.Errorf("Score(%q, %s) = %#x, want %#x", tc.node, tc.key, got, tc.want)
			}
		})
	}
}

// TestScoreFormat checks Score against an independent construction of the
// documented input bytes hashed with the standard library's FNV-1a.
func TestScoreFormat(t *testing.T) {
	keys := []string{"198.51.100.10", "::ffff:198.51.100.10", "2001:db8::1", "fe80::1%eth0", "0.0.0.0", "::"}
	for _, node := range []string{"node-1", "worker-a.example.com", ""} {
		for _, k := range keys {
			key := netip.MustParseAddr(k)
			in := append([]byte(node), 0)
			in = append(in, key.Unmap().AsSlice()...)
			h := fnv.New64a()
			h.Write(in)
			want := fmix64(binary.BigEndian.Uint64(h.Sum(nil)))
			if got := Score(node, key); got != want {
				t.Errorf("Score(%q, %s) = %#x, documented format gives %#x", node, k, got, want)
			}
		}
	}
}

func TestOwnerEmpty(t *testing.T) {
	if got := Owner(nil, netip.MustParseAddr("198.51.100.1")); got != "" {
		t.Errorf("Owner(nil) = %q, want \"\"", got)
	}
	if got := NewRanker(nil).Owner(netip.MustParseAddr("198.51.100.1")); got != "" {
		t.Errorf("NewRanker(nil).Owner = %q, want \"\"", got)
	}
	if got := Owner([]string{}, netip.MustParseAddr("2001:db8::1")); got != "" {
		t.Errorf("Owner([]) = %q, want \"\"", got)
	}
}

// addresses returns n generated addresses: sequential IPv4 from 198.18.0.1
// when v6 is false, else 2001:db8::1, 2001:db8::2, ...
func addresses(n int, v6 bool) []netip.Addr {
	a := netip.MustParseAddr("198.18.0.1")
	if v6 {
		a = netip.MustParseAddr("2001:db8::1")
	}
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = a
		a = a.Next()
	}
	return out
}

func nodeNames(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i+1)
	}
	return out
}

// letterNames gives worker-a.example.com, worker-b.example.com, ...
func letterNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("worker-%c.example.com", 'a'+i)
	}
	return out
}

type nodeSet struct {
	name  string
	nodes []string
}

func nodeSets(n int) []nodeSet {
	return []nodeSet{
		{"node-N", nodeNames("node-%d", n)},
		{"worker-x.example.com", letterNames(n)},
		{"ip-10-0-0-N.ec2.internal", nodeNames("ip-10-0-0-%d.ec2.internal", n)},
	}
}

// owners computes the owner of every key with Owner and checks that a
// Ranker agrees.
func owners(cands []string, keys []netip.Addr) []string {
	out := make([]string, len(keys))
	r := NewRanker(cands)
	for i, k := range keys {
		out[i] = Owner(cands, k)
		if ro := r.Owner(k); ro != out[i] {
			panic(fmt.Sprintf("Ranker.Owner(%s) = %s, Owner = %s", k, ro, out[i]))
		}
	}
	return out
}

// TestSpread: 10 000 addresses over 10 nodes, every node within ±15% of an
// even share. With an ideal hash one node's count has σ = 30 (0.3%), so
// ±150 is a 5σ bound: a failure means the hash mixes poorly.
func TestSpread(t *testing.T) {
	const numAddrs, numNodes = 10000, 10
	for _, ns := range nodeSets(numNodes) {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/v6=%t", ns.name, v6), func(t *testing.T) {
				count := map[string]int{}
				for _, o := range owners(ns.nodes, addresses(numAddrs, v6)) {
					count[o]++
				}
				even := numAddrs / numNodes
				for _, n := range ns.nodes {
					if c := count[n]; c < even*85/100 || c > even*115/100 {
						t.Errorf("node %s owns %d addresses, want %d ±15%%; all: %v", n, c, even, count)
					}
				}
			})
		}
	}
}

// TestSpreadSmall: 24 addresses over 3 nodes: every node owns some
// (3–13 each).
func TestSpreadSmall(t *testing.T) {
	for _, ns := range nodeSets(3) {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/v6=%t", ns.name, v6), func(t *testing.T) {
				count := map[string]int{}
				for _, o := range owners(ns.nodes, addresses(24, v6)) {
					count[o]++
				}
				for _, n := range ns.nodes {
					if c := count[n]; c < 3 || c > 13 {
						t.Errorf("node %s owns %d of 24 addresses, want 3–13; all: %v", n, c, count)
					}
				}
			})
		}
	}
}

// TestRemoveNodeMovesOnlyItsAddresses checks all 10 000 addresses for every
// node removed in turn.
func TestRemoveNodeMovesOnlyItsAddresses(t *testing.T) {
	for _, ns := range nodeSets(10) {
		t.Run(ns.name, func(t *testing.T) {
			keys := append(addresses(5000, false), addresses(5000, true)...)
			before := owners(ns.nodes, keys)
			for _, gone := range ns.nodes {
				rest := slices.DeleteFunc(slices.Clone(ns.nodes), func(n string) bool { return n == gone })
				after := owners(rest, keys)
				moved := 0
				for i := range keys {
					switch {
					case before[i] == gone:
						moved++
						if after[i] == gone {
							t.Fatalf("%s still owned by removed %s", keys[i], gone)
						}
					case after[i] != before[i]:
						t.Errorf("removing %s moved %s from %s to %s", gone, keys[i], before[i], after[i])
					}
				}
				if moved == 0 {
					t.Errorf("removing %s moved nothing: it owned nothing", gone)
				}
			}
		})
	}
}

func TestAddNodeMovesOnlyToIt(t *testing.T) {
	for _, ns := range nodeSets(11) {
		t.Run(ns.name, func(t *testing.T) {
			keys := append(addresses(5000, false), addresses(5000, true)...)
			old, added := ns.nodes[:10], ns.nodes[10]
			before := owners(old, keys)
			after := owners(ns.nodes, keys)
			gained := 0
			for i := range keys {
				switch {
				case after[i] == added:
					gained++
				case after[i] != before[i]:
					t.Errorf("adding %s moved %s from %s to %s", added, keys[i], before[i], after[i])
				}
			}
			// An even share is 10000/11 ≈ 909.
			if gained < 909*85/100 || gained > 909*115/100 {
				t.Errorf("new node %s gained %d addresses, want ≈909 ±15%%", added, gained)
			}
		})
	}
}

func TestOwnerIndependentOfOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	nodes := nodeNames("node-%d", 10)
	keys := append(addresses(1000, false), addresses(1000, true)...)
	want := owners(nodes, keys)
	for trial := range 20 {
		shuffled := slices.Clone(nodes)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		before := slices.Clone(shuffled)
		if diff := cmp.Diff(want, owners(shuffled, keys)); diff != "" {
			t.Fatalf("trial %d: order %v changed owners (-want +got):\n%s", trial, shuffled, diff)
		}
		if !slices.Equal(before, shuffled) {
			t.Fatalf("Owner modified its candidates: %v -> %v", before, shuffled)
		}
	}
}

// TestOwnerMappedIPv4 checks that an IPv4 key and its IPv4-mapped IPv6 form
// have the same owner (Score hashes Unmap()).
func TestOwnerMappedIPv4(t *testing.T) {
	nodes := nodeNames("node-%d", 5)
	for _, k := range addresses(100, false) {
		mapped := netip.AddrFrom16(k.As16())
		if a, b := Owner(nodes, k), Owner(nodes, mapped); a != b {
			t.Errorf("Owner(%s) = %s but Owner(%s) = %s", k, a, mapped, b)
		}
	}
}

func BenchmarkScore(b *testing.B) {
	key := netip.MustParseAddr("2001:db8::1")
	var sink uint64
	for b.Loop() {
		sink += Score("worker-a.example.com", key)
	}
	_ = sink
}

// BenchmarkRecompute10000x100: the owners of 10 000 addresses (half IPv4,
// half IPv6) over 100 candidates, what a speaker recomputes when a node
// joins or leaves. One op is the whole recomputation.
func BenchmarkRecompute10000x100(b *testing.B) {
	nodes := nodeNames("node-%d", 100)
	keys := append(addresses(5000, false), addresses(5000, true)...)
	out := make([]string, len(keys))
	b.ReportAllocs()
	for b.Loop() {
		for i, k := range keys {
			out[i] = Owner(nodes, k)
		}
	}
}

// BenchmarkRecompute10000x100Ranker is BenchmarkRecompute10000x100 with the
// candidate names hashed once (NewRanker), as the speaker would do it.
func BenchmarkRecompute10000x100Ranker(b *testing.B) {
	nodes := nodeNames("node-%d", 100)
	keys := append(addresses(5000, false), addresses(5000, true)...)
	out := make([]string, len(keys))
	b.ReportAllocs()
	for b.Loop() {
		r := NewRanker(nodes)
		for i, k := range keys {
			out[i] = r.Owner(k)
		}
	}
}
