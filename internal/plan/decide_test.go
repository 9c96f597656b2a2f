package plan

import (
	"fmt"
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/election"
)

func mustRange(s string) allocator.Range {
	r, err := allocator.ParseRange(s)
	if err != nil {
		panic(err)
	}
	return r
}

func node(name string, mods ...func(*election.NodeInfo)) election.NodeInfo {
	n := election.NodeInfo{Name: name, Alive: true, Healthy: true, Labels: map[string]string{"kubernetes.io/hostname": name}}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func threeNodes() []election.NodeInfo {
	return []election.NodeInfo{node("node-a"), node("node-b"), node("node-c")}
}

func l2Pool(name string, ranges ...string) Pool {
	p := Pool{Name: name, L2: &L2Policy{}}
	for _, r := range ranges {
		p.Ranges = append(p.Ranges, mustRange(r))
	}
	return p
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// owners runs Decide for every node and returns which nodes announce each
// address over layer 2 and BGP.
func owners(nodes []election.NodeInfo, pools []Pool, svcs []Service) (l2, bgp map[netip.Addr][]string) {
	l2, bgp = map[netip.Addr][]string{}, map[netip.Addr][]string{}
	for _, n := range nodes {
		d := Decide(Input{Self: n.Name, Nodes: nodes, Pools: pools, Services: svcs})
		for _, a := range d.L2 {
			l2[a.Addr] = append(l2[a.Addr], n.Name)
		}
		for _, a := range d.BGP {
			bgp[a.Addr] = append(bgp[a.Addr], n.Name)
		}
	}
	return l2, bgp
}

func TestOneLayer2OwnerPerAddressAndFamiliesTogether(t *testing.T) {
	nodes := threeNodes()
	pools := []Pool{l2Pool("lan", "198.51.100.0/24", "2001:db8::/64")}
	var svcs []Service
	for i := range 30 {
		svcs = append(svcs, Service{Key: fmt.Sprintf("ns/s%d", i), Addrs: addrs(fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("2001:db8::%x", i))})
	}
	l2, bgp := owners(nodes, pools, svcs)
	if len(bgp) != 0 {
		t.Errorf("BGP announcements from a layer2-only pool: %v", bgp)
	}
	for _, s := range svcs {
		v4, v6 := l2[s.Addrs[0]], l2[s.Addrs[1]]
		if len(v4) != 1 || len(v6) != 1 || v4[0] != v6[0] {
			t.Errorf("%s: IPv4 owners %v, IPv6 owners %v; want one node for both", s.Key, v4, v6)
		}
	}
}

func TestCandidateRules(t *testing.T) {
	sel, _ := labels.Parse("zone=a")
	pools := []Pool{
		l2Pool("lan", "198.51.100.0/24"),
		{Name: "zoned", Ranges: []allocator.Range{mustRange("203.0.113.0/24")}, L2: &L2Policy{NodeSelector: sel}, BGP: []*BGPPolicy{{NodeSelector: sel}}},
		{Name: "bgp", Ranges: []allocator.Range{mustRange("2001:db8:1::/64")}, BGP: []*BGPPolicy{{}}},
	}
	zoneA := func(n *election.NodeInfo) { n.Labels["zone"] = "a" }
	tests := []struct {
		name    string
		nodes   []election.NodeInfo
		svc     Service
		wantL2  []string // the possible owners (exactly one must own)
		wantBGP []string
	}{
		{"all eligible", threeNodes(), Service{Key: "ns/a", Addrs: addrs("198.51.100.1")}, []string{"node-a", "node-b", "node-c"}, nil},
		{"dead, unhealthy, excluded, no network", []election.NodeInfo{
			node("node-a", func(n *election.NodeInfo) { n.Alive = false }),
			node("node-b", func(n *election.NodeInfo) { n.Healthy = false }),
			node("node-c", func(n *election.NodeInfo) { n.Excluded = true }),
			node("node-d", func(n *election.NodeInfo) { n.NetworkUnavailable = true }),
			node("node-e"),
		}, Service{Key: "ns/a", Addrs: addrs("198.51.100.1")}, []string{"node-e"}, nil},
		{"node selector", []election.NodeInfo{node("node-a"), node("node-b", zoneA), node("node-c", zoneA)},
			Service{Key: "ns/a", Addrs: addrs("203.0.113.7")}, []string{"node-b", "node-c"}, []string{"node-b", "node-c"}},
		{"local endpoints", threeNodes(), Service{Key: "ns/a", Addrs: addrs("198.51.100.1"), Local: true, LocalNodes: map[string]bool{"node-c": true}}, []string{"node-c"}, nil},
		{"local without endpoints: nobody", threeNodes(), Service{Key: "ns/a", Addrs: addrs("198.51.100.1"), Local: true, LocalNodes: map[string]bool{}}, nil, nil},
		{"local ∩ selector", []election.NodeInfo{node("node-a", zoneA), node("node-b", zoneA), node("node-c")},
			Service{Key: "ns/a", Addrs: addrs("203.0.113.7"), Local: true, LocalNodes: map[string]bool{"node-b": true, "node-c": true}}, []string{"node-b"}, []string{"node-b"}},
		{"bgp: every candidate", threeNodes(), Service{Key: "ns/a", Addrs: addrs("2001:db8:1::5")}, nil, []string{"node-a", "node-b", "node-c"}},
		{"outside every pool: nobody", threeNodes(), Service{Key: "ns/a", Addrs: addrs("198.18.0.1")}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l2, bgp := owners(tc.nodes, pools, []Service{tc.svc})
			a := tc.svc.Addrs[0]
			if tc.wantL2 == nil {
				if len(l2[a]) != 0 {
					t.Errorf("layer2 owners %v, want none", l2[a])
				}
			} else if len(l2[a]) != 1 || !contains(tc.wantL2, l2[a][0]) {
				t.Errorf("layer2 owners %v, want exactly one of %v", l2[a], tc.wantL2)
			}
			if got := bgp[a]; fmt.Sprint(got) != fmt.Sprint(tc.wantBGP) && (len(got) != 0 || tc.wantBGP != nil) {
				t.Errorf("bgp announcers %v, want %v", bgp[a], tc.wantBGP)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSharedAddressAndRefused(t *testing.T) {
	nodes := threeNodes()
	pools := []Pool{l2Pool("lan", "198.51.100.0/24")}
	svcs := []Service{
		{Key: "ns/http", Addrs: addrs("198.51.100.9")},
		{Key: "ns/dns", Addrs: addrs("198.51.100.9")},
		{Key: "ns/rogue", Addrs: addrs("203.0.113.66")},
	}
	total := 0
	for _, n := range nodes {
		d := Decide(Input{Self: n.Name, Nodes: nodes, Pools: pools, Services: svcs})
		for _, a := range d.L2 {
			total++
			if fmt.Sprint(a.Services) != "[ns/dns ns/http]" || a.Pool != "lan" {
				t.Errorf("announcement %+v", a)
			}
		}
		if got := d.Refused[netip.MustParseAddr("203.0.113.66")]; fmt.Sprint(got) != "[ns/rogue]" {
			t.Errorf("refused = %v", d.Refused)
		}
	}
	if total != 1 {
		t.Errorf("shared address announced %d times, want once", total)
	}
}

func TestSpread24Over3(t *testing.T) {
	nodes := threeNodes()
	pools := []Pool{l2Pool("lan", "198.51.100.0/24")}
	var svcs []Service
	for i := range 24 {
		svcs = append(svcs, Service{Key: fmt.Sprintf("ns/s%02d", i), Addrs: addrs(fmt.Sprintf("198.51.100.%d", 10+i))})
	}
	count := map[string]int{}
	for _, n := range nodes {
		count[n.Name] = len(Decide(Input{Self: n.Name, Nodes: nodes, Pools: pools, Services: svcs}).L2)
	}
	for _, n := range nodes {
		if c := count[n.Name]; c < 3 || c > 13 {
			t.Errorf("%s owns %d of 24 addresses; want 3–13: %v", n.Name, c, count)
		}
	}
	t.Logf("24 addresses over 3 nodes: %v", count)
}

func BenchmarkDecide10000x100(b *testing.B) {
	var nodes []election.NodeInfo
	for i := range 100 {
		nodes = append(nodes, node(fmt.Sprintf("node-%03d", i)))
	}
	pools := []Pool{{Name: "big", Ranges: []allocator.Range{mustRange("198.18.0.0/16")}, L2: &L2Policy{}, BGP: []*BGPPolicy{{}}}}
	var svcs []Service
	for i := range 10000 {
		s := Service{Key: fmt.Sprintf("ns/s%05d", i), Addrs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})}}
		if i%10 == 0 {
			s.Local, s.LocalNodes = true, map[string]bool{"node-001": true, "node-050": true}
		}
		svcs = append(svcs, s)
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(Input{Self: "node-042", Nodes: nodes, Pools: pools, Services: svcs})
	}
}

func TestSharedAddressKeepsDualStackTogether(t *testing.T) {
	var nodes []election.NodeInfo
	for i := range 7 {
		nodes = append(nodes, node(fmt.Sprintf("node-%d", i)))
	}
	pools := []Pool{l2Pool("lan", "198.51.100.0/24", "2001:db8::/64")}
	for i := range 50 {
		v4, v6 := fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("2001:db8::%x", i)
		// The IPv6-only sharer sorts first; the dual-stack Service must
		// still find both its families on one node.
		svcs := []Service{
			{Key: "a/v6only", Addrs: addrs(v6)},
			{Key: "b/dual", Addrs: addrs(v4, v6)},
		}
		l2, _ := owners(nodes, pools, svcs)
		o4, o6 := l2[netip.MustParseAddr(v4)], l2[netip.MustParseAddr(v6)]
		if len(o4) != 1 || len(o6) != 1 || o4[0] != o6[0] {
			t.Fatalf("case %d: IPv4 on %v, IPv6 on %v", i, o4, o6)
		}
	}
}

func TestShrunkPoolStillAnnouncesKeptAddresses(t *testing.T) {
	nodes := threeNodes()
	p := l2Pool("lan", "198.51.100.8/29")
	svcs := []Service{{Key: "ns/a", Addrs: addrs("198.51.100.1"), PoolHint: "lan"}}
	if l2, _ := owners(nodes, []Pool{p}, svcs); len(l2) != 0 {
		t.Fatalf("announced an address outside every pool: %v", l2)
	}
	p.HeldOutsideSpec = []allocator.Range{mustRange("198.51.100.1-198.51.100.1")}
	if l2, _ := owners(nodes, []Pool{p}, svcs); len(l2[netip.MustParseAddr("198.51.100.1")]) != 1 {
		t.Fatalf("kept address of a shrunk pool not announced: %v", l2)
	}
	// The hint alone is not enough for a pool that holds nothing outside.
	svcs[0].PoolHint = "other"
	if l2, _ := owners(nodes, []Pool{p}, svcs); len(l2) != 0 {
		t.Fatalf("announced on a foreign hint: %v", l2)
	}
}

func TestExternalIPs(t *testing.T) {
	nodes := threeNodes()
	ext := l2Pool("ext", "203.0.113.0/24")
	ext.ExternalIPs = true
	pools := []Pool{ext, l2Pool("lan", "198.51.100.0/24")}
	svcs := []Service{
		{Key: "ns/np", ExternalIPs: addrs("203.0.113.5", "198.51.100.5", "198.18.0.1")},
		{Key: "ns/local", ExternalIPs: addrs("203.0.113.6"), Local: true, LocalNodes: map[string]bool{"node-b": true}},
		{Key: "ns/lb", Addrs: addrs("203.0.113.7")},
		{Key: "ns/clash", ExternalIPs: addrs("203.0.113.7")},
	}
	l2, _ := owners(nodes, pools, svcs)
	if o := l2[netip.MustParseAddr("203.0.113.5")]; len(o) != 1 {
		t.Errorf("externalIP in an opt-in pool: owners %v", o)
	}
	for _, a := range []string{"198.51.100.5", "198.18.0.1"} {
		if o := l2[netip.MustParseAddr(a)]; len(o) != 0 {
			t.Errorf("externalIP %s outside opt-in pools announced by %v", a, o)
		}
	}
	if o := l2[netip.MustParseAddr("203.0.113.6")]; fmt.Sprint(o) != "[node-b]" {
		t.Errorf("Local externalIP owners %v, want [node-b]", o)
	}
	d := Decide(Input{Self: "node-a", Nodes: nodes, Pools: pools, Services: svcs})
	if fmt.Sprint(d.Refused[netip.MustParseAddr("203.0.113.7")]) != "[ns/clash]" {
		t.Errorf("externalIP equal to a load balancer's address not refused: %v", d.Refused)
	}
}

// TestHeldPoolAnnouncesNothing: a held pool's addresses are announced by
// no node and over no protocol, yet they are the pool's (not refused);
// releasing the hold announces them as usual.
func TestHeldPoolAnnouncesNothing(t *testing.T) {
	p := l2Pool("migrating", "198.51.100.0/28")
	p.BGP = []*BGPPolicy{{}}
	p.Hold = true
	svcs := []Service{{Key: "ns/web", Addrs: addrs("198.51.100.3")}}
	nodes := threeNodes()
	for _, n := range nodes {
		d := Decide(Input{Self: n.Name, Nodes: nodes, Pools: []Pool{p}, Services: svcs})
		if len(d.L2) > 0 || len(d.BGP) > 0 || len(d.Refused) > 0 {
			t.Errorf("%s with the pool held: layer 2 %v, BGP %v, refused %v; want nothing", n.Name, d.L2, d.BGP, d.Refused)
		}
	}
	p.Hold = false
	l2, bgp := owners(nodes, []Pool{p}, svcs)
	if a := netip.MustParseAddr("198.51.100.3"); len(l2[a]) != 1 || len(bgp[a]) != 3 {
		t.Errorf("released: layer 2 by %v, BGP by %v; want one node and every node", l2[a], bgp[a])
	}
}
