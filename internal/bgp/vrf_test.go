package bgp

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestPeerBoundToDevice: a peer with a VRF has its session's socket bound
// to that device and gets the node's routes with the session's local
// address as next hop (the node's InternalIP is in the default VRF). The
// test machine may have no VRF support, so the device is lo, which the
// binding treats alike; a device the node lacks keeps the session down.
func TestPeerBoundToDevice(t *testing.T) {
	const asn = 64500
	r := newRouter(t, "127.0.0.2", 64601, "10.255.0.2", routerNeighbor{addr: heraldAddr, asn: asn})
	a := startHerald(t, Config{NextHopV4: nhV4, NextHopV6: nhV6})
	ctx := context.Background()
	p := r.peer("in-vrf", asn)
	p.VRF = "lo"
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	v4, v6 := netip.MustParsePrefix("198.51.100.10/32"), netip.MustParsePrefix("2001:db8::10/128")
	if err := a.SetPaths(ctx, []Path{{Prefix: v4}, {Prefix: v6}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitFor(t, "both prefixes", func() bool { return r.count(false) == 1 && r.count(true) == 1 })
	if got := r.rib(false)[v4].NextHop; got != netip.MustParseAddr(heraldAddr) {
		t.Errorf("IPv4 next hop over the VRF session %v, want the session's local address %s (not %v)", got, heraldAddr, nhV4)
	}
	// IPv6 routes over an IPv4 session keep the node's IPv6 next hop: the
	// session's address is of the other family.
	if got := r.rib(true)[v6].NextHop; got != nhV6 {
		t.Errorf("IPv6 next hop over the IPv4 VRF session %v, want %v", got, nhV6)
	}

	// The same peer bound to a device this host lacks never comes up.
	p.VRF = "hl-novrf0"
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "the session to drop", func() bool { return !r.established() })
	time.Sleep(3 * time.Second) // three connect attempts (ConnectTime 1s)
	if r.established() {
		t.Error("session up from a device that does not exist")
	}
	if s := a.Sessions()["in-vrf"]; s.Up {
		t.Errorf("herald reports the session up: %+v", s)
	}
}
