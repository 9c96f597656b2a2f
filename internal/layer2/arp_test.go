package layer2

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"go.uber.org/goleak"
)

func TestARPAnswersOnlyOwnedAddresses(t *testing.T) {
	e := newTestEnv()
	r, c := e.arp(t)
	r.setAddrs(addrs(vip4))

	tests := []struct {
		name   string
		frame  []byte
		answer bool
	}{
		{"broadcast request for owned address", arpFrame(t, ethernet.Broadcast, arp.OperationRequest, clientMAC, clientIP4, zeroMAC, vip4), true},
		{"request to our MAC (our own unicast probe)", arpFrame(t, ourMAC, arp.OperationRequest, clientMAC, clientIP4, ourMAC, vip4), true},
		{"unicast probe to another MAC", arpFrame(t, otherMAC, arp.OperationRequest, clientMAC, clientIP4, otherMAC, vip4), false},
		{"request for an address we do not own", arpFrame(t, ethernet.Broadcast, arp.OperationRequest, clientMAC, clientIP4, zeroMAC, vip4b), false},
		{"reply for an owned address is not a question", arpFrame(t, ourMAC, arp.OperationReply, clientMAC, clientIP4, ourMAC, vip4), false},
		{"our own looped-back request", arpFrame(t, ethernet.Broadcast, arp.OperationRequest, ourMAC, clientIP4, zeroMAC, vip4), false},
		{"truncated frame", arpFrame(t, ethernet.Broadcast, arp.OperationRequest, clientMAC, clientIP4, zeroMAC, vip4)[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(c.written())
			r.handle(tt.frame)
			got := c.written()[before:]
			if !tt.answer {
				if len(got) != 0 {
					t.Fatalf("answered: %+v", decodeARP(t, got[0]))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("wrote %d frames, want 1 reply", len(got))
			}
			want := sentARP{
				EthDst: clientMAC, EthSrc: ourMAC, Op: arp.OperationReply,
				SHA: ourMAC, SPA: vip4, THA: clientMAC, TPA: clientIP4,
			}
			if diff := cmp.Diff(want, decodeARP(t, got[0]), cmpAddr); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
	if got := counter(t, e.m.requests, "eth0", "ipv4"); got != 2 {
		t.Errorf("requests metric = %v, want 2", got)
	}
	if got := counter(t, e.m.replies, "eth0", "ipv4"); got != 2 {
		t.Errorf("replies metric = %v, want 2", got)
	}
}

func TestARPServeReadsFromConn(t *testing.T) {
	e := newTestEnv()
	r, c := e.arp(t)
	r.setAddrs(addrs(vip4))
	base := len(c.written())
	c.in <- arpFrame(t, ethernet.Broadcast, arp.OperationRequest, clientMAC, clientIP4, zeroMAC, vip4)
	eventually(t, "reply", func() bool { return len(c.written()) == base+1 })
}

func TestARPGratuitousSchedule(t *testing.T) {
	e := newTestEnv()
	e.count = 3
	r, c := e.arp(t)
	r.setAddrs(addrs(vip4))

	wantRound := []sentARP{
		{EthDst: ethernet.Broadcast, EthSrc: ourMAC, Op: arp.OperationRequest, SHA: ourMAC, SPA: vip4, THA: zeroMAC, TPA: vip4},
		{EthDst: ethernet.Broadcast, EthSrc: ourMAC, Op: arp.OperationReply, SHA: ourMAC, SPA: vip4, THA: ourMAC, TPA: vip4},
	}
	check := func(round int) {
		t.Helper()
		eventually(t, "gratuitous round", func() bool { return len(c.written()) >= 2*round })
		got := c.written()
		if len(got) != 2*round {
			t.Fatalf("after round %d: %d frames, want %d", round, len(got), 2*round)
		}
		for i, f := range got[2*(round-1):] {
			if diff := cmp.Diff(wantRound[i], decodeARP(t, f), cmpAddr); diff != "" {
				t.Errorf("round %d frame %d (-want +got):\n%s", round, i, diff)
			}
		}
	}
	// The first round goes out before setAddrs returns, without the clock.
	if got := len(c.written()); got != 2 {
		t.Fatalf("immediately after setAddrs: %d frames, want 2", got)
	}
	check(1)
	e.step(t, 1, e.interval-1)
	e.settle(t, r.ownerSet)
	if got := len(c.written()); got != 2 {
		t.Fatalf("before the interval elapsed: %d frames, want 2", got)
	}
	e.clk.Step(1)
	check(2)
	e.step(t, 1, e.interval)
	check(3)
	// GratuitousCount rounds in all: nothing more.
	e.clk.Step(10 * e.interval)
	e.settle(t, r.ownerSet)
	if got := len(c.written()); got != 6 {
		t.Fatalf("after the burst: %d frames, want 6", got)
	}
	if e.clk.HasWaiters() {
		t.Error("a timer is still pending after the burst")
	}
	if got := counter(t, e.m.gratuitous, "eth0", "ipv4"); got != 6 {
		t.Errorf("gratuitous metric = %v, want 6", got)
	}
	// Setting the same addresses again is not a takeover.
	r.setAddrs(addrs(vip4))
	if got := len(c.written()); got != 6 {
		t.Errorf("re-setting the same address sent %d more frames", got-6)
	}
	// reannounce starts a whole burst again; an address not owned is
	// ignored.
	r.reannounce([]netip.Addr{vip4, netip.MustParseAddr("198.51.100.99")})
	if got := len(c.written()); got != 8 {
		t.Fatalf("immediately after reannounce: %d frames, want 8", got)
	}
	for range e.count - 1 {
		e.step(t, 1, e.interval)
	}
	e.settle(t, r.ownerSet)
	if got := len(c.written()); got != 8+2*(e.count-1) {
		t.Fatalf("after the second burst: %d frames, want %d", got, 8+2*(e.count-1))
	}
}

// TestResponderCloseEndsGoroutines: close ends the reader, the bursts and
// pending conflict confirmations.
func TestResponderCloseEndsGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newTestEnv()
	e.count = 5
	ar := newARPResponder(e.cfg(famIPv4), ourMAC, newFakePacketConn())
	nr := newNDPResponder(e.cfg(famIPv6), ourMAC, newFakeNDPConn())
	ar.setAddrs(addrs(vip4))
	nr.setAddrs(addrs(vip6))
	e.clk.Step(e.grace)
	ar.handle(arpFrame(t, ethernet.Broadcast, arp.OperationReply, otherMAC, vip4, otherMAC, vip4))
	nr.handle(na(vip6, otherMAC, false), clientIP6)
	eventually(t, "bursts and confirmations waiting", func() bool { return e.clk.Waiters() == 4 })
	ar.close()
	nr.close()
}

func TestARPRemovalStopsAnsweringAndBurst(t *testing.T) {
	e := newTestEnv()
	e.count = 5
	r, c := e.arp(t)
	r.setAddrs(addrs(vip4, vip4b))
	eventually(t, "burst timers", func() bool { return e.clk.Waiters() == 2 })
	r.setAddrs(addrs(vip4b))
	n := len(c.written())
	r.handle(arpFrame(t, ethernet.Broadcast, arp.OperationRequest, clientMAC, clientIP4, zeroMAC, vip4))
	if got := len(c.written()); got != n {
		t.Fatalf("answered for a removed address")
	}
	e.step(t, 1, e.interval)
	eventually(t, "vip4b round", func() bool { return len(c.written()) == n+2 })
	e.settle(t, r.ownerSet)
	for _, f := range c.written()[n:] {
		if got := decodeARP(t, f).SPA; got != vip4b {
			t.Errorf("gratuitous for %v after its removal", got)
		}
	}
	r.setAddrs(nil)
	n = len(c.written())
	e.clk.Step(10 * e.interval)
	e.settle(t, r.ownerSet)
	if got := len(c.written()); got != n {
		t.Errorf("burst continued after removal: %d frames", got-n)
	}
}

func TestARPConflict(t *testing.T) {
	claim := func(t *testing.T, r *arpResponder, op arp.Operation) {
		t.Helper()
		tha := otherMAC
		if op == arp.OperationRequest {
			tha = zeroMAC
		}
		r.handle(arpFrame(t, ethernet.Broadcast, op, otherMAC, vip4, tha, vip4))
	}

	t.Run("ignored during grace after takeover", func(t *testing.T) {
		e := newTestEnv()
		r, _ := e.arp(t)
		r.setAddrs(addrs(vip4))
		e.clk.Step(e.grace - 1)
		claim(t, r, arp.OperationReply)
		e.clk.Step(10 * e.grace)
		e.settle(t, r.ownerSet)
		if got := e.conflicts.get(); len(got) != 0 {
			t.Errorf("conflict reported during grace: %v", got)
		}
		if got := counter(t, e.m.conflicts, "eth0", "ipv4"); got != 0 {
			t.Errorf("conflicts metric = %v, want 0", got)
		}
	})

	t.Run("reported once per episode after grace", func(t *testing.T) {
		e := newTestEnv()
		e.count = 1
		r, _ := e.arp(t)
		r.setAddrs(addrs(vip4))
		e.clk.Step(e.grace)
		claim(t, r, arp.OperationRequest)
		claim(t, r, arp.OperationReply)
		if got := e.conflicts.get(); len(got) != 0 {
			t.Fatalf("reported before confirmation: %v", got)
		}
		e.step(t, 1, e.grace)
		eventually(t, "conflict report", func() bool { return len(e.conflicts.get()) == 1 })
		if diff := cmp.Diff([]string{"198.51.100.200 eth0 " + otherMAC.String()}, e.conflicts.get()); diff != "" {
			t.Errorf("OnConflict calls (-want +got):\n%s", diff)
		}
		// More answers within the episode (less than conflictQuiet after the
		// last one): counted, not reported again.
		e.clk.Step(conflictQuiet - e.grace)
		claim(t, r, arp.OperationReply)
		e.settle(t, r.ownerSet)
		if got := len(e.conflicts.get()); got != 1 {
			t.Errorf("OnConflict called %d times in one episode", got)
		}
		if got := counter(t, e.m.conflicts, "eth0", "ipv4"); got != 3 {
			t.Errorf("conflicts metric = %v, want 3", got)
		}
		// Quiet for longer than conflictQuiet: the next answer is a new episode.
		e.clk.Step(conflictQuiet + 1)
		claim(t, r, arp.OperationReply)
		e.step(t, 1, e.grace)
		eventually(t, "second episode", func() bool { return len(e.conflicts.get()) == 2 })
	})

	t.Run("old owner that lets go within grace does not report", func(t *testing.T) {
		// Graceful handover: the new owner's gratuitous burst reaches the old
		// owner, which is told to stop a moment later.
		e := newTestEnv()
		e.count = 1
		r, _ := e.arp(t)
		r.setAddrs(addrs(vip4))
		e.clk.Step(e.grace * 10)
		claim(t, r, arp.OperationRequest)
		eventually(t, "confirmation timer", func() bool { return e.clk.Waiters() == 1 })
		r.setAddrs(nil)
		e.clk.Step(e.grace)
		e.settle(t, r.ownerSet)
		if got := e.conflicts.get(); len(got) != 0 {
			t.Errorf("conflict reported by an owner that let go: %v", got)
		}
	})

	t.Run("own and unowned addresses are not conflicts", func(t *testing.T) {
		e := newTestEnv()
		e.count = 1
		r, c := e.arp(t)
		r.setAddrs(addrs(vip4))
		e.clk.Step(e.grace)
		r.handle(arpFrame(t, ethernet.Broadcast, arp.OperationReply, otherMAC, vip4b, otherMAC, vip4b))
		n := len(c.written())
		r.announce(vip4) // our own gratuitous, looped back
		for _, f := range c.written()[n:] {
			r.handle(f)
		}
		e.settle(t, r.ownerSet)
		if e.clk.HasWaiters() || len(e.conflicts.get()) != 0 {
			t.Errorf("a conflict was started")
		}
	})
}

// TestARPWithMdlayherClient checks that frames written by the responder are
// understood by mdlayher/arp's own Client (arp.New over a fake conn on the
// loopback interface, which has IPv4).
func TestARPWithMdlayherClient(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	e := newTestEnv()
	r, c := e.arp(t)
	r.setAddrs(addrs(vip4))

	feed := newFakePacketConn()
	cl, err := arp.New(lo, feed)
	if err != nil {
		t.Fatalf("arp.New: %v", err)
	}
	defer func() { _ = cl.Close() }()
	for _, f := range c.written() {
		feed.in <- f
	}
	for range 2 {
		p, _, err := cl.Read()
		if err != nil {
			t.Fatal(err)
		}
		if p.SenderIP != vip4 || p.TargetIP != vip4 || p.SenderHardwareAddr.String() != ourMAC.String() {
			t.Errorf("gratuitous packet %+v", p)
		}
	}
}
