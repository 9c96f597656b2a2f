package bfd

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// event is an OnChange call with the time it was made.
type event struct {
	key  Key
	up   bool
	diag Diag
	at   time.Time
}

// recorder collects a Manager's OnChange calls.
type recorder struct {
	mu     sync.Mutex
	events []event
	ch     chan event
}

func newRecorder() *recorder { return &recorder{ch: make(chan event, 64)} }

func (r *recorder) onChange(k Key, up bool, d Diag) {
	e := event{k, up, d, time.Now()}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.ch <- e
}

func (r *recorder) wait(t *testing.T, up bool, within time.Duration) event {
	t.Helper()
	select {
	case e := <-r.ch:
		if e.up != up {
			t.Fatalf("got %+v, want up=%v", e, up)
		}
		return e
	case <-time.After(within):
		t.Fatalf("no up=%v within %v", up, within)
	}
	return event{}
}

type running struct {
	m      *Manager
	rec    *recorder
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	rec := newRecorder()
	cfg.OnChange = rec.onChange
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, rec: rec, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := m.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

// loopProfile is fast, but not so fast that a loaded 2-core CI machine
// (other packages' API servers start beside these tests) stalls a
// Manager for a whole detection time.
var loopProfile = Profile{ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}

// detection is loopProfile's detection time.
const detection = 300 * time.Millisecond

// pair runs two Managers with sessions to each other, checks that both
// come Up, then stops b and checks that a goes Down in about the
// detection time.
func pair(t *testing.T, a, b Session, pa, pb *ports) {
	ra := start(t, Config{ports: pa})
	rb := start(t, Config{ports: pb})
	t0 := time.Now()
	if err := ra.m.Set([]Session{a}); err != nil {
		t.Fatal(err)
	}
	if err := rb.m.Set([]Session{b}); err != nil {
		t.Fatal(err)
	}
	ea := ra.rec.wait(t, true, 5*time.Second)
	eb := rb.rec.wait(t, true, 5*time.Second)
	t.Logf("Up after %v (a) and %v (b); the slow start sends every 1s until Up", ea.at.Sub(t0).Round(time.Millisecond), eb.at.Sub(t0).Round(time.Millisecond))
	if s, _ := ra.m.State(a.Key()); s != Up {
		t.Errorf("State = %v", s)
	}
	// Stay Up on the fast timers for a while: no false detection.
	time.Sleep(10 * detection)
	select {
	case e := <-ra.rec.ch:
		t.Fatalf("unexpected change %+v", e)
	default:
	}

	stopped := time.Now()
	rb.stop()
	e := ra.rec.wait(t, false, 10*detection)
	took := e.at.Sub(stopped)
	t.Logf("a Down %v after b stopped (detection time %v, tx %v with jitter)", took.Round(time.Millisecond), detection, loopProfile.TransmitInterval)
	if e.diag != DiagTimeExpired {
		t.Errorf("diag %v, want %v", e.diag, DiagTimeExpired)
	}
	// Down comes after the detection time, not after a hold time: a
	// bound loose enough for a loaded machine still tells them apart.
	if took > 3*detection {
		t.Errorf("took %v to detect, detection time is %v", took, detection)
	}
}

func TestLoopbackIPv4(t *testing.T) {
	one, two := netip.MustParseAddr("127.0.2.1"), netip.MustParseAddr("127.0.2.2")
	pair(t,
		Session{Peer: two, Local: one, Profile: loopProfile},
		Session{Peer: one, Local: two, Profile: loopProfile},
		nil, nil)
}

// testPorts returns crossed port sets, so that two Managers can share
// one address.
func testPorts() (a, b *ports) {
	p := uint16(20000 + rand.IntN(20000))
	return &ports{p, p + 1, p + 2, p + 3}, &ports{p + 2, p + 3, p, p + 1}
}

func TestLoopbackIPv6(t *testing.T) {
	lo := netip.MustParseAddr("::1")
	pa, pb := testPorts()
	pair(t,
		Session{Peer: lo, Local: lo, Profile: loopProfile},
		Session{Peer: lo, Local: lo, Profile: loopProfile},
		pa, pb)
}

func TestLoopbackMultihop(t *testing.T) {
	one, two := netip.MustParseAddr("127.0.2.1"), netip.MustParseAddr("127.0.2.2")
	pair(t,
		Session{Peer: two, Local: one, Multihop: true, Profile: loopProfile},
		Session{Peer: one, Local: two, Multihop: true, Profile: loopProfile},
		nil, nil)
}

// TestLoopbackUnboundLocal lets the kernel choose the source: the
// listener is the wildcard and packets are matched by the peer address.
func TestLoopbackUnboundLocal(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	pa, pb := testPorts()
	pair(t,
		Session{Peer: lo, Profile: loopProfile},
		Session{Peer: lo, Local: lo, Profile: loopProfile},
		pa, pb)
}

// TestAdminDownOnRemove: removing a session tells the peer, which goes
// Down at once instead of after its detection time.
func TestAdminDownOnRemove(t *testing.T) {
	one, two := netip.MustParseAddr("127.0.2.1"), netip.MustParseAddr("127.0.2.2")
	reg := prometheus.NewPedanticRegistry()
	ra := start(t, Config{Registerer: reg})
	rb := start(t, Config{})
	slow := Profile{ReceiveInterval: time.Second, TransmitInterval: time.Second}
	a := Session{Peer: two, Local: one, Profile: slow}
	if err := ra.m.Set([]Session{a}); err != nil {
		t.Fatal(err)
	}
	if err := rb.m.Set([]Session{{Peer: one, Local: two, Profile: slow}}); err != nil {
		t.Fatal(err)
	}
	ra.rec.wait(t, true, 5*time.Second)
	rb.rec.wait(t, true, 5*time.Second)
	if got := gauges(t, reg); len(got) != 1 || got["127.0.2.2"] != 1 {
		t.Errorf("herald_bfd_session_up: %v, want 127.0.2.2 at 1", got)
	}

	removed := time.Now()
	if err := ra.m.Set(nil); err != nil {
		t.Fatal(err)
	}
	e := rb.rec.wait(t, false, time.Second)
	t.Logf("b Down %v after a removed its session (detection time 3s)", e.at.Sub(removed).Round(time.Millisecond))
	// The peer took it AdminDown: reported as such, not as a failure.
	if e.diag != DiagAdminDown {
		t.Errorf("diag %v, want %v", e.diag, DiagAdminDown)
	}
	// b hears the AdminDown as a sends it, which may be before a has
	// finished removing the session: give a a moment.
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, ok := ra.m.State(a.Key())
		got := gauges(t, reg)
		if !ok && len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a second after the removal: state kept %v, series %v", ok, got)
			break
		}
	}
	select {
	case e := <-ra.rec.ch:
		t.Errorf("removal reported as %+v", e)
	default:
	}
}

