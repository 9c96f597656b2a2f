package bgp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/heraldlb/herald/internal/bgpplan"
)

// TestIPv6OnlyNode: an Announcer for a node without IPv4 (NoIPv4, a
// router ID derived from its IPv6 address) announces its IPv6 paths with
// its IPv6 next hop and leaves the IPv4 ones out, which GoBGP would
// otherwise send with the session's IPv6 address as an IPv4 next hop.
func TestIPv6OnlyNode(t *testing.T) {
	const asn = 64500
	r := newRouter(t, "127.0.0.1", 64601, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: asn})
	nh6 := netip.MustParseAddr("2001:db8::14")
	rid := bgpplan.DerivedRouterID(nh6, "node4")
	a := startHerald(t, Config{RouterID: rid, NextHopV6: nh6, NoIPv4: true})
	ctx := context.Background()
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r.peer("r1", asn)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := a.SetPaths(ctx, []Path{
		{Prefix: netip.MustParsePrefix("198.51.100.10/32")},
		{Prefix: netip.MustParsePrefix("2001:db8:113::10/128")},
	}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitFor(t, "the IPv6 prefix", func() bool { return r.count(true) == 1 })
	got := r.rib(true)[netip.MustParsePrefix("2001:db8:113::10/128")]
	if got.NextHop != nh6 {
		t.Errorf("IPv6 next hop %v, want %v", got.NextHop, nh6)
	}
	if n := r.count(false); n != 0 {
		t.Errorf("router has %d IPv4 prefixes from a node without IPv4, want 0", n)
	}
	if id := r.neighbor().GetState().GetRouterId(); id != "0.0.0.20" {
		t.Errorf("router sees router ID %q, want 0.0.0.20 (derived from %s)", id, nh6)
	}
}
