package bgp

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldlb/herald/internal/docscheck"
)

var equateAddr = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

var (
	nhV4 = netip.MustParseAddr("192.0.2.1")
	nhV6 = netip.MustParseAddr("2001:db8::1")
)

func TestEBGPAnnounceAndWithdraw(t *testing.T) {
	const myASN, routerASN = 64500, 64501
	r := newRouter(t, "127.0.0.1", routerASN, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	var ev events
	reg := prometheus.NewPedanticRegistry()
	a := startHerald(t, Config{NextHopV4: nhV4, NextHopV6: nhV6, OnSessionChange: ev.record, Registry: reg})
	ctx := context.Background()

	host := Path{
		Prefix:           netip.MustParsePrefix("198.51.100.10/32"),
		Communities:      []string{"64512:100", "no-export"},
		LargeCommunities: []string{"64512:1:2"},
		LocalPref:        u32(200),
	}
	aggregate := Path{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Communities: []string{"64512:7"}}
	v6 := Path{Prefix: netip.MustParsePrefix("2001:db8:100::10/128"), Communities: []string{"64512:6"}}

	// Paths set before any peer are announced once the first peer exists.
	if err := a.SetPaths(ctx, []Path{host, aggregate, v6}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r.peer("r1", myASN)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "session up", func() bool { return sessionUp(a, "r1") })
	waitFor(t, "three prefixes at the router", func() bool { return r.count(false) == 2 && r.count(true) == 1 })

	want4 := map[netip.Prefix]received{
		host.Prefix: {
			NextHop: nhV4, ASPath: []uint32{myASN},
			Communities: []uint32{64512<<16 | 100, 0xFFFFFF01},
			Large:       []LargeCommunity{{Global: 64512, Local1: 1, Local2: 2}},
			// no LocalPref: eBGP
		},
		aggregate.Prefix: {NextHop: nhV4, ASPath: []uint32{myASN}, Communities: []uint32{64512<<16 | 7}},
	}
	if d := cmp.Diff(want4, r.rib(false), equateAddr); d != "" {
		t.Errorf("router IPv4 RIB (-want +got):\n%s", d)
	}
	want6 := map[netip.Prefix]received{
		v6.Prefix: {NextHop: nhV6, ASPath: []uint32{myASN}, Communities: []uint32{64512<<16 | 6}},
	}
	if d := cmp.Diff(want6, r.rib(true), equateAddr); d != "" {
		t.Errorf("router IPv6 RIB, IPv6 over the IPv4 session (-want +got):\n%s", d)
	}
	s := a.Sessions()["r1"]
	if !s.Up || s.State != "ESTABLISHED" || s.Advertised != 3 {
		t.Errorf("Sessions()[r1] = %+v, want up, ESTABLISHED, 3 advertised", s)
	}
	if d := cmp.Diff([]string{"r1=true"}, ev.get()); d != "" {
		t.Errorf("OnSessionChange calls (-want +got):\n%s", d)
	}

	// The same set again sends nothing. A marker prefix added afterwards
	// proves it: GoBGP sends in order, so the router has seen anything
	// the no-op call sent by the time it has the marker.
	before := r.updatesReceived()
	if err := a.SetPaths(ctx, []Path{v6, aggregate, host}); err != nil {
		t.Fatalf("SetPaths (same set): %v", err)
	}
	marker := Path{Prefix: netip.MustParsePrefix("198.51.100.99/32")}
	if err := a.SetPaths(ctx, []Path{v6, aggregate, host, marker}); err != nil {
		t.Fatalf("SetPaths (marker): %v", err)
	}
	waitFor(t, "marker at the router", func() bool { _, ok := r.rib(false)[marker.Prefix]; return ok })
	if got := r.updatesReceived() - before; got != 1 {
		t.Errorf("router received %d UPDATEs for an unchanged set plus one new prefix, want 1", got)
	}

	// Dropping paths withdraws them; changing communities re-announces.
	host.Communities = []string{"64512:200"}
	if err := a.SetPaths(ctx, []Path{host}); err != nil {
		t.Fatalf("SetPaths (shrink): %v", err)
	}
	waitFor(t, "withdrawals", func() bool { return r.count(false) == 1 && r.count(true) == 0 })
	waitFor(t, "changed communities", func() bool {
		return slices.Equal(r.rib(false)[host.Prefix].Communities, []uint32{64512<<16 | 200})
	})

	// Metrics.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = metricValue(m)
		}
	}
	if got["herald_bgp_session_up"] != 1 || got["herald_bgp_prefixes_advertised"] != 1 || got["herald_bgp_updates_sent_total"] < 5 {
		t.Errorf("metrics = %v, want session up, 1 prefix advertised, ≥5 updates sent", got)
	}
	// The collector shows its metrics' types only now that it emits
	// them: the commands' documentation checks leave them to this one.
	doc, err := docscheck.ReadDoc(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 3 {
		t.Errorf("gathered %d metrics, want the 3 herald_bgp_ ones", len(mfs))
	}
	for _, p := range doc.CheckTypes(mfs) {
		t.Errorf("docs/metrics.md: %s", p)
	}

	// Router stops: the session goes down.
	r.Stop()
	waitFor(t, "session down", func() bool { return !sessionUp(a, "r1") })
	if d := cmp.Diff([]string{"r1=true", "r1=false"}, ev.get()); d != "" {
		t.Errorf("OnSessionChange calls (-want +got):\n%s", d)
	}
	if s := a.Sessions()["r1"]; s.Advertised != 0 {
		t.Errorf("Advertised while down = %d, want 0", s.Advertised)
	}
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return -1
}

