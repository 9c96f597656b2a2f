package plan

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/election"
)

// multiServices returns n Services of count addresses per family (IPv6 too
// when dual), each address distinct, in a layer-2 pool "lan".
func multiServices(n, count int, dual bool) []Service {
	var svcs []Service
	for i := range n {
		s := Service{Key: fmt.Sprintf("ns/m%03d", i)}
		for j := range count {
			s.Addrs = append(s.Addrs, netip.AddrFrom4([4]byte{198, 51, byte(100 + i/64), byte(i%64*4 + j)}))
		}
		if dual {
			for j := range count {
				s.Addrs = append(s.Addrs, netip.MustParseAddr(fmt.Sprintf("2001:db8::a:%x:%x", i, j)))
			}
		}
		svcs = append(svcs, s)
	}
	return svcs
}

var lanPool = []Pool{{Name: "lan", Ranges: []allocator.Range{mustRange("198.51.100.0/22"), mustRange("2001:db8::/64")}, L2: &L2Policy{}}}

func namedNodes(n int) []election.NodeInfo {
	var nodes []election.NodeInfo
	for i := range n {
		nodes = append(nodes, node(fmt.Sprintf("node-%d", i)))
	}
	return nodes
}

// slotOwners runs Decide on every node and returns the layer-2 owner of
// each slot (the i-th address of each family) of every Service, failing
// the test if an address has other than one owner or the two families of
// a slot are on different nodes.
func slotOwners(t *testing.T, nodes []election.NodeInfo, pools []Pool, svcs []Service) map[string][]string {
	t.Helper()
	l2, _ := owners(nodes, pools, svcs)
	out := map[string][]string{}
	for _, s := range svcs {
		for i, sl := range election.Slots(s.Addrs) {
			var owner string
			for _, a := range sl.Addrs {
				o := l2[a]
				if len(o) != 1 {
					t.Fatalf("%s slot %d: %s announced by %v, want one node", s.Key, i, a, o)
				}
				if owner != "" && o[0] != owner {
					t.Fatalf("%s slot %d: the families of %v on %s and %s, want one node", s.Key, i, sl.Addrs, owner, o[0])
				}
				owner = o[0]
			}
			out[s.Key] = append(out[s.Key], owner)
		}
	}
	return out
}

func distinct(owners []string) int {
	return len(slices.Compact(slices.Sorted(slices.Values(owners))))
}

func down(nodes []election.NodeInfo, name string) []election.NodeInfo {
	out := slices.Clone(nodes)
	for i := range out {
		if out[i].Name == name {
			out[i].Alive = false
		}
	}
	return out
}

// TestThreeAddressesOnThreeNodes: every Service of 3 addresses per family
// over 3 nodes has one slot on each node, both families of a slot on one.
func TestThreeAddressesOnThreeNodes(t *testing.T) {
	for _, dual := range []bool{false, true} {
		nodes := namedNodes(3)
		svcs := multiServices(100, 3, dual)
		for key, o := range slotOwners(t, nodes, lanPool, svcs) {
			if distinct(o) != 3 {
				t.Errorf("dual=%t %s: slots on %v, want three nodes", dual, key, o)
			}
		}
	}
}

// TestNodeLossAndReturnMoveOneSlot: losing a node moves only its slot, to
// a node holding none of the Service's slots when there is one (4 nodes,
// 3 slots), to another candidate when there is none (3 nodes); its return
// moves at most that slot back.
func TestNodeLossAndReturnMoveOneSlot(t *testing.T) {
	for _, n := range []int{3, 4, 6} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			nodes := namedNodes(n)
			svcs := multiServices(100, 3, true)
			all := slotOwners(t, nodes, lanPool, svcs)
			for _, gone := range nodes {
				lost := slotOwners(t, down(nodes, gone.Name), lanPool, svcs)
				back := all // Decide is pure: the node back is the state before
				for _, s := range svcs {
					before, after := all[s.Key], lost[s.Key]
					for i := range before {
						switch {
						case before[i] != gone.Name && after[i] != before[i]:
							t.Errorf("%s: losing %s moved slot %d from %s to %s", s.Key, gone.Name, i, before[i], after[i])
						case before[i] == gone.Name && after[i] == gone.Name:
							t.Errorf("%s: slot %d stayed on lost %s", s.Key, i, gone.Name)
						case before[i] == gone.Name && n > 3 && slices.Contains(before, after[i]):
							t.Errorf("%s: slot %d of lost %s went to %s, which holds another slot, with %d nodes: %v -> %v",
								s.Key, i, gone.Name, after[i], n, before, after)
						}
					}
					moved := 0
					for i := range after {
						if back[s.Key][i] != after[i] {
							moved++
						}
					}
					if moved > 1 {
						t.Errorf("%s: %s back moved %d slots: %v -> %v, before the loss %v", s.Key, gone.Name, moved, after, back[s.Key], before)
					}
				}
			}
		})
	}
}

