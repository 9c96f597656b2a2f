package layer2

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

// fakeResponder records the addresses it is told to answer for.
type fakeResponder struct {
	mu     sync.Mutex
	addrs  []netip.Addr
	closed bool
}

func (r *fakeResponder) setAddrs(want map[netip.Addr]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = r.addrs[:0]
	for a := range want {
		r.addrs = append(r.addrs, a)
	}
	slices.SortFunc(r.addrs, netip.Addr.Compare)
}

func (r *fakeResponder) reannounce([]netip.Addr) {}

func (r *fakeResponder) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

// fakeOpener opens fakeResponders, failing for interfaces in fail.
type fakeOpener struct {
	index map[string]int
	mac   map[string]string
	fail  map[respKey]error
	open  map[respKey]*fakeResponder
	count int
}

func (o *fakeOpener) openFn(name string, fam family) (responder, linkID, error) {
	k := respKey{name, fam}
	if err := o.fail[k]; err != nil {
		return nil, linkID{}, err
	}
	r := &fakeResponder{}
	o.open[k] = r
	o.count++
	return r, linkID{index: o.index[name], mac: o.mac[name]}, nil
}

func TestAnnouncerReconcile(t *testing.T) {
	pfx := netip.MustParsePrefix
	stateWith := func(eth1Up bool, eth1Index int) *netState {
		return &netState{Links: []link{
			{Index: 2, Name: "eth0", Up: true, Prefixes: []netip.Prefix{pfx("198.51.100.10/24"), pfx("2001:db8:100::10/64")}},
			{Index: eth1Index, Name: "eth1", Up: eth1Up, Prefixes: []netip.Prefix{pfx("203.0.113.10/24")}},
		}}
	}
	op := &fakeOpener{index: map[string]int{"eth0": 2, "eth1": 3}, mac: map[string]string{}, fail: map[respKey]error{}, open: map[respKey]*fakeResponder{}}
	var changes atomic.Int32
	a := New(Config{OnChange: func() { changes.Add(1) }})
	a.open = op.openFn
	ctx := context.Background()
	targets := []Target{
		{Addr: vip4, Service: "ns/a"},
		{Addr: vip6, Service: "ns/a"},
		{Addr: netip.MustParseAddr("203.0.113.50"), Service: "ns/b"},
		{Addr: netip.MustParseAddr("203.0.113.51"), Interfaces: []string{"eth0", "eth1"}, Service: "ns/c"},
	}

	// Before Run has read the links, Set only records.
	if err := a.Set(ctx, targets); err != nil {
		t.Fatalf("Set before state: %v", err)
	}
	if got := a.Interfaces(); len(got) != 0 {
		t.Fatalf("announced before state: %v", got)
	}

	a.applyState(stateWith(true, 3))
	if got := changes.Load(); got != 1 {
		t.Errorf("OnChange called %d times after the first snapshot, want 1", got)
	}
	a.applyState(stateWith(true, 3))
	if got := changes.Load(); got != 1 {
		t.Errorf("OnChange called without a change (%d calls)", got)
	}
	want := map[netip.Addr][]string{
		vip4:                                {"eth0"},
		vip6:                                {"eth0"},
		netip.MustParseAddr("203.0.113.50"): {"eth1"},
		netip.MustParseAddr("203.0.113.51"): {"eth0", "eth1"},
	}
	if diff := cmp.Diff(want, a.Interfaces(), cmpAddr); diff != "" {
		t.Errorf("Interfaces (-want +got):\n%s", diff)
	}
	eth0v4 := op.open[respKey{"eth0", famIPv4}]
	if diff := cmp.Diff([]netip.Addr{vip4, netip.MustParseAddr("203.0.113.51")}, eth0v4.addrs, cmpAddr); diff != "" {
		t.Errorf("eth0 ARP addresses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Addr{vip6}, op.open[respKey{"eth0", famIPv6}].addrs, cmpAddr); diff != "" {
		t.Errorf("eth0 NDP addresses (-want +got):\n%s", diff)
	}

	// eth1 goes down: its addresses move or disappear, its responder closes.
	eth1 := op.open[respKey{"eth1", famIPv4}]
	a.applyState(stateWith(false, 3))
	if !eth1.closed {
		t.Error("responder on a down link left open")
	}
	if got := changes.Load(); got != 2 {
		t.Errorf("OnChange calls after eth1 went down: %d, want 2", got)
	}
	want = map[netip.Addr][]string{
		vip4:                                {"eth0"},
		vip6:                                {"eth0"},
		netip.MustParseAddr("203.0.113.51"): {"eth0"},
	}
	if diff := cmp.Diff(want, a.Interfaces(), cmpAddr); diff != "" {
		t.Errorf("Interfaces after eth1 down (-want +got):\n%s", diff)
	}
	err := a.Set(ctx, targets)
	if !errors.Is(err, ErrNoInterface) {
		t.Errorf("Set with an address that has no interface: %v, want ErrNoInterface", err)
	}
	// The failure names its address, so only that Service is told.
	var failed []netip.Addr
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ae *AddrError
		if errors.As(e, &ae) {
			failed = append(failed, ae.FailedAddr())
		}
	}
	if want := []netip.Addr{netip.MustParseAddr("203.0.113.50")}; !slices.Equal(failed, want) {
		t.Errorf("addresses Set failed for: %v, want %v", failed, want)
	}

	// eth1 recreated with a new index: a fresh responder.
	a.applyState(stateWith(true, 3))
	old := op.open[respKey{"eth1", famIPv4}]
	op.index["eth1"] = 30
	a.applyState(stateWith(true, 30))
	if !old.closed || op.open[respKey{"eth1", famIPv4}] == old {
		t.Error("responder of a recreated link not replaced")
	}

	// eth1 changes its MAC: a fresh responder announces the new one, once.
	old = op.open[respKey{"eth1", famIPv4}]
	st := stateWith(true, 30)
	st.Links[1].MAC = "02:00:00:00:00:99"
	op.mac["eth1"] = "02:00:00:00:00:99"
	a.applyState(st)
	if !old.closed || op.open[respKey{"eth1", famIPv4}] == old {
		t.Error("responder of a link with a new MAC not replaced")
	}
	n := op.count
	a.applyState(st)
	if op.count != n {
		t.Error("responder reopened without a change")
	}

	// A socket that cannot be opened: reported, retried, not announced there.
	a.applyState(&netState{}) // every link gone: every responder closes
	if got := len(a.responders); got != 0 {
		t.Fatalf("%d responders left with no links", got)
	}
	op.fail[respKey{"eth0", famIPv6}] = errors.New("no link-local address")
	a.applyState(&netState{Links: []link{{Index: 2, Name: "eth0", Up: true, Prefixes: []netip.Prefix{pfx("2001:db8:100::10/64")}}}})
	err = a.Set(ctx, []Target{{Addr: vip6}})
	if err == nil {
		t.Error("Set: no error for a responder that failed to open")
	}
	if got := a.Interfaces(); len(got) != 0 {
		t.Errorf("announced on a failed responder: %v", got)
	}
	delete(op.fail, respKey{"eth0", famIPv6})
	a.retry()
	if diff := cmp.Diff(map[netip.Addr][]string{vip6: {"eth0"}}, a.Interfaces(), cmpAddr); diff != "" {
		t.Errorf("after retry (-want +got):\n%s", diff)
	}

	// Removing everything closes everything.
	if err := a.Set(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for k, r := range op.open {
		if _, live := a.responders[k]; live || !r.closed {
			t.Errorf("responder %v not closed", k)
		}
	}

	if err := a.Set(ctx, []Target{{Addr: netip.MustParseAddr("ff02::1")}, {}}); err == nil {
		t.Error("Set accepted a multicast and an invalid address")
	}
}

// TestRunEndsWithContext runs the real netlink watch (no root needed: link
// notifications are readable by anyone) with no targets, and checks that
// every goroutine it started ends with ctx.
func TestRunEndsWithContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	eventually(t, "first link snapshot", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.state != nil
	})
	if err := a.Run(ctx); err == nil {
		t.Error("a second concurrent Run did not fail")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
}
