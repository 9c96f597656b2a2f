package bgp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/bfd"
	"github.com/heraldlb/herald/internal/bgpplan"
)

// TestBFDDownDropsSession: a peer with BFD gets a BFD session beside its
// BGP session (the router runs its own BFD engine here); when the
// router's BFD falls silent, herald drops the BGP session within the
// BFD detection time (300 ms) instead of waiting out the 30 s hold time.
// Taking BFD off the peer removes the session without touching BGP.
func TestBFDDownDropsSession(t *testing.T) {
	const asn = 64500
	// Addresses of their own: internal/bfd's tests, which may run at the
	// same time, use BFD's port on 127.0.0.x and 127.0.2.x.
	const local = "127.0.3.1"
	r := newRouter(t, "127.0.3.2", 64601, "10.255.0.2", routerNeighbor{addr: local, asn: asn})
	a := startHerald(t, Config{})
	ctx := context.Background()
	p := r.peer("r1", asn)
	p.SourceAddress = netip.MustParseAddr(local)
	p.HoldTime = 30 * time.Second
	p.BFD = bgpplan.BFD{Enabled: true, ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}

	rb, err := bfd.New(bfd.Config{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.Set([]bfd.Session{{Peer: netip.MustParseAddr(local), Local: r.addr,
		Profile: bfd.Profile{ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond}}}); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	rdone := make(chan error, 1)
	go func() { rdone <- rb.Run(rctx) }()
	t.Cleanup(func() {
		rcancel()
		if err := <-rdone; err != nil {
			t.Errorf("router BFD: %v", err)
		}
	})

	waitFor(t, "BGP and BFD up", func() bool { return r.established() && a.BFDUp("r1") })
	flops := r.neighbor().GetState().GetFlops()

	// The router's BFD goes silent (its sockets close without AdminDown,
	// as when the link or the router dies); its BGP stays.
	silent := time.Now()
	rcancel()
	waitFor(t, "herald to drop the BGP session", func() bool { return r.neighbor().GetState().GetFlops() > flops || !r.established() })
	took := time.Since(silent)
	t.Logf("BGP session dropped %v after the router's BFD fell silent (detection time 300 ms, hold time 30 s)", took.Round(time.Millisecond))
	if took >= p.HoldTime {
		t.Errorf("session dropped only after %v: the hold time, not BFD", took)
	}
	if a.BFDUp("r1") {
		t.Error("herald reports BFD up after the router's BFD stopped")
	}

	// BGP comes back (the router is alive); BFD off removes the session
	// quietly, and the BGP session stays.
	waitFor(t, "BGP up again", r.established)
	flops = r.neighbor().GetState().GetFlops()
	p.BFD = bgpplan.BFD{}
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	time.Sleep(time.Second)
	if f := r.neighbor().GetState().GetFlops(); f != flops || !r.established() {
		t.Errorf("turning BFD off reset the BGP session (flops %d -> %d, established %v)", flops, f, r.established())
	}
}