// TestDualStackSlotTogether: with more IPv6 than IPv4 addresses (or the
// other way), the i-th of each family share a node and the rest still
// spread.
func TestDualStackSlotTogether(t *testing.T) {
	nodes := namedNodes(5)
	s := Service{Key: "ns/uneven", Addrs: addrs("198.51.100.1", "2001:db8::1", "2001:db8::2", "198.51.100.2", "2001:db8::3")}
	o := slotOwners(t, nodes, lanPool, []Service{s})[s.Key]
	if len(o) != 3 || distinct(o) != 3 {
		t.Errorf("slots on %v, want three distinct nodes", o)
	}
}

// TestLocalNarrowsPlacement: externalTrafficPolicy Local places the slots
// only on nodes with an endpoint, as apart as they can be; with none, the
// Service is not announced.
func TestLocalNarrowsPlacement(t *testing.T) {
	nodes := namedNodes(5)
	for _, tc := range []struct {
		local []string
		want  int // distinct owners
	}{
		{[]string{"node-1", "node-3"}, 2},
		{[]string{"node-0", "node-2", "node-4"}, 3},
		{[]string{"node-4"}, 1},
	} {
		svcs := multiServices(50, 3, true)
		for i := range svcs {
			svcs[i].Local, svcs[i].LocalNodes = true, map[string]bool{}
			for _, n := range tc.local {
				svcs[i].LocalNodes[n] = true
			}
		}
		for key, o := range slotOwners(t, nodes, lanPool, svcs) {
			for _, n := range o {
				if !slices.Contains(tc.local, n) {
					t.Errorf("endpoints on %v: %s slot on %s: %v", tc.local, key, n, o)
				}
			}
			if distinct(o) != tc.want {
				t.Errorf("endpoints on %v: %s on %v, want %d nodes", tc.local, key, o, tc.want)
			}
		}
	}
	s := multiServices(1, 3, false)[0]
	s.Local, s.LocalNodes = true, map[string]bool{}
	if l2, _ := owners(nodes, lanPool, []Service{s}); len(l2) != 0 {
		t.Errorf("Local without endpoints announced: %v", l2)
	}
}

// TestSingleAddressPlacedAsBefore: a Service with one address per family
// is owned by election.Owner over its candidates keyed by its IPv4 address
// (else IPv6), exactly as before slots existed, whether or not Services
// with several addresses share the pool; random clusters, some nodes down,
// some Services Local.
func TestSingleAddressPlacedAsBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 1))
	sel, _ := labels.Parse("zone=a")
	pools := []Pool{
		lanPool[0],
		{Name: "zoned", Ranges: []allocator.Range{mustRange("203.0.113.0/24")}, L2: &L2Policy{NodeSelector: sel}},
	}
	for round := range 50 {
		var nodes []election.NodeInfo
		for i := range 2 + r.IntN(8) {
			nodes = append(nodes, node(fmt.Sprintf("n%d-%d", round, i), func(n *election.NodeInfo) {
				n.Alive = r.IntN(5) != 0
				n.Healthy = r.IntN(8) != 0
				if r.IntN(2) == 0 {
					n.Labels["zone"] = "a"
				}
			}))
		}
		svcs := multiServices(20, 1+r.IntN(4), r.IntN(2) == 0)
		for i := range 40 {
			s := Service{Key: fmt.Sprintf("ns/s%02d", i)}
			v4 := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
			if i%2 == 1 {
				v4 = netip.AddrFrom4([4]byte{198, 51, 103, byte(i)})
			}
			switch i % 3 {
			case 0:
				s.Addrs = []netip.Addr{v4}
			case 1:
				s.Addrs = []netip.Addr{v4, netip.MustParseAddr(fmt.Sprintf("2001:db8::1:%x", i))}
			case 2:
				s.Addrs = addrs(fmt.Sprintf("2001:db8::2:%x", i))
			}
			if r.IntN(4) == 0 {
				s.Local, s.LocalNodes = true, map[string]bool{}
				for _, n := range nodes {
					if r.IntN(2) == 0 {
						s.LocalNodes[n.Name] = true
					}
				}
			}
			svcs = append(svcs, s)
		}
		l2, _ := owners(nodes, pools, svcs)
		for _, s := range svcs {
			if len(election.Slots(s.Addrs)) != 1 {
				continue
			}
			var local map[string]bool
			if s.Local {
				local = s.LocalNodes
			}
			for _, a := range s.Addrs {
				p := &pools[0]
				if a.Is4() && a.As4()[0] == 203 {
					p = &pools[1]
				}
				want := election.Owner(election.Candidates(nodes, p.L2.NodeSelector, local), electionKey(s.Addrs))
				got := l2[a]
				if want == "" && len(got) != 0 || want != "" && (len(got) != 1 || got[0] != want) {
					t.Fatalf("round %d %s: %s announced by %v, want %q", round, s.Key, a, got, want)
				}
			}
		}
	}
}

