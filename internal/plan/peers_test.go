package plan

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/election"
)

func bgpPeerSpec(addr, routerID string) heraldv1.BGPPeerSpec {
	return heraldv1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: addr, RouterID: routerID}
}

func peerNames(ps []bgpplan.Peer) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return fmt.Sprint(out)
}

// TestPeers: which BGPPeers this node uses, the router ID they agree on,
// and every peer it cannot use named with why, as data the speaker turns
// into Events.
func TestPeers(t *testing.T) {
	nodes := []election.NodeInfo{node("node-a", func(n *election.NodeInfo) { n.Labels["rack"] = "r1" })}
	secretMissing := `password Secret herald-system/bgp-auth has no key "password"`
	for _, tc := range []struct {
		name     string
		peers    []Peer
		want     string
		routerID string
		problems []Problem
	}{
		{name: "none", peers: nil, want: "[]"},
		{name: "router IDs agree", peers: []Peer{
			{Name: "a", Spec: bgpPeerSpec("198.51.100.1", "198.51.100.91")},
			{Name: "b", Spec: bgpPeerSpec("198.51.100.2", "")},
		}, want: "[a b]", routerID: "198.51.100.91"},
		{name: "router IDs disagree: every peer that asks is told", peers: []Peer{
			{Name: "b", Spec: bgpPeerSpec("198.51.100.2", "198.51.100.92")},
			{Name: "a", Spec: bgpPeerSpec("198.51.100.1", "198.51.100.91")},
			{Name: "c", Spec: bgpPeerSpec("198.51.100.3", "")},
		}, want: "[a b c]", problems: []Problem{
			{"a", "this node's BGP peers ask for different router IDs, 198.51.100.91 (a) vs 198.51.100.92 (b): the node's default router ID is used for all"},
			{"b", "this node's BGP peers ask for different router IDs, 198.51.100.91 (a) vs 198.51.100.92 (b): the node's default router ID is used for all"},
		}},
		{name: "password missing: left out", peers: []Peer{
			{Name: "locked", Spec: bgpPeerSpec("198.51.100.3", ""), PasswordProblem: secretMissing},
			{Name: "open", Spec: bgpPeerSpec("198.51.100.4", "")},
		}, want: "[open]", problems: []Problem{{"locked", secretMissing + ": no session until it does"}}},
		{name: "nodeSelector", peers: []Peer{
			{Name: "r1", Spec: withSelector(bgpPeerSpec("198.51.100.1", ""), "rack", "r1")},
			{Name: "r2", Spec: withSelector(bgpPeerSpec("198.51.100.2", ""), "rack", "r2")},
		}, want: "[r1]"},
		{name: "bad addresses are problems", peers: []Peer{
			{Name: "a", Spec: bgpPeerSpec("not-an-ip", "")},
			{Name: "b", Spec: bgpPeerSpec("198.51.100.2", "2001:db8::1")},
		}, want: "[]", problems: []Problem{
			{"a", `peerAddress "not-an-ip": ParseAddr("not-an-ip"): unable to parse IP`},
			{"b", `routerID "2001:db8::1" is not an IPv4 address`},
		}},
		{name: "interface peers", peers: []Peer{
			{Name: "unnumbered", Spec: withInterface(bgpPeerSpec("", ""), "eth1")},
			{Name: "both", Spec: withInterface(bgpPeerSpec("2001:db8::1", ""), "eth2")},
			{Name: "bad-name", Spec: withInterface(bgpPeerSpec("", ""), "eth0/1")},
		}, want: "[unnumbered]", problems: []Problem{
			{"bad-name", `interface "eth0/1" is not an interface name`},
			{"both", `both peerAddress "2001:db8::1" and interface "eth2"`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(Input{Self: "node-a", Nodes: nodes, Peers: tc.peers})
			if got := peerNames(p.BGPPeers); got != tc.want {
				t.Errorf("peers %s, want %s", got, tc.want)
			}
			var want netip.Addr
			if tc.routerID != "" {
				want = netip.MustParseAddr(tc.routerID)
			}
			if p.RouterID != want {
				t.Errorf("router ID %v, want %v", p.RouterID, want)
			}
			if d := cmp.Diff(tc.problems, p.Problems); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func withInterface(s heraldv1.BGPPeerSpec, iface string) heraldv1.BGPPeerSpec {
	s.Interface = iface
	return s
}

func withSelector(s heraldv1.BGPPeerSpec, k, v string) heraldv1.BGPPeerSpec {
	s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	return s
}

// TestPeerDefaults: a BGPPeer that sets nothing optional gets the defaults
// of bgpplan; one that sets everything keeps it.
func TestPeerDefaults(t *testing.T) {
	nodes := []election.NodeInfo{node("node-a")}
	bare := Decide(Input{Self: "node-a", Nodes: nodes, Peers: []Peer{{Name: "a", Spec: bgpPeerSpec("198.51.100.1", "")}}})
	want := bgpplan.Peer{Name: "a", MyASN: 64512, PeerASN: 64513, Address: netip.MustParseAddr("198.51.100.1"),
		Port: 179, HoldTime: 90 * time.Second, ConnectTime: 5 * time.Second}
	if d := cmp.Diff([]bgpplan.Peer{want}, bare.BGPPeers, cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("defaults (-want +got):\n%s", d)
	}
	port := int32(1179)
	spec := bgpPeerSpec("2001:db8::1", "")
	spec.PeerPort, spec.SourceAddress = &port, "2001:db8::2"
	spec.HoldTime, spec.KeepaliveTime, spec.ConnectTime = &metav1.Duration{Duration: 9 * time.Second}, &metav1.Duration{Duration: 3 * time.Second}, &metav1.Duration{Duration: time.Second}
	spec.EBGPMultiHop, spec.GracefulRestart = true, true
	set := Decide(Input{Self: "node-a", Nodes: nodes, Peers: []Peer{{Name: "a", Spec: spec, Password: "pw"}}})
	want = bgpplan.Peer{Name: "a", MyASN: 64512, PeerASN: 64513, Address: netip.MustParseAddr("2001:db8::1"), Port: 1179,
		SourceAddress: netip.MustParseAddr("2001:db8::2"), HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second,
		ConnectTime: time.Second, EBGPMultiHop: true, Password: "pw", GracefulRestart: true}
	if d := cmp.Diff([]bgpplan.Peer{want}, set.BGPPeers, cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("set (-want +got):\n%s", d)
	}
	unnumbered := Decide(Input{Self: "node-a", Nodes: nodes, Peers: []Peer{{Name: "a", Spec: withInterface(bgpPeerSpec("", ""), "eth1")}}})
	want = bgpplan.Peer{Name: "a", MyASN: 64512, PeerASN: 64513, Interface: "eth1",
		Port: 179, HoldTime: 90 * time.Second, ConnectTime: 5 * time.Second}
	if d := cmp.Diff([]bgpplan.Peer{want}, unnumbered.BGPPeers, cmpopts.EquateComparable(netip.Addr{})); d != "" {
		t.Errorf("interface peer (-want +got):\n%s", d)
	}
	dyn := bgpPeerSpec("198.51.100.1", "")
	dyn.PeerASN, dyn.DynamicASN = 0, heraldv1.DynamicASNInternal
	got := Decide(Input{Self: "node-a", Nodes: nodes, Peers: []Peer{{Name: "a", Spec: dyn}}})
	if len(got.BGPPeers) != 1 || got.BGPPeers[0].PeerASN != 0 || got.BGPPeers[0].DynamicASN != bgpplan.DynamicInternal {
		t.Errorf("dynamicASN internal: peers %+v, want one with no PeerASN and DynamicASN internal", got.BGPPeers)
	}
}

func TestPaths(t *testing.T) {
	lp := uint32(150)
	pol := &BGPPolicy{Peers: []string{"r1"}, Communities: []string{"1:1"}, LocalPref: &lp, AggregationLength: 24, AggregationLengthV6: 64}
	got, err := Paths([]BGPAnnouncement{
		{Addr: netip.MustParseAddr("198.51.100.7"), Policies: []*BGPPolicy{pol}},
		{Addr: netip.MustParseAddr("2001:db8::7"), Policies: []*BGPPolicy{pol}},
		{Addr: netip.MustParseAddr("198.51.100.8"), Policies: []*BGPPolicy{{AggregationLength: 33}}},
	})
	if err == nil {
		t.Error("aggregation to /33 accepted")
	}
	want := []bgpplan.Path{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Communities: []string{"1:1"}, LocalPref: &lp, Peers: []string{"r1"}},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Communities: []string{"1:1"}, LocalPref: &lp, Peers: []string{"r1"}},
	}
	if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{})); d != "" {
		t.Errorf("paths (-want +got):\n%s", d)
	}
}
