package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/election"
)

// TestAdvertisementsPerNodeGroup: a pool with three advertisements, each
// for its own nodes and peers. Every node announces the address with
// exactly the advertisements that select it, and the paths it hands the
// BGP table carry each advertisement's own peers and attributes; a node
// no advertisement selects announces nothing. externalTrafficPolicy:
// Local still narrows every advertisement to the nodes with an endpoint.
func TestAdvertisementsPerNodeGroup(t *testing.T) {
	rack := func(r string) func(*election.NodeInfo) {
		return func(n *election.NodeInfo) { n.Labels["rack"] = r }
	}
	nodes := []election.NodeInfo{node("node-a", rack("a")), node("node-b", rack("a")), node("node-c", rack("b")), node("node-d", rack("c"))}
	lp := uint32(300)
	top := &BGPPolicy{Peers: []string{"frr"}, NodeSelector: labels.SelectorFromSet(labels.Set{"rack": "a"}), Communities: []string{"64512:100"}, AggregationLength: 32, AggregationLengthV6: 128}
	dc2 := &BGPPolicy{Name: "dc2", Peers: []string{"bird"}, NodeSelector: labels.SelectorFromSet(labels.Set{"rack": "b"}), Communities: []string{"64512:200"}, AggregationLength: 32, AggregationLengthV6: 128}
	rr := &BGPPolicy{Name: "rr", Peers: []string{"rr1"}, LocalPref: &lp, AggregationLength: 24, AggregationLengthV6: 128}
	pool := Pool{Name: "edge", Ranges: []allocator.Range{mustRange("198.51.100.0/24")}, BGP: []*BGPPolicy{top, dc2, rr}}
	svcs := []Service{{Key: "ns/web", Addrs: addrs("198.51.100.7")}}

	want := map[string][]*BGPPolicy{"node-a": {top, rr}, "node-b": {top, rr}, "node-c": {dc2, rr}, "node-d": {rr}}
	for _, n := range nodes {
		d := Decide(Input{Self: n.Name, Nodes: nodes, Pools: []Pool{pool}, Services: svcs})
		if len(d.BGP) != 1 {
			t.Fatalf("%s announces %v, want 198.51.100.7 once", n.Name, d.BGP)
		}
		if got := d.BGP[0].Policies; !slices.Equal(got, want[n.Name]) {
			t.Errorf("%s: advertisements %v, want %v", n.Name, names(got), names(want[n.Name]))
		}
	}

	d := Decide(Input{Self: "node-a", Nodes: nodes, Pools: []Pool{pool}, Services: svcs})
	paths, err := Paths(d.BGP)
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []bgpplan.Path{
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Communities: []string{"64512:100"}, Peers: []string{"frr"}},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), LocalPref: &lp, Peers: []string{"rr1"}},
	}
	if diff := cmp.Diff(wantPaths, paths, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("node-a's paths (-want +got):\n%s", diff)
	}
	if got := d.BGP[0].Peers(); !slices.Equal(got, []string{"frr", "rr1"}) {
		t.Errorf("node-a reports peers %v, want [frr rr1]", got)
	}

	// Local with the only endpoint on node-c: rack a's advertisement has
	// no candidate left, node-c announces with its two.
	local := []Service{{Key: "ns/web", Addrs: addrs("198.51.100.7"), Local: true, LocalNodes: map[string]bool{"node-c": true}}}
	for _, n := range nodes {
		d := Decide(Input{Self: n.Name, Nodes: nodes, Pools: []Pool{pool}, Services: local})
		var got []*BGPPolicy
		if len(d.BGP) == 1 {
			got = d.BGP[0].Policies
		}
		var wantLocal []*BGPPolicy
		if n.Name == "node-c" {
			wantLocal = []*BGPPolicy{dc2, rr}
		}
		if !slices.Equal(got, wantLocal) {
			t.Errorf("Local, endpoint on node-c only: %s announces with %v, want %v", n.Name, names(got), names(wantLocal))
		}
	}

	// A node no advertisement selects announces nothing.
	only := Pool{Name: "edge", Ranges: pool.Ranges, BGP: []*BGPPolicy{top, dc2}}
	if d := Decide(Input{Self: "node-d", Nodes: nodes, Pools: []Pool{only}, Services: svcs}); len(d.BGP) != 0 {
		t.Errorf("node-d, selected by no advertisement, announces %v", d.BGP)
	}
}

func names(ps []*BGPPolicy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, "'"+p.Name+"'")
	}
	return out
}

// TestAnnouncementPeers: an address goes to every peer as soon as one of
// its advertisements names none.
func TestAnnouncementPeers(t *testing.T) {
	a := BGPAnnouncement{Policies: []*BGPPolicy{{Peers: []string{"b", "a"}}, {Peers: []string{"a", "c"}}}}
	if got := a.Peers(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("peers %v, want [a b c]", got)
	}
	a.Policies = append(a.Policies, &BGPPolicy{})
	if got := a.Peers(); got != nil {
		t.Errorf("with an advertisement to every peer: %v, want nil (all)", got)
	}
}

// BenchmarkRecomputeBGP10000x100 is what one node recomputes when
// anything changes, for 10 000 Services in one BGP pool over 100 nodes:
// the decision, the paths, and their merge into routes per prefix
// (bgpplan.Routes), with the pool's one advertisement (policies=1) and
// with three, each for its own rack and peers (policies=3).
func BenchmarkRecomputeBGP10000x100(b *testing.B) {
	var nodes []election.NodeInfo
	for i := range 100 {
		nodes = append(nodes, node(fmt.Sprintf("node-%03d", i), func(n *election.NodeInfo) { n.Labels["rack"] = fmt.Sprint(i % 3) }))
	}
	var svcs []Service
	for i := range 10000 {
		s := Service{Key: fmt.Sprintf("ns/s%05d", i), Addrs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})}}
		if i%10 == 0 {
			s.Local, s.LocalNodes = true, map[string]bool{"node-001": true, "node-042": true}
		}
		svcs = append(svcs, s)
	}
	lp := uint32(200)
	one := []*BGPPolicy{{Communities: []string{"64512:100"}, AggregationLength: 32, AggregationLengthV6: 128}}
	three := []*BGPPolicy{
		one[0],
		{Name: "rack0", Peers: []string{"tor-a", "tor-b"}, NodeSelector: labels.SelectorFromSet(labels.Set{"rack": "0"}), Communities: []string{"64512:200"}, AggregationLength: 32, AggregationLengthV6: 128},
		{Name: "rr", Peers: []string{"rr1"}, LocalPref: &lp, LargeCommunities: []string{"64512:1:1"}, AggregationLength: 32, AggregationLengthV6: 128},
	}
	for _, bc := range []struct {
		name string
		pols []*BGPPolicy
	}{{"policies=1", one}, {"policies=3", three}} {
		b.Run(bc.name, func(b *testing.B) {
			pools := []Pool{{Name: "big", Ranges: []allocator.Range{mustRange("198.18.0.0/16")}, BGP: bc.pols}}
			b.ReportAllocs()
			var routes int
			for b.Loop() {
				d := Decide(Input{Self: "node-042", Nodes: nodes, Pools: pools, Services: svcs})
				paths, err := Paths(d.BGP)
				if err != nil {
					b.Fatal(err)
				}
				r, errs := bgpplan.Routes(paths)
				if len(errs) > 0 {
					b.Fatal(errs)
				}
				routes = len(r)
			}
			b.ReportMetric(float64(routes), "routes")
		})
	}
}
