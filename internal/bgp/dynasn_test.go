package bgp

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/heraldlb/herald/internal/bgpplan"
)

// refusals records OnPeerRefused calls.
type refusals struct {
	mu  sync.Mutex
	log []string
}

func (r *refusals) record(peer, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, peer+": "+reason)
}

func (r *refusals) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// ribWatch watches a router until stopped: GoBGP's events say whether
// its session with herald was ever Established and whether any path ever
// reached its table, and a poll of its table every millisecond checks
// the latter again, so that a route that came and went between two checks
// of a test is still seen.
type ribWatch struct {
	maxRoutes   atomic.Int64
	established atomic.Bool
	cancel      context.CancelFunc
	stop        chan struct{}
	done        chan struct{}
}

func watchRIB(t testing.TB, r *router) *ribWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &ribWatch{cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	err := r.srv.WatchEvent(ctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}}},
	}, func(ev *api.WatchEventResponse) {
		if pe := ev.GetPeer(); pe != nil && pe.GetPeer().GetState().GetSessionState() == api.PeerState_ESTABLISHED {
			w.established.Store(true)
		}
		for _, p := range ev.GetTable().GetPaths() {
			if !p.GetIsWithdraw() && w.maxRoutes.Load() == 0 {
				w.maxRoutes.Store(1)
			}
		}
	})
	if err != nil {
		t.Fatalf("watching router %s: %v", r.addr, err)
	}
	go func() {
		defer close(w.done)
		for {
			if n := int64(r.count(false) + r.count(true)); n > w.maxRoutes.Load() {
				w.maxRoutes.Store(n)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	t.Cleanup(w.Stop)
	return w
}

// Stop ends the watch; later calls do nothing.
func (w *ribWatch) Stop() {
	w.cancel()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// dynamicPeer is herald's dynamicASN Peer for r.
func dynamicPeer(r *router, name string, myASN uint32, kind bgpplan.DynamicASN) Peer {
	p := r.peer(name, myASN)
	p.PeerASN, p.DynamicASN = 0, kind
	return p
}

// TestDynamicASN: a dynamicASN peer gets routes from a router of the
// kind it asks for, and none, ever, from one of the other kind, whose
// session is shut and reported.
func TestDynamicASN(t *testing.T) {
	const myASN = 64500
	for _, tc := range []struct {
		name      string
		kind      bgpplan.DynamicASN
		routerASN uint32
		accept    bool
	}{
		{"internal accepted", bgpplan.DynamicInternal, myASN, true},
		{"external accepted", bgpplan.DynamicExternal, 64501, true},
		{"internal refuses an external router", bgpplan.DynamicInternal, 64501, false},
		{"external refuses an internal router", bgpplan.DynamicExternal, myASN, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(t, "127.0.0.1", tc.routerASN, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
			w := watchRIB(t, r)
			var ev events
			var ref refusals
			a := startHerald(t, Config{NextHopV4: nhV4, NextHopV6: nhV6, OnSessionChange: ev.record, OnPeerRefused: ref.record})
			ctx := context.Background()
			paths := []Path{
				{Prefix: netip.MustParsePrefix("198.51.100.10/32")},
				{Prefix: netip.MustParsePrefix("2001:db8::10/128")},
			}
			if err := a.SetPaths(ctx, paths); err != nil {
				t.Fatalf("SetPaths: %v", err)
			}
			if err := a.SetPeers(ctx, netip.Addr{}, []Peer{dynamicPeer(r, "r1", myASN, tc.kind)}); err != nil {
				t.Fatalf("SetPeers: %v", err)
			}
			if tc.accept {
				waitFor(t, "both routes at the router", func() bool { return r.count(false) == 1 && r.count(true) == 1 })
				if s := a.Sessions()["r1"]; !s.Up || s.Advertised != 2 || s.Refused != "" {
					t.Errorf("Sessions()[r1] = %+v, want up with 2 advertised", s)
				}
				if got := ref.get(); len(got) != 0 {
					t.Errorf("refusals %q, want none", got)
				}
				return
			}
			waitFor(t, "the refusal", func() bool { return len(ref.get()) > 0 })
			waitFor(t, "the router's session shut", func() bool { return !r.established() })
			// Routes that slipped through would be in flight now: give
			// them time to land before the verdict.
			time.Sleep(500 * time.Millisecond)
			w.Stop()
			if !w.established.Load() {
				t.Fatalf("the router never saw the session Established: the test proves nothing")
			}
			if n := w.maxRoutes.Load(); n != 0 {
				t.Errorf("the router held %d routes at some point, want none", n)
			}
			got := ref.get()
			if len(got) != 1 || !strings.Contains(got[0], "r1: router 127.0.0.1 is in AS") || !strings.Contains(got[0], "dynamicASN is "+string(tc.kind)) {
				t.Errorf("refusals = %q, want one naming the router's AS and dynamicASN %s", got, tc.kind)
			}
			if s := a.Sessions()["r1"]; s.Up || s.Refused == "" {
				t.Errorf("Sessions()[r1] = %+v, want down and refused", s)
			}
			if got := ev.get(); len(got) != 0 {
				t.Errorf("OnSessionChange calls %q, want none: the session never counted as up", got)
			}
			// It stays shut: herald does not dial again by itself.
			time.Sleep(8 * time.Second)
			if r.established() || len(ref.get()) != 1 {
				t.Errorf("a refused router got another session (established %v, refusals %q)", r.established(), ref.get())
			}
		})
	}
}

// TestDynamicASNRegated: a session that drops closes the gate again, so
// that the router that answers next at the same address is checked
// afresh; a refused peer is retried when its spec changes.
func TestDynamicASNRegated(t *testing.T) {
	const myASN = 64500
	r := newRouter(t, "127.0.0.1", 64501, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	var ref refusals
	a := startHerald(t, Config{NextHopV4: nhV4, OnPeerRefused: ref.record})
	ctx := context.Background()
	if err := a.SetPaths(ctx, []Path{{Prefix: netip.MustParsePrefix("198.51.100.10/32")}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	p := dynamicPeer(r, "r1", myASN, bgpplan.DynamicExternal)
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "the route at the external router", func() bool { return r.count(false) == 1 })

	// The router is replaced by an internal one behind the same address
	// and port: herald must refuse it.
	r.Stop()
	waitFor(t, "session down", func() bool { return !sessionUp(a, "r1") })
	wrong := newRouterAt(t, "127.0.0.1", r.port, myASN, "10.255.0.2", routerNeighbor{addr: heraldAddr, asn: myASN})
	w := watchRIB(t, wrong)
	waitFor(t, "the refusal of the internal router", func() bool { return len(ref.get()) == 1 })
	waitFor(t, "its session shut", func() bool { return !wrong.established() })
	time.Sleep(500 * time.Millisecond)
	w.Stop()
	if !w.established.Load() {
		t.Fatalf("the internal router never saw the session Established: the test proves nothing")
	}
	if n := w.maxRoutes.Load(); n != 0 {
		t.Errorf("the internal router held %d routes at some point, want none", n)
	}

	// A changed spec (another port, an external router there) retries.
	wrong.Stop()
	right := newRouter(t, "127.0.0.1", 64502, "10.255.0.3", routerNeighbor{addr: heraldAddr, asn: myASN})
	p.Port = right.port
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "the route at the new external router", func() bool { return right.count(false) == 1 })
	if s := a.Sessions()["r1"]; !s.Up || s.Refused != "" {
		t.Errorf("Sessions()[r1] = %+v, want up and no longer refused", s)
	}
}