// TestProfileChangeKeepsUp changes the intervals of a running session:
// the poll sequence moves both ends without a flap.
func TestProfileChangeKeepsUp(t *testing.T) {
	one, two := netip.MustParseAddr("127.0.2.1"), netip.MustParseAddr("127.0.2.2")
	ra := start(t, Config{})
	rb := start(t, Config{})
	a := Session{Peer: two, Local: one, Profile: loopProfile}
	if err := ra.m.Set([]Session{a}); err != nil {
		t.Fatal(err)
	}
	if err := rb.m.Set([]Session{{Peer: one, Local: two, Profile: loopProfile}}); err != nil {
		t.Fatal(err)
	}
	ra.rec.wait(t, true, 5*time.Second)
	rb.rec.wait(t, true, 5*time.Second)
	a.Profile.TransmitInterval = 200 * time.Millisecond
	if err := ra.m.Set([]Session{a}); err != nil {
		t.Fatal(err)
	}
	// b's old detection time was 150ms: without the poll sequence it
	// would time out at once.
	time.Sleep(time.Second)
	for _, r := range []*running{ra, rb} {
		select {
		case e := <-r.rec.ch:
			t.Errorf("flap after the change: %+v", e)
		default:
		}
	}
}

func TestSetValidates(t *testing.T) {
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParseAddr("192.0.2.1")
	for _, c := range []struct {
		s    []Session
		want string
	}{
		{[]Session{{Peer: p, Profile: Profile{EchoMode: true}}}, "echo mode is not supported"},
		{[]Session{{}}, "peer address is missing"},
		{[]Session{{Peer: p, Local: netip.MustParseAddr("2001:db8::1")}}, "different families"},
		{[]Session{{Peer: p, Profile: Profile{ReceiveInterval: time.Millisecond}}}, "receive interval"},
		{[]Session{{Peer: p, Profile: Profile{DetectMultiplier: 1}}}, "detect multiplier"},
		{[]Session{{Peer: p}, {Peer: p}}, "given twice"},
	} {
		err := m.Set(c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.s, err, c.want)
		}
	}
	if err := m.Set([]Session{{Peer: p}}); err != nil {
		t.Fatal(err)
	}
	got := m.desired[Key{Peer: p}].Profile
	want := Profile{ReceiveInterval: DefaultInterval, TransmitInterval: DefaultInterval, DetectMultiplier: 3, MinimumTTL: 254}
	if got != want {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
}

// gauges returns herald_bfd_session_up by peer.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "herald_bfd_session_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestTTLChecks feeds the demultiplexer directly: GTSM for single-hop,
// the profile's minimum for multihop.
func TestTTLChecks(t *testing.T) {
	peer, local := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")
	pa, _ := testPorts()
	m, err := New(Config{ports: pa})
	if err != nil {
		t.Fatal(err)
	}
	defer m.closeAll()
	single := Session{Peer: peer, Local: local}
	multi := Session{Peer: peer, Local: local, Multihop: true, Profile: Profile{MinimumTTL: 250}}
	if err := m.Set([]Session{single, multi}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m.reconcile(ctx, time.Now())
	hello := (Packet{State: Down, DetectMult: 3, MyDiscriminator: 77, DesiredMinTx: time.Second, RequiredMinRx: time.Second}).Append(nil)
	for _, c := range []struct {
		s    Session
		ttl  int
		want State
	}{
		{single, 254, Down},
		{single, -1, Down},
		{single, 255, Init},
		{multi, 249, Down},
		{multi, 250, Init},
	} {
		s := m.sessions[c.s.Key()]
		s.m.state, s.m.heard = Down, false
		m.receive(time.Now(), inbound{l: s.l, src: peer, dst: local, ttl: c.ttl, data: hello})
		if s.m.state != c.want {
			t.Errorf("%v with TTL %d: %v, want %v", c.s.Key(), c.ttl, s.m.state, c.want)
		}
	}
	// A packet from another address is not the peer's.
	s := m.sessions[single.Key()]
	s.m.state = Down
	m.receive(time.Now(), inbound{l: s.l, src: netip.MustParseAddr("127.0.0.3"), dst: local, ttl: 255, data: hello})
	if s.m.state != Down {
		t.Errorf("a packet from a stranger moved the session to %v", s.m.state)
	}
}
