package cpvip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/membership"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var vip = netip.MustParseAddr("198.51.100.100")

// waitTimeout only keeps a broken test from hanging: the nodes converge in
// well under a second on loopback.
const waitTimeout = 20 * time.Second

// fakeAnnouncer records Hold; it stands for the netlink and raw-socket
// announcer, which the lab scenario drives for real.
type fakeAnnouncer struct {
	failRelease atomic.Int64 // so many Hold(false) calls fail
	everHeld    atomic.Bool
	held        atomic.Bool
	calls       atomic.Int64
	fail        atomic.Bool
	reannounced atomic.Int64
}

func (a *fakeAnnouncer) Reannounce() { a.reannounced.Add(1) }

func (a *fakeAnnouncer) Hold(_ context.Context, hold bool) error {
	a.calls.Add(1)
	if hold && a.fail.Load() {
		return errors.New("announcing failed")
	}
	if !hold && a.failRelease.Load() > 0 {
		a.failRelease.Add(-1)
		return errors.New("withdrawing failed")
	}
	a.held.Store(hold)
	if hold {
		a.everHeld.Store(true)
	}
	return nil
}

// node is one control-plane node: a real memberlist member on loopback, a
// Keeper, and an API server whose readiness the test sets.
type node struct {
	name   string
	ready  atomic.Bool
	ann    *fakeAnnouncer
	ml     *membership.Cluster
	cancel context.CancelFunc
	done   chan error
}

func startNodes(t *testing.T, names ...string) map[string]*node {
	t.Helper()
	nodes := map[string]*node{}
	var addrs []netip.AddrPort
	for _, name := range names {
		ml, err := membership.Start(t.Context(), membership.Config{NodeName: name, BindAddr: netip.MustParseAddr("127.0.0.1"), Port: -1})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{name: name, ann: &fakeAnnouncer{}, ml: ml, done: make(chan error, 1)}
		nodes[name] = n
		addrs = append(addrs, ml.LocalAddr())
	}
	for _, n := range nodes {
		n.ml.SetPeers(addrs)
		n.start(t)
		t.Cleanup(func() { n.stop(t); _ = n.ml.Shutdown() })
	}
	return nodes
}

func (n *node) start(t *testing.T) {
	t.Helper()
	n.startSettle(t, 0)
}

func (n *node) startSettle(t *testing.T, settle time.Duration) {
	t.Helper()
	n.startWith(t, Config{AloneSettle: settle})
}