func TestIBGPLocalPrefAndSessionNextHop(t *testing.T) {
	const asn = 64500
	r := newRouter(t, "127.0.0.1", asn, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: asn})
	// No NextHopV4: GoBGP uses the session's local address.
	a := startHerald(t, Config{})
	ctx := context.Background()
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r.peer("r1", asn)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	paths := []Path{
		{Prefix: netip.MustParsePrefix("198.51.100.10/32"), LocalPref: u32(250)},
		{Prefix: netip.MustParsePrefix("198.51.100.11/32")},
		// No IPv6 next hop: not announced.
		{Prefix: netip.MustParsePrefix("2001:db8::10/128")},
	}
	if err := a.SetPaths(ctx, paths); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitFor(t, "two prefixes", func() bool { return r.count(false) == 2 })
	lo := netip.MustParseAddr(heraldAddr)
	want := map[netip.Prefix]received{
		paths[0].Prefix: {NextHop: lo, LocalPref: u32(250)},
		// GoBGP sends the default local-pref (100) to iBGP peers.
		paths[1].Prefix: {NextHop: lo, LocalPref: u32(100)},
	}
	if d := cmp.Diff(want, r.rib(false), cmpopts.EquateEmpty(), equateAddr); d != "" {
		t.Errorf("router RIB (-want +got):\n%s", d)
	}
	if n := r.count(true); n != 0 {
		t.Errorf("router has %d IPv6 prefixes, want 0 (no IPv6 next hop)", n)
	}
}

