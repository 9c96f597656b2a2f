package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// dialLog records when GoBGP tries to connect (its debug message).
type dialLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (d *dialLog) Enabled(context.Context, slog.Level) bool { return true }
func (d *dialLog) WithAttrs([]slog.Attr) slog.Handler       { return d }
func (d *dialLog) WithGroup(string) slog.Handler            { return d }
func (d *dialLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "try to connect" {
		d.mu.Lock()
		d.times = append(d.times, r.Time)
		d.mu.Unlock()
	}
	return nil
}

func (d *dialLog) since(t time.Time) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []time.Time
	for _, x := range d.times {
		if x.After(t) {
			out = append(out, x)
		}
	}
	return out
}

// TestConnectRetry: connectTime paces the dials to a router that refuses
// them, on the first connection and after a session drop alike: each
// retry comes connectTime to twice connectTime after the previous one
// (GoBGP's jitter), and after a drop the first dial comes after GoBGP's
// fixed 5 s idle plus 1-2 s.
func TestConnectRetry(t *testing.T) {
	const myASN, routerASN = 64500, 64501
	const connect = 2 * time.Second
	const slack = 300 * time.Millisecond
	var dials dialLog
	a := startHerald(t, Config{NextHopV4: nhV4, Log: slog.New(&dials)})
	port := freePort(t, "127.0.0.1") // nothing listens: each dial is refused
	p := Peer{Name: "r1", MyASN: myASN, PeerASN: routerASN, Address: netip.MustParseAddr("127.0.0.1"), Port: port,
		SourceAddress: netip.MustParseAddr(heraldAddr), ConnectTime: connect, HoldTime: 90 * time.Second}
	checkRetries := func(what string, ts []time.Time) {
		t.Helper()
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d < connect-slack || d > 2*connect+slack {
				t.Errorf("%s: dial %d came %v after the previous one, want %v to %v", what, i, d, connect, 2*connect)
			}
		}
	}

	start := time.Now()
	if err := a.SetPeers(context.Background(), netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "three refused dials", func() bool { return len(dials.since(start)) >= 3 })
	first := dials.since(start)
	if d := first[0].Sub(start); d > 2*time.Second+slack {
		t.Errorf("first dial %v after the peer was added, want within 2 s", d)
	}
	checkRetries("first connection", first)

	r := newRouterAt(t, "127.0.0.1", port, routerASN, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	waitFor(t, "session up", func() bool { return sessionUp(a, "r1") })
	r.Stop()
	waitFor(t, "session down", func() bool { return !sessionUp(a, "r1") })
	down := time.Now()
	waitFor(t, "three refused dials after the drop", func() bool { return len(dials.since(down)) >= 3 })
	after := dials.since(down)
	if d := after[0].Sub(down); d < 5*time.Second-slack || d > 7*time.Second+slack {
		t.Errorf("first dial %v after the drop, want GoBGP's 5 s idle plus 1-2 s", d)
	}
	checkRetries("after the drop", after)

	newRouterAt(t, "127.0.0.1", port, routerASN, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	back := time.Now()
	waitFor(t, "session up again", func() bool { return sessionUp(a, "r1") })
	if d := time.Since(back); d > 2*connect+slack {
		t.Errorf("session back %v after the router, want within 2×connectTime", d)
	}
}