func (n *node) startWith(t *testing.T, cfg Config) {
	t.Helper()
	k, err := New(Config{
		AloneSettle: cfg.AloneSettle, EveryReady: cfg.EveryReady,
		Node: n.name, Key: vip, Membership: n.ml, Announcer: n.ann,
		Check: func(context.Context) error {
			if n.ready.Load() {
				return nil
			}
			return errors.New("not ready")
		},
		Interval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- k.Run(ctx) }()
}

func (n *node) stop(t *testing.T) {
	if n.cancel != nil {
		n.cancel()
		if err := <-n.done; err != nil {
			t.Errorf("%s: Run: %v", n.name, err)
		}
		n.cancel = nil
	}
}

func holders(nodes map[string]*node) []string {
	var out []string
	for name, n := range nodes {
		if n.ann.held.Load() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// waitHolders waits until exactly want hold the VIP, and still do 300 ms
// later (no flapping).
func waitHolders(t *testing.T, nodes map[string]*node, want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if got := holders(nodes); slices.Equal(got, want) {
			time.Sleep(300 * time.Millisecond)
			if got := holders(nodes); slices.Equal(got, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("holders = %v, want %v", holders(nodes), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKeeperElectsFailsOverAndStays(t *testing.T) {
	names := []string{"cp1", "cp2", "cp3"}
	nodes := startNodes(t, names...)
	top := election.Owner(names, vip)

	// No API server is ready: nobody announces.
	time.Sleep(200 * time.Millisecond)
	waitHolders(t, nodes)

	// Bootstrap: the first node whose API server is ready takes it,
	// whatever its rank.
	var first string
	for _, n := range names {
		if n != top {
			first = n
			break
		}
	}
	nodes[first].ready.Store(true)
	waitHolders(t, nodes, first)

	// The others become ready, the top-ranked among them: the VIP stays.
	for _, n := range names {
		nodes[n].ready.Store(true)
	}
	waitHolders(t, nodes, first)

	// The holder's API server fails: the VIP moves to the best of the
	// others and stays there when the first one comes back.
	nodes[first].ready.Store(false)
	var rest []string
	for _, n := range names {
		if n != first {
			rest = append(rest, n)
		}
	}
	next := election.Owner(rest, vip)
	waitHolders(t, nodes, next)
	nodes[first].ready.Store(true)
	waitHolders(t, nodes, next)

	// A graceful stop hands it over.
	nodes[next].stop(t)
	if nodes[next].ann.held.Load() {
		t.Error("a stopped keeper still holds the VIP")
	}
	var left []string
	for _, n := range names {
		if n != next {
			left = append(left, n)
		}
	}
	waitHolders(t, nodes, election.Owner(left, vip))

	// Every API server down, the holder's last: it keeps the VIP, as
	// nobody could take over. One of the others comes back: it takes the
	// VIP.
	last := holders(nodes)
	for _, n := range names {
		if !slices.Contains(last, n) {
			nodes[n].ready.Store(false)
		}
	}
	time.Sleep(300 * time.Millisecond) // their health reaches the holder
	for _, n := range last {
		nodes[n].ready.Store(false)
	}
	time.Sleep(300 * time.Millisecond)
	waitHolders(t, nodes, last...)
	var back string // not the holder, nor the stopped one
	for _, n := range left {
		if !slices.Contains(last, n) {
			back = n
		}
	}
	nodes[back].ready.Store(true)
	waitHolders(t, nodes, back)
}

// waitOneHolder waits until exactly one node holds the VIP, and returns it.
// Which one depends on whose health the others saw first when several
// became ready together; the rules after that do not.
func waitOneHolder(t *testing.T, nodes map[string]*node) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if h := holders(nodes); len(h) == 1 {
			waitHolders(t, nodes, h[0])
			return h[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("holders = %v, want exactly one", holders(nodes))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKeeperMemberDies(t *testing.T) {
	names := []string{"cp1", "cp2", "cp3"}
	nodes := startNodes(t, names...)
	for _, n := range nodes {
		n.ready.Store(true)
	}
	top := waitOneHolder(t, nodes)
	// The holder dies without a word (its link is cut): memberlist declares
	// it dead and the others elect.
	nodes[top].stop(t)
	if err := nodes[top].ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	delete(nodes, top)
	var rest []string
	for _, n := range names {
		if n != top {
			rest = append(rest, n)
		}
	}
	waitHolders(t, nodes, election.Owner(rest, vip))

	// A member appears (a cut link restored, a partition healed: here a
	// fresh member, as memberlist holds a dead member's name against
	// another address for a while): the holder announces the VIP again, in
	// case the other one moved clients to itself.
	holder := nodes[election.Owner(rest, vip)]
	before := holder.ann.reannounced.Load()
	var addrs []netip.AddrPort
	for _, n := range nodes {
		addrs = append(addrs, n.ml.LocalAddr())
	}
	back, err := membership.Start(t.Context(), membership.Config{NodeName: "cp4", BindAddr: netip.MustParseAddr("127.0.0.1"), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	back.SetPeers(addrs)
	t.Cleanup(func() { _ = back.Shutdown() })
	deadline := time.Now().Add(waitTimeout)
	for holder.ann.reannounced.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the holder did not announce the VIP again when a member came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKeeperReturningNodeWaits: a node that comes back alone (a restarted
// speaker, a link restored) with its API server ready does not take the
// VIP from the holder before memberlist has shown it the holder, even when
// it ranks first.
func TestKeeperReturningNodeWaits(t *testing.T) {
	names := []string{"cp1", "cp2", "cp3"}
	nodes := startNodes(t, names...)
	for _, n := range nodes {
		n.ready.Store(true)
	}
	top := waitOneHolder(t, nodes)
	// A node that ranks above the holder appears.
	var newcomer string
	for i := 0; ; i++ {
		newcomer = fmt.Sprintf("cp%d", 4+i)
		if election.Owner([]string{top, newcomer}, vip) == newcomer {
			break
		}
	}
	ml, err := membership.Start(t.Context(), membership.Config{NodeName: newcomer, BindAddr: netip.MustParseAddr("127.0.0.1"), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: newcomer, ann: &fakeAnnouncer{}, ml: ml}
	n.ready.Store(true)
	var addrs []netip.AddrPort
	for _, o := range nodes {
		addrs = append(addrs, o.ml.LocalAddr())
	}
	n.startSettle(t, 0)
	ml.SetPeers(addrs)
	t.Cleanup(func() { n.stop(t); _ = ml.Shutdown() })
	nodes[newcomer] = n
	time.Sleep(DefaultAloneSettle + time.Second)
	if n.ann.everHeld.Load() {
		t.Errorf("%s, back alone, took the VIP from %s", newcomer, top)
	}
	waitHolders(t, nodes, top)
}

// TestKeeperRetriesRelease: a withdrawal that failed is retried until it
// works; the VIP must not stay local beside the new holder's.
func TestKeeperRetriesRelease(t *testing.T) {
	nodes := startNodes(t, "cp1", "cp2")
	for _, n := range nodes {
		n.ready.Store(true)
	}
	h := waitOneHolder(t, nodes)
	nodes[h].ann.failRelease.Store(3)
	nodes[h].ready.Store(false)
	other := "cp1"
	if h == other {
		other = "cp2"
	}
	waitHolders(t, nodes, other)
	if n := nodes[h].ann.failRelease.Load(); n != 0 {
		t.Errorf("%d failing withdrawals left untried", n)
	}
}

// TestKeeperEveryReady: with BGP, every node whose API server is ready
// announces, and only those.
func TestKeeperEveryReady(t *testing.T) {
	names := []string{"cp1", "cp2", "cp3"}
	nodes := map[string]*node{}
	var addrs []netip.AddrPort
	for _, name := range names {
		ml, err := membership.Start(t.Context(), membership.Config{NodeName: name, BindAddr: netip.MustParseAddr("127.0.0.1"), Port: -1})
		if err != nil {
			t.Fatal(err)
		}
		nodes[name] = &node{name: name, ann: &fakeAnnouncer{}, ml: ml}
		addrs = append(addrs, ml.LocalAddr())
	}
	for _, n := range nodes {
		n.ml.SetPeers(addrs)
		n.startWith(t, Config{EveryReady: true})
		t.Cleanup(func() { n.stop(t); _ = n.ml.Shutdown() })
	}
	waitHolders(t, nodes)
	nodes["cp1"].ready.Store(true)
	nodes["cp3"].ready.Store(true)
	waitHolders(t, nodes, "cp1", "cp3")
	nodes["cp2"].ready.Store(true)
	nodes["cp3"].ready.Store(false)
	waitHolders(t, nodes, "cp1", "cp2")
}

func TestKeeperAnnounceFailure(t *testing.T) {
	names := []string{"cp1", "cp2"}
	nodes := startNodes(t, names...)
	// The top-ranked node cannot announce: it stands aside and the other
	// one holds the VIP.
	top := election.Owner(names, vip)
	other := names[0]
	if other == top {
		other = names[1]
	}
	nodes[top].ann.fail.Store(true)
	nodes[top].ready.Store(true)
	nodes[other].ready.Store(true)
	waitHolders(t, nodes, other)
	if nodes[top].ann.calls.Load() == 0 {
		t.Error("the top-ranked node never tried to announce")
	}
}

func TestNewValidates(t *testing.T) {
	ok := Config{Node: "cp1", Key: vip, Membership: &membership.Cluster{}, Announcer: &fakeAnnouncer{}, Check: func(context.Context) error { return nil }}
	for i, mut := range []func(*Config){
		func(c *Config) { c.Node = "" },
		func(c *Config) { c.Key = netip.Addr{} },
		func(c *Config) { c.Check = nil },
		func(c *Config) { c.Announcer = nil },
	} {
		c := ok
		mut(&c)
		if _, err := New(c); err == nil {
			t.Errorf("case %d: New accepted %+v", i, c)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(valid): %v", err)
	}
}

// frozenView is a membership whose view does not change: what a node whose
// link was down still believes of the others.
type frozenView struct{ members []membership.Member }

func (f frozenView) Members() []membership.Member               { return f.members }
func (f frozenView) Changed() <-chan struct{}                   { return nil }
func (f frozenView) SetState(context.Context, bool, bool) error { return nil }

// TestKeeperCutOffWaits: a node whose link was down sees the others as they
// were at the cut (nobody holding, here). When its link returns, it waits
// AloneSettle before taking the VIP on that view, time for the others to
// show it who holds the VIP now.
func TestKeeperCutOffWaits(t *testing.T) {
	view := frozenView{members: []membership.Member{{Name: "cp1", Healthy: true}, {Name: "cp2", Healthy: true}}}
	self := election.Owner([]string{"cp1", "cp2"}, vip)
	var cut atomic.Bool
	cut.Store(true)
	ann := &fakeAnnouncer{}
	settle := 700 * time.Millisecond
	k, err := New(Config{Node: self, Key: vip, Membership: view, Announcer: ann, AloneSettle: settle, Interval: 10 * time.Millisecond,
		Check: func(context.Context) error {
			if cut.Load() {
				return fmt.Errorf("%w: eth0 is down", ErrCutOff)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	cut.Store(false)
	back := time.Now()
	time.Sleep(settle / 2)
	if ann.everHeld.Load() {
		t.Fatalf("took the VIP %v after its link came back, on a view frozen at the cut", time.Since(back))
	}
	deadline := time.Now().Add(waitTimeout)
	for !ann.held.Load() {
		if time.Now().After(deadline) {
			t.Fatal("never took the VIP after settling")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The last cut-off check ran up to one interval before back.
	if d := time.Since(back); d < settle-2*10*time.Millisecond {
		t.Errorf("took the VIP %v after its link came back, before settling (%v)", d, settle)
	}
}

// TestKeeperConflict: told that another host answers for the VIP, a
// holder that sees other members announces it again; a holder alone (it
// cannot join the others) lets it go and does not take it again while
// alone.
func TestKeeperConflict(t *testing.T) {
	run := func(t *testing.T, members []membership.Member) (*fakeAnnouncer, *Keeper, func()) {
		ann := &fakeAnnouncer{}
		k, err := New(Config{Node: "cp1", Key: vip, Membership: frozenView{members: members}, Announcer: ann,
			AloneSettle: 50 * time.Millisecond, Interval: 10 * time.Millisecond, Check: func(context.Context) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- k.Run(ctx) }()
		deadline := time.Now().Add(waitTimeout)
		for !ann.held.Load() {
			if time.Now().After(deadline) {
				t.Fatal("never took the VIP")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return ann, k, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Run("alone", func(t *testing.T) {
		ann, k, stop := run(t, []membership.Member{{Name: "cp1"}})
		defer stop()
		k.Conflict()
		deadline := time.Now().Add(waitTimeout)
		for ann.held.Load() {
			if time.Now().After(deadline) {
				t.Fatal("kept the VIP another host answers for while alone")
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // many checks, all ready
		if ann.held.Load() {
			t.Error("took the VIP again while still alone")
		}
	})
	t.Run("with members", func(t *testing.T) {
		ann, k, stop := run(t, []membership.Member{{Name: "cp1"}, {Name: "cp2"}})
		defer stop()
		k.Conflict()
		deadline := time.Now().Add(waitTimeout)
		for ann.reannounced.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("did not announce the VIP again")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !ann.held.Load() {
			t.Error("let the VIP go though it sees the others")
		}
	})
}
