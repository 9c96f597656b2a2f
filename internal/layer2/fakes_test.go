package layer2

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/ipv6"
	clocktesting "k8s.io/utils/clock/testing"
)

var (
	ourMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	otherMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}

	vip4      = netip.MustParseAddr("198.51.100.200")
	vip4b     = netip.MustParseAddr("198.51.100.201")
	clientIP4 = netip.MustParseAddr("198.51.100.100")
	vip6      = netip.MustParseAddr("2001:db8:100::200")
	vip6b     = netip.MustParseAddr("2001:db8:100::201")
	clientIP6 = netip.MustParseAddr("fe80::3")

	epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakePacketConn is an in-memory net.PacketConn that, like a packet socket,
// only accepts *packet.Addr destinations. It records every frame written.
type fakePacketConn struct {
	in     chan []byte
	mu     sync.Mutex
	out    [][]byte
	dsts   []net.HardwareAddr
	closed chan struct{}
	once   sync.Once
}

func newFakePacketConn() *fakePacketConn {
	return &fakePacketConn{in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (c *fakePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		return copy(b, f), &packet.Addr{}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakePacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	pa, ok := addr.(*packet.Addr)
	if !ok {
		return 0, errors.New("fakePacketConn: destination is not a *packet.Addr")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, append([]byte(nil), b...))
	c.dsts = append(c.dsts, pa.HardwareAddr)
	return len(b), nil
}

func (c *fakePacketConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *fakePacketConn) LocalAddr() net.Addr              { return &packet.Addr{HardwareAddr: ourMAC} }
func (c *fakePacketConn) SetDeadline(time.Time) error      { return nil }
func (c *fakePacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakePacketConn) SetWriteDeadline(time.Time) error { return nil }

func (c *fakePacketConn) written() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.out...)
}

// sentARP is a frame written by the responder, decoded.
type sentARP struct {
	EthDst, EthSrc net.HardwareAddr
	Op             arp.Operation
	SHA            net.HardwareAddr
	SPA            netip.Addr
	THA            net.HardwareAddr
	TPA            netip.Addr
}

func decodeARP(t *testing.T, b []byte) sentARP {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatalf("written frame: %v", err)
	}
	if f.EtherType != ethernet.EtherTypeARP {
		t.Fatalf("written frame has EtherType %v", f.EtherType)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatalf("written ARP: %v", err)
	}
	return sentARP{f.Destination, f.Source, p.Operation, p.SenderHardwareAddr, p.SenderIP, p.TargetHardwareAddr, p.TargetIP}
}

// arpFrame builds a received Ethernet frame carrying an ARP packet.
func arpFrame(t testing.TB, ethDst net.HardwareAddr, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := ethernet.Frame{Destination: ethDst, Source: sha, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return fb
}

type ndpWrite struct {
	Msg ndp.Message
	Dst netip.Addr
}

// fakeNDPConn is an in-memory ndpConn.
type fakeNDPConn struct {
	in     chan ndpWrite
	mu     sync.Mutex
	out    []ndpWrite
	groups map[netip.Addr]bool
	joins  int
	closed chan struct{}
	once   sync.Once
}

func newFakeNDPConn() *fakeNDPConn {
	return &fakeNDPConn{in: make(chan ndpWrite, 16), groups: map[netip.Addr]bool{}, closed: make(chan struct{})}
}

func (c *fakeNDPConn) ReadFrom() (ndp.Message, *ipv6.ControlMessage, netip.Addr, error) {
	select {
	case m := <-c.in:
		return m.Msg, nil, m.Dst, nil
	case <-c.closed:
		return nil, nil, netip.Addr{}, net.ErrClosed
	}
}

func (c *fakeNDPConn) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	if _, err := ndp.MarshalMessage(m); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, ndpWrite{m, dst})
	return nil
}

func (c *fakeNDPConn) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g] {
		return errors.New("already joined")
	}
	c.groups[g] = true
	c.joins++
	return nil
}

func (c *fakeNDPConn) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.groups[g] {
		return errors.New("not joined")
	}
	delete(c.groups, g)
	return nil
}

func (c *fakeNDPConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

func (c *fakeNDPConn) written() []ndpWrite {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ndpWrite(nil), c.out...)
}

func (c *fakeNDPConn) joined() map[netip.Addr]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[netip.Addr]bool{}
	for g := range c.groups {
		out[g] = true
	}
	return out
}

// conflictRecorder records OnConflict calls.
type conflictRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *conflictRecorder) record(addr netip.Addr, iface string, mac net.HardwareAddr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, addr.String()+" "+iface+" "+mac.String())
}

func (r *conflictRecorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// testEnv builds responders over fakes with a fake clock and a registry.
type testEnv struct {
	clk       *clocktesting.FakeClock
	reg       *prometheus.Registry
	m         *metrics
	conflicts *conflictRecorder
	count     int
	interval  time.Duration
	grace     time.Duration
}

func newTestEnv() *testEnv {
	reg := prometheus.NewRegistry()
	return &testEnv{
		clk:       clocktesting.NewFakeClock(epoch),
		reg:       reg,
		m:         newMetrics(reg),
		conflicts: &conflictRecorder{},
		count:     3,
		interval:  500 * time.Millisecond,
		grace:     2 * time.Second,
	}
}

func (e *testEnv) cfg(fam family) ownerConfig {
	return ownerConfig{
		clk: e.clk, log: discardLog(), iface: "eth0", family: string(fam),
		count: e.count, interval: e.interval, grace: e.grace,
		onConflict: e.conflicts.record, metrics: e.m.forIface("eth0", string(fam)),
	}
}

func (e *testEnv) arp(t *testing.T) (*arpResponder, *fakePacketConn) {
	t.Helper()
	c := newFakePacketConn()
	r := newARPResponder(e.cfg(famIPv4), ourMAC, c)
	t.Cleanup(r.close)
	return r, c
}

func (e *testEnv) ndp(t *testing.T) (*ndpResponder, *fakeNDPConn) {
	t.Helper()
	c := newFakeNDPConn()
	r := newNDPResponder(e.cfg(famIPv6), ourMAC, c)
	t.Cleanup(r.close)
	return r, c
}

// eventually polls cond (real time) for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched() // the goroutines awaited run in this process
	}
}

// settle waits until every timed goroutine of set waits on the fake clock
// again (or has ended), so that a check that something did NOT happen
// after a step sees everything the step caused. The fake clock's waiters
// are all set's: each test has one responder.
func (e *testEnv) settle(t *testing.T, set *ownerSet) {
	t.Helper()
	eventually(t, "the responder to wait on the clock", func() bool { return int(set.timed.Load()) == e.clk.Waiters() })
}

// step waits until n goroutines wait on the fake clock, then advances it.
func (e *testEnv) step(t *testing.T, n int, d time.Duration) {
	t.Helper()
	eventually(t, "fake clock waiters", func() bool { return e.clk.Waiters() >= n })
	e.clk.Step(d)
}

func addrs(as ...netip.Addr) map[netip.Addr]string {
	m := map[netip.Addr]string{}
	for _, a := range as {
		m[a] = "ns/svc-" + a.String()
	}
	return m
}

// counter returns the value of one labelled counter of vec.
func counter(t *testing.T, vec *prometheus.CounterVec, iface, fam string) float64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(iface, fam).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// cmpAddr lets go-cmp compare netip.Addr values.
var cmpAddr = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

// take returns the frames written since the last take and forgets them.
func (c *fakePacketConn) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out, c.dsts = nil, nil
	return out
}

// take returns the messages written since the last take and forgets them.
func (c *fakeNDPConn) take() []ndpWrite {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}
