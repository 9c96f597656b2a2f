package bgp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPickRouter(t *testing.T) {
	a := netip.MustParseAddr("fe80::a").WithZone("eth1")
	b := netip.MustParseAddr("fe80::b").WithZone("eth1")
	for _, tc := range []struct {
		name    string
		found   []netip.Addr
		current netip.Addr
		want    netip.Addr
		wantErr string
	}{
		{"none yet", nil, netip.Addr{}, netip.Addr{}, "no IPv6 link-local neighbour on eth1 yet"},
		{"the one", []netip.Addr{a}, netip.Addr{}, a, ""},
		{"two, none current", []netip.Addr{a, b}, netip.Addr{}, netip.Addr{}, "2 IPv6 link-local neighbours on eth1 (fe80::a, fe80::b): an unnumbered session needs the router alone on the link"},
		{"two, one current: kept", []netip.Addr{a, b}, b, b, ""},
		{"current gone, another there", []netip.Addr{a}, b, a, ""},
		{"current gone, none left", nil, b, netip.Addr{}, "no IPv6 link-local neighbour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickRouter("eth1", tc.found, tc.current)
			if got != tc.want {
				t.Errorf("router %v, want %v", got, tc.want)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// fakeNeighbors stands in for the kernel's neighbour table, per interface.
type fakeNeighbors struct {
	mu sync.Mutex
	m  map[string][]netip.Addr
}

func (f *fakeNeighbors) set(iface string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := make([]netip.Addr, len(addrs))
	for i, s := range addrs {
		l[i] = netip.MustParseAddr(s)
	}
	f.m[iface] = l
}

func (f *fakeNeighbors) list(iface string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.m[iface]), nil
}

// startUnnumbered is an Announcer whose interfaces' neighbours are fake,
// looked at every 100ms.
func startUnnumbered(t *testing.T, cfg Config) (*Announcer, *fakeNeighbors) {
	t.Helper()
	cfg.InterfaceRetry = 100 * time.Millisecond
	a := startHerald(t, cfg)
	f := &fakeNeighbors{m: map[string][]netip.Addr{}}
	a.mu.Lock()
	a.neighbors = f.list
	a.mu.Unlock()
	return a, f
}

// TestInterfacePeer runs an interface peer's life against a router on
// loopback: the neighbour table is faked (a real link-local session needs
// two network namespaces: TestUnnumberedSession, privileged) and names
// ::1, which the router listens on. Until the router is found the peer
// waits with the reason and no session; once found its session comes up
// (the event mapped back to the peer's name) and carries the IPv6 routes
// with the node's next hop but no IPv4 route; a second neighbour on the
// link keeps the working session; the router's disappearance ends the
// session and the peer waits again.
func TestInterfacePeer(t *testing.T) {
	const asn = 64500
	r := newRouter(t, "::1", 64601, "10.255.0.1", routerNeighbor{addr: "::1", asn: asn})
	var ev events
	a, nb := startUnnumbered(t, Config{NextHopV4: nhV4, NextHopV6: nhV6, OnSessionChange: ev.record})
	ctx := context.Background()
	p := Peer{Name: "unnumbered", MyASN: asn, PeerASN: 64601, Interface: "hl-fake0", Port: r.port, ConnectTime: time.Second}
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	v4, v6 := netip.MustParsePrefix("198.51.100.10/32"), netip.MustParsePrefix("2001:db8:113::10/128")
	if err := a.SetPaths(ctx, []Path{{Prefix: v4}, {Prefix: v6}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	s := a.Sessions()["unnumbered"]
	if s.Up || !strings.Contains(s.Reason, "no IPv6 link-local neighbour on hl-fake0 yet") {
		t.Errorf("session before the router is found: %+v, want down with the reason", s)
	}
	if got := a.SessionReasons()["unnumbered"]; got != s.Reason {
		t.Errorf("SessionReasons %q, want the session's reason %q", got, s.Reason)
	}
	time.Sleep(300 * time.Millisecond)
	if r.established() {
		t.Fatal("router peered before herald could know its address")
	}

	nb.set("hl-fake0", "::1")
	waitFor(t, "the session", func() bool { return sessionUp(a, "unnumbered") })
	if got := ev.get(); !slices.Equal(got, []string{"unnumbered=true"}) {
		t.Errorf("session events %v, want [unnumbered=true]", got)
	}
	if s := a.Sessions()["unnumbered"]; s.Reason != "" {
		t.Errorf("reason %q once the router is found", s.Reason)
	}
	if got, ok := a.SessionReasons()["unnumbered"]; ok {
		t.Errorf("SessionReasons still says %q once the router is found", got)
	}
	waitFor(t, "the IPv6 prefix", func() bool { return r.count(true) == 1 })
	if got := r.rib(true)[v6].NextHop; got != nhV6 {
		t.Errorf("IPv6 next hop %v, want the node's %v", got, nhV6)
	}
	if n := r.count(false); n != 0 {
		t.Errorf("router got %d IPv4 prefixes over an interface session, want 0", n)
	}
	if n := a.Sessions()["unnumbered"].Advertised; n != 1 {
		t.Errorf("advertised %d, want 1 (the IPv6 prefix only)", n)
	}

	// Another host on the link does not move a working session.
	nb.set("hl-fake0", "::1", "fe80::99")
	time.Sleep(300 * time.Millisecond)
	if !sessionUp(a, "unnumbered") {
		t.Error("session dropped when a second neighbour appeared")
	}

	// The router gone from the table: the neighbour goes, the peer waits.
	nb.set("hl-fake0", "fe80::99", "fe80::98")
	waitFor(t, "the session to end", func() bool { return !sessionUp(a, "unnumbered") })
	waitFor(t, "the reason", func() bool {
		return strings.Contains(a.Sessions()["unnumbered"].Reason, "2 IPv6 link-local neighbours on hl-fake0")
	})
	if got := ev.get(); !slices.Equal(got, []string{"unnumbered=true", "unnumbered=false"}) {
		t.Errorf("session events %v, want up then down", got)
	}

	// Back, and removed with SetPeers: no session state is left.
	nb.set("hl-fake0", "::1")
	waitFor(t, "the session again", func() bool { return sessionUp(a, "unnumbered") })
	if err := a.SetPeers(ctx, netip.Addr{}, nil); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if s, ok := a.Sessions()["unnumbered"]; ok {
		t.Errorf("removed peer still has session state %+v", s)
	}
}

// TestInterfacePeersSameRouterAddress: two interface peers whose routers
// use one link-local address (on two links) cannot be told apart by GoBGP's
// per-peer policy, which sees addresses without their zone: the later one
// waits, saying so, and the first keeps its session and its own filter.
func TestInterfacePeersSameRouterAddress(t *testing.T) {
	const asn = 64500
	r := newRouter(t, "::1", 64601, "10.255.0.1", routerNeighbor{addr: "::1", asn: asn})
	a, nb := startUnnumbered(t, Config{NextHopV4: nhV4, NextHopV6: nhV6})
	nb.set("hl-fake1", "::1")
	nb.set("hl-fake2", "::1")
	ctx := context.Background()
	peer := func(name, iface string) Peer {
		return Peer{Name: name, MyASN: asn, PeerASN: 64601, Interface: iface, Port: r.port, ConnectTime: time.Second}
	}
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{peer("one", "hl-fake1"), peer("two", "hl-fake2")}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	only := netip.MustParsePrefix("2001:db8:113::20/128")
	if err := a.SetPaths(ctx, []Path{{Prefix: only, Peers: []string{"two"}}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitFor(t, "peer one's session", func() bool { return sessionUp(a, "one") })
	if s := a.Sessions()["two"]; s.Up || !strings.Contains(s.Reason, "has address ::1, as peer one does") {
		t.Errorf("peer two: %+v, want waiting for the address clash", s)
	}
	time.Sleep(300 * time.Millisecond)
	if n := r.count(true); n != 0 {
		t.Errorf("peer one got %d prefixes meant for peer two only", n)
	}
}
