package bgp

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// timers reads the negotiated hold time and keepalive interval of a
// GoBGP server's only established neighbour.
func timers(t testing.TB, srv interface {
	ListPeer(context.Context, *api.ListPeerRequest, func(*api.Peer)) error
}) (hold, keepalive uint64) {
	t.Helper()
	if err := srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
			hold = p.GetTimers().GetState().GetNegotiatedHoldTime()
			keepalive = p.GetTimers().GetState().GetKeepaliveInterval()
		}
	}); err != nil {
		t.Fatalf("listing peers: %v", err)
	}
	return hold, keepalive
}

// TestKeepaliveTimers: the hold time is the smaller of the two proposed,
// and keepalives go at most a third of it apart, whatever keepaliveTime
// says.
func TestKeepaliveTimers(t *testing.T) {
	const myASN = 64500
	for _, tc := range []struct {
		name                string
		hold, keepalive     time.Duration
		routerHold          uint64
		wantHold, wantKeepa uint64
	}{
		{"router's hold time shorter", 90 * time.Second, 20 * time.Second, 9, 9, 3},
		{"router's hold time shorter, keepalive unset", 90 * time.Second, 0, 10, 10, 3},
		{"keepaliveTime above a third of the hold time", 30 * time.Second, 20 * time.Second, 90, 30, 10},
		{"keepaliveTime kept", 30 * time.Second, 4 * time.Second, 90, 30, 4},
		{"defaults", 0, 0, 0, 90, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(t, "127.0.0.1", 64501, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN, holdTime: tc.routerHold})
			a := startHerald(t, Config{NextHopV4: nhV4})
			p := r.peer("r1", myASN)
			p.HoldTime, p.KeepaliveTime = tc.hold, tc.keepalive
			if tc.hold == 0 {
				p.HoldTime = 90 * time.Second // what the plan's default gives
			}
			if err := a.SetPeers(context.Background(), netip.Addr{}, []Peer{p}); err != nil {
				t.Fatalf("SetPeers: %v", err)
			}
			waitFor(t, "session up", func() bool { return sessionUp(a, "r1") && r.established() })
			hold, ka := timers(t, a.srv)
			if hold != tc.wantHold || ka != tc.wantKeepa {
				t.Errorf("herald: negotiated hold time %ds, keepalive %ds; want %ds, %ds", hold, ka, tc.wantHold, tc.wantKeepa)
			}
			if rh, _ := timers(t, r.srv); rh != tc.wantHold {
				t.Errorf("router: negotiated hold time %ds, want %ds", rh, tc.wantHold)
			}
		})
	}
}

// fakeRouter is a minimal BGP speaker: it accepts one session, answers
// the OPEN with its own (hold time holdTime) and records the type and
// arrival time of every message herald sends after that.
type fakeRouter struct {
	port uint16
	mu   sync.Mutex
	msgs []fakeMsg
	open *bgp.BGPOpen // herald's OPEN
}

type fakeMsg struct {
	typ uint8
	at  time.Time
}

func newFakeRouter(t *testing.T, asn uint32, holdTime uint16) *fakeRouter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRouter{port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	var wg sync.WaitGroup
	conns := make(chan net.Conn, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conns <- c
		open := bgp.NewBGPOpenMessage(23456, holdTime, "10.255.0.9", []bgp.OptionParameterInterface{
			bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
				bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapFourOctetASNumber(asn),
			}),
		})
		for _, m := range []*bgp.BGPMessage{open, bgp.NewBGPKeepAliveMessage()} {
			b, _ := m.Serialize()
			if _, err := c.Write(b); err != nil {
				return
			}
		}
		for {
			hdr := make([]byte, bgp.BGP_HEADER_LENGTH)
			if _, err := io.ReadFull(c, hdr); err != nil {
				return
			}
			body := make([]byte, int(binary.BigEndian.Uint16(hdr[16:18]))-bgp.BGP_HEADER_LENGTH)
			if _, err := io.ReadFull(c, body); err != nil {
				return
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, fakeMsg{typ: hdr[18], at: time.Now()})
			if hdr[18] == bgp.BGP_MSG_OPEN {
				if m, err := bgp.ParseBGPMessage(append(hdr, body...)); err == nil {
					f.open = m.Body.(*bgp.BGPOpen)
				}
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		select {
		case c := <-conns:
			_ = c.Close()
		default:
		}
		wg.Wait()
	})
	return f
}

func (f *fakeRouter) count(typ uint8, after time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.msgs {
		if m.typ == typ && m.at.After(after) {
			n++
		}
	}
	return n
}

// TestZeroHoldTimeLimits pins two limits of GoBGP v3 that no
// configuration works around, so that an upgrade that lifts them shows:
// it proposes 90 s when configured with a hold time of 0, and a session
// whose negotiated hold time is 0 (the router proposed 0) fails at its
// first write, because GoBGP sets each write's deadline to now plus the
// negotiated hold time (fsm.go, sendMessageloop).
func TestZeroHoldTimeLimits(t *testing.T) {
	const myASN, routerASN = 64500, 64501
	f := newFakeRouter(t, routerASN, 0)
	var ev events
	a := startHerald(t, Config{NextHopV4: nhV4, OnSessionChange: ev.record})
	p := Peer{Name: "r1", MyASN: myASN, PeerASN: routerASN, Address: netip.MustParseAddr("127.0.0.1"), Port: f.port,
		SourceAddress: netip.MustParseAddr(heraldAddr), ConnectTime: time.Second, HoldTime: 0}
	if err := a.SetPaths(context.Background(), []Path{{Prefix: netip.MustParsePrefix("198.51.100.10/32")}}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPeers(context.Background(), netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "the session up and down again", func() bool { return len(ev.get()) >= 2 })
	f.mu.Lock()
	open := f.open
	f.mu.Unlock()
	if open == nil || open.HoldTime != 90 {
		t.Errorf("herald's OPEN = %+v, want GoBGP's hold time of 90 s for a configured 0", open)
	}
	if got := ev.get()[:2]; got[0] != "r1=true" || got[1] != "r1=false" {
		t.Errorf("session changes %q, want up then down (the first write failing)", got)
	}
	if n := f.count(bgp.BGP_MSG_UPDATE, time.Time{}); n != 0 {
		t.Errorf("the router received %d UPDATEs: GoBGP's zero hold time writes work now; revisit docs/layer2-vs-bgp.md", n)
	}
}