func TestPerPeerRestriction(t *testing.T) {
	const myASN = 64500
	r1 := newRouter(t, "127.0.0.1", 64601, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	// r2 peers with a different local ASN: the global ASN is r1's (first
	// by name), r2's session uses its own LocalAsn.
	const otherASN = 64510
	r2 := newRouter(t, "127.0.0.2", 64602, "10.255.0.2", routerNeighbor{addr: heraldAddr, asn: otherASN})
	a := startHerald(t, Config{NextHopV4: nhV4, NextHopV6: nhV6})
	ctx := context.Background()

	all := Path{Prefix: netip.MustParsePrefix("198.51.100.1/32")}
	only1 := Path{Prefix: netip.MustParsePrefix("198.51.100.2/32"), Peers: []string{"r1"}}
	only2 := Path{Prefix: netip.MustParsePrefix("198.51.100.3/32"), Peers: []string{"r2"}}
	only1v6 := Path{Prefix: netip.MustParsePrefix("2001:db8::2/128"), Peers: []string{"r1"}}
	nobody := Path{Prefix: netip.MustParsePrefix("198.51.100.4/32"), Peers: []string{"r9"}}
	if err := a.SetPaths(ctx, []Path{all, only1, only2, only1v6, nobody}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r1.peer("r1", myASN), r2.peer("r2", otherASN)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	prefixes := func(r *router, v6 bool) []netip.Prefix {
		return slices.SortedFunc(func(yield func(netip.Prefix) bool) {
			for p := range r.rib(v6) {
				if !yield(p) {
					return
				}
			}
		}, netip.Prefix.Compare)
	}
	// A marker for everyone, announced last, bounds the wait for what
	// must not arrive.
	marker := Path{Prefix: netip.MustParsePrefix("198.51.100.200/32")}
	if err := a.SetPaths(ctx, []Path{all, only1, only2, only1v6, nobody, marker}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitFor(t, "marker at both routers", func() bool {
		_, ok1 := r1.rib(false)[marker.Prefix]
		_, ok2 := r2.rib(false)[marker.Prefix]
		return ok1 && ok2 && r1.count(true) == 1
	})
	if d := cmp.Diff([]netip.Prefix{all.Prefix, only1.Prefix, marker.Prefix}, prefixes(r1, false), equateAddr); d != "" {
		t.Errorf("r1 IPv4 prefixes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]netip.Prefix{only1v6.Prefix}, prefixes(r1, true), equateAddr); d != "" {
		t.Errorf("r1 IPv6 prefixes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]netip.Prefix{all.Prefix, only2.Prefix, marker.Prefix}, prefixes(r2, false), equateAddr); d != "" {
		t.Errorf("r2 IPv4 prefixes (-want +got):\n%s", d)
	}
	if got := r2.rib(false)[all.Prefix].ASPath; !slices.Equal(got, []uint32{otherASN}) {
		t.Errorf("AS path at r2 = %v, want [%d] (r2's own myASN)", got, otherASN)
	}
	if n := r2.count(true); n != 0 {
		t.Errorf("r2 has %d IPv6 prefixes, want 0", n)
	}
	if got := a.Sessions(); got["r1"].Advertised != 4 || got["r2"].Advertised != 3 {
		t.Errorf("Advertised r1=%d r2=%d, want 4 and 3", got["r1"].Advertised, got["r2"].Advertised)
	}

	// Move only1 to r2 and open only2 to everyone.
	only1.Peers = []string{"r2"}
	only2.Peers = nil
	if err := a.SetPaths(ctx, []Path{all, only1, only2, only1v6, nobody, marker}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitFor(t, "r1 loses .2 and gains .3, r2 gains .2", func() bool {
		return slices.Equal(prefixes(r1, false), []netip.Prefix{all.Prefix, only2.Prefix, marker.Prefix}) &&
			slices.Equal(prefixes(r2, false), []netip.Prefix{all.Prefix, only1.Prefix, only2.Prefix, marker.Prefix})
	})
}

func TestSetPeersKeepsOtherSessions(t *testing.T) {
	const myASN = 64500
	r1 := newRouter(t, "127.0.0.1", 64601, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	r2 := newRouter(t, "127.0.0.2", 64602, "10.255.0.2", routerNeighbor{addr: heraldAddr, asn: myASN})
	var ev events
	a := startHerald(t, Config{NextHopV4: nhV4, OnSessionChange: ev.record})
	ctx := context.Background()
	p1 := r1.peer("r1", myASN)
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p1}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := a.SetPaths(ctx, []Path{{Prefix: netip.MustParsePrefix("198.51.100.1/32")}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitFor(t, "r1 up", func() bool { return sessionUp(a, "r1") && r1.count(false) == 1 })
	since := a.Sessions()["r1"].Since
	uptime := r1.neighbor().GetTimers().GetState().GetUptime().AsTime()

	// Add r2.
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p1, r2.peer("r2", myASN)}); err != nil {
		t.Fatalf("SetPeers (add r2): %v", err)
	}
	waitFor(t, "r2 up with the path", func() bool { return sessionUp(a, "r2") && r2.count(false) == 1 })

	// Change r1's timers: updated in place.
	p1.HoldTime = 30 * time.Second
	// Remove r2.
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p1}); err != nil {
		t.Fatalf("SetPeers (remove r2): %v", err)
	}
	waitFor(t, "r2 gone at the router", func() bool { return !r2.established() })
	if _, ok := a.Sessions()["r2"]; ok {
		t.Errorf("Sessions() still lists removed peer r2")
	}

	if got := a.Sessions()["r1"]; !got.Up || !got.Since.Equal(since) {
		t.Errorf("r1 session = %+v, want up since %v (untouched)", got, since)
	}
	if got := r1.neighbor().GetTimers().GetState().GetUptime().AsTime(); !got.Equal(uptime) || !r1.established() {
		t.Errorf("router r1: session uptime %v, established %v; want %v, true (never reset)", got, r1.established(), uptime)
	}
	if d := cmp.Diff([]string{"r1=true", "r2=true", "r2=false"}, ev.get()); d != "" {
		t.Errorf("OnSessionChange calls (-want +got):\n%s", d)
	}

	// Same set again: nothing happens.
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p1}); err != nil {
		t.Fatalf("SetPeers (same): %v", err)
	}
	if got := r1.neighbor().GetTimers().GetState().GetUptime().AsTime(); !got.Equal(uptime) {
		t.Errorf("router r1 session restarted by an unchanged SetPeers")
	}
}

func TestInvalidInput(t *testing.T) {
	a := startHerald(t, Config{NextHopV4: nhV4})
	ctx := context.Background()
	peers := []Peer{
		{Name: "a", MyASN: 1, PeerASN: 2, Address: netip.MustParseAddr("127.0.0.1"), Port: 1, ConnectTime: time.Hour},
		{Name: "b", MyASN: 1, PeerASN: 2, Address: netip.MustParseAddr("127.0.0.1"), Port: 1},
		{Name: "c", MyASN: 0, PeerASN: 2, Address: netip.MustParseAddr("127.0.0.3")},
		{Name: "", MyASN: 1, PeerASN: 2, Address: netip.MustParseAddr("127.0.0.4")},
	}
	if err := a.SetPeers(ctx, netip.Addr{}, peers); err == nil {
		t.Errorf("SetPeers with invalid peers: no error")
	}
	if got := a.Sessions(); len(got) != 1 || got["a"].State == "" {
		t.Errorf("Sessions() = %v, want only the valid peer a", got)
	}
	err := a.SetPaths(ctx, []Path{
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Communities: []string{"70000:1"}},
		{Prefix: netip.MustParsePrefix("198.51.100.2/32")},
	})
	if err == nil {
		t.Errorf("SetPaths with a bad community: no error")
	}
	a.mu.Lock()
	n := len(a.table.Applied)
	a.mu.Unlock()
	if n != 1 {
		t.Errorf("%d paths applied, want the 1 valid one", n)
	}
}

func TestRunEndWithdraws(t *testing.T) {
	const myASN = 64500
	r := newRouter(t, "127.0.0.1", 64501, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	var ev events
	a, err := New(Config{RouterID: netip.MustParseAddr(heraldID), NextHopV4: nhV4, OnSessionChange: ev.record, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r.peer("r1", myASN)}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPaths(ctx, []Path{{Prefix: netip.MustParsePrefix("198.51.100.1/32")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route at router", func() bool { return r.count(false) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitFor(t, "route withdrawn after Run ends", func() bool { return r.count(false) == 0 && !r.established() })
	if d := cmp.Diff([]string{"r1=true", "r1=false"}, ev.get()); d != "" {
		t.Errorf("OnSessionChange calls (-want +got):\n%s", d)
	}
	if err := a.SetPaths(context.Background(), nil); err != ErrStopped {
		t.Errorf("SetPaths after Run: %v, want ErrStopped", err)
	}
}

// TestRouterID: the identifier SetPeers names replaces the node's default;
// a later change is reported, not applied (one identifier per server), and
// an identifier that is not IPv4 is refused for the default.
func TestRouterID(t *testing.T) {
	ctx := context.Background()
	r1 := newRouter(t, "127.0.0.1", 64601, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: 64500})
	r2 := newRouter(t, "127.0.0.2", 64602, "10.255.0.2", routerNeighbor{addr: heraldAddr, asn: 64500})
	seenID := func(r *router) string {
		var id string
		_ = r.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED {
				id = p.State.RouterId
			}
		})
		return id
	}

	t.Run("asked", func(t *testing.T) {
		a := startHerald(t, Config{})
		p1, p2 := r1.peer("r1", 64500), r2.peer("r2", 64500)
		if err := a.SetPeers(ctx, netip.MustParseAddr("10.9.9.9"), []Peer{p1, p2}); err != nil {
			t.Fatalf("SetPeers: %v", err)
		}
		waitFor(t, "r1's session", func() bool { return seenID(r1) != "" })
		if got := seenID(r1); got != "10.9.9.9" {
			t.Errorf("r1 sees router ID %s, want the asked 10.9.9.9", got)
		}
		err := a.SetPeers(ctx, netip.MustParseAddr("10.8.8.8"), []Peer{p1, p2})
		if err == nil || !strings.Contains(err.Error(), "router ID 10.8.8.8 takes effect when the speaker restarts") {
			t.Errorf("changing the router ID: err = %v, want it reported as needing a restart", err)
		}
	})
	t.Run("not IPv4", func(t *testing.T) {
		r1.Stop()
		r1 = newRouter(t, "127.0.0.1", 64601, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: 64500})
		a := startHerald(t, Config{})
		err := a.SetPeers(ctx, netip.MustParseAddr("2001:db8::9"), []Peer{r1.peer("r1", 64500)})
		if err == nil || !strings.Contains(err.Error(), "not an IPv4 address; using "+heraldID) {
			t.Errorf("SetPeers error = %v, want the IPv6 router ID refused", err)
		}
		waitFor(t, "r1's session", func() bool { return seenID(r1) != "" })
		if got := seenID(r1); got != heraldID {
			t.Errorf("r1 sees router ID %s, want the default %s", got, heraldID)
		}
	})
}