// TestBGPAnnouncesEverySlot: a BGP pool ignores slots, every candidate
// announces every address.
func TestBGPAnnouncesEverySlot(t *testing.T) {
	nodes := namedNodes(4)
	pools := []Pool{{Name: "bgp", Ranges: lanPool[0].Ranges, BGP: []*BGPPolicy{{}}}}
	svcs := multiServices(10, 3, true)
	l2, bgp := owners(nodes, pools, svcs)
	if len(l2) != 0 {
		t.Errorf("layer-2 announcements from a BGP pool: %v", l2)
	}
	for _, s := range svcs {
		for _, a := range s.Addrs {
			if len(bgp[a]) != len(nodes) {
				t.Errorf("%s: %s announced by %v, want all %d nodes", s.Key, a, bgp[a], len(nodes))
			}
		}
	}
}

// TestSharedSlotsStayApart: two Services sharing their three addresses
// (a sharing key) are announced once per address, on three nodes, with the
// union of their endpoint nodes when one is Local.
func TestSharedSlotsStayApart(t *testing.T) {
	nodes := namedNodes(4)
	a := multiServices(1, 3, true)[0]
	b := Service{Key: "ns/other", Addrs: a.Addrs, Local: true, LocalNodes: map[string]bool{"node-0": true, "node-1": true, "node-2": true}}
	o := slotOwners(t, nodes, lanPool, []Service{a, b})[a.Key]
	if distinct(o) != 3 || slices.Contains(o, "node-3") {
		t.Errorf("shared slots on %v, want three of the nodes with endpoints", o)
	}
	l2, _ := owners(nodes, lanPool, []Service{b, a})
	for _, ad := range a.Addrs {
		if len(l2[ad]) != 1 || l2[ad][0] != o[slices.IndexFunc(election.Slots(a.Addrs), func(s election.Slot) bool { return slices.Contains(s.Addrs, ad) })] {
			t.Errorf("%s: owners %v depend on the Services' order", ad, l2[ad])
		}
	}
}

// benchmarkLayer2 decides for one node of 100 over 10 000 Services of
// perService addresses (IPv4) each in one layer-2 pool: the speaker's whole
// recomputation after any change.
func benchmarkLayer2(b *testing.B, perService int) {
	var nodes []election.NodeInfo
	for i := range 100 {
		nodes = append(nodes, node(fmt.Sprintf("node-%03d", i)))
	}
	pools := []Pool{{Name: "big", Ranges: []allocator.Range{mustRange("198.18.0.0/15")}, L2: &L2Policy{}}}
	var svcs []Service
	for i := range 10000 {
		s := Service{Key: fmt.Sprintf("ns/s%05d", i)}
		for j := range perService {
			n := i*perService + j
			s.Addrs = append(s.Addrs, netip.AddrFrom4([4]byte{198, 18 + byte(n>>16), byte(n >> 8), byte(n)}))
		}
		svcs = append(svcs, s)
	}
	b.ReportAllocs()
	var announced int
	for b.Loop() {
		announced = len(Decide(Input{Self: "node-042", Nodes: nodes, Pools: pools, Services: svcs}).L2)
	}
	b.ReportMetric(float64(announced), "announced")
}

// BenchmarkDecideLayer2x1: 10 000 Services of one address over 100 nodes
// (rendezvous hashing); BenchmarkDecideLayer2x3: of three (placement).
func BenchmarkDecideLayer2x1(b *testing.B) { benchmarkLayer2(b, 1) }
func BenchmarkDecideLayer2x3(b *testing.B) { benchmarkLayer2(b, 3) }
