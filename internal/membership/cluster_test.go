package membership

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/heraldlb/herald/internal/memberkey"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var loopback = netip.MustParseAddr("127.0.0.1")

// waitTimeout bounds every wait for the cluster to converge. It is not a
// speed assertion: convergence takes well under a second with the shipped
// timing; this only keeps a broken test from hanging (and leaves room for
// -race on a loaded machine).
const waitTimeout = 20 * time.Second

// testLogger sends memberlist's and herald's logs to t.Log when -v is given.
// memberlist's goroutines may still log briefly after Shutdown returns, so
// lines after the test's cleanups are dropped (t.Log would panic).
func testLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	w := &tbWriter{tb: tb}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: testLogLevel()}))
}

type tbWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *tbWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// start starts a member on loopback; port < 0 lets the kernel choose. The
// member is shut down at the end of the test.
func start(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	if !cfg.BindAddr.IsValid() {
		cfg.BindAddr = loopback
	}
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(tb) // registered before Shutdown: cleaned up after it
	}
	c, err := Start(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("Start(%s): %v", cfg.NodeName, err)
	}
	tb.Cleanup(func() {
		if err := c.Shutdown(); err != nil {
			tb.Errorf("Shutdown(%s): %v", cfg.NodeName, err)
		}
	})
	return c
}

// startN starts n members m1..mn that all know each other's addresses.
func startN(tb testing.TB, n int, cfg Config) []*Cluster {
	tb.Helper()
	cs := make([]*Cluster, n)
	for i := range cs {
		c := cfg
		c.NodeName = fmt.Sprintf("m%d", i+1)
		cs[i] = start(tb, c)
	}
	peers := addrsOf(cs)
	for _, c := range cs {
		c.SetPeers(peers)
	}
	return cs
}

func addrsOf(cs []*Cluster) []netip.AddrPort {
	var out []netip.AddrPort
	for _, c := range cs {
		out = append(out, c.LocalAddr())
	}
	return out
}

func names(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond) // memberlist converges over real sockets, in real time
	}
}

// waitMembers waits until every cluster in cs lists exactly want.
func waitMembers(tb testing.TB, cs []*Cluster, want ...string) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var last string
		for _, c := range cs {
			if got := names(c.Members()); !slices.Equal(got, want) {
				last = fmt.Sprintf("%s sees %v", c.cfg.NodeName, got)
				break
			}
		}
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for members %v: %s", waitTimeout, want, last)
		}
		// Each poll costs len(cs)² work: poll large clusters less often.
		time.Sleep(time.Duration(max(10, len(cs))) * time.Millisecond) // real memberlist, real time
	}
}

func healthOf(c *Cluster, name string) (healthy, found bool) {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.Healthy, true
		}
	}
	return false, false
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestClusterJoinMembersAndHealth(t *testing.T) {
	cs := startN(t, 3, Config{})
	waitMembers(t, cs, "m1", "m2", "m3")

	// Members carries the advertised address.
	for _, m := range cs[0].Members() {
		if m.Addr != loopback {
			t.Errorf("member %s has address %s, want %s", m.Name, m.Addr, loopback)
		}
	}

	// Everyone joins unhealthy; SetHealthy(true) reaches the others.
	for _, c := range cs {
		if h, _ := healthOf(cs[0], c.cfg.NodeName); h {
			t.Errorf("%s is healthy before SetHealthy(true)", c.cfg.NodeName)
		}
		if err := c.SetHealthy(t.Context(), true); err != nil {
			t.Fatalf("SetHealthy(true): %v", err)
		}
	}
	allHealthy := func(want bool, who string) func() bool {
		return func() bool {
			for _, c := range cs {
				if h, ok := healthOf(c, who); !ok || h != want {
					return false
				}
			}
			return true
		}
	}
	for _, c := range cs {
		waitFor(t, c.cfg.NodeName+" healthy everywhere", allHealthy(true, c.cfg.NodeName))
	}

	// An unhealthy node is reported by the others, who get a Changed signal.
	drain(cs[0].Changed())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := cs[2].SetHealthy(ctx, false); err != nil {
		t.Fatalf("SetHealthy(false): %v", err)
	}
	waitFor(t, "m3 unhealthy everywhere", allHealthy(false, "m3"))
	select {
	case <-cs[0].Changed():
	case <-time.After(waitTimeout):
		t.Fatal("no Changed signal on m1 after m3's health changed")
	}
	// Unchanged health is not re-published.
	if err := cs[2].SetHealthy(ctx, false); err != nil {
		t.Fatalf("SetHealthy(false) again: %v", err)
	}

	// Holding is published like health, and independently of it.
	if err := cs[1].SetState(ctx, true, true); err != nil {
		t.Fatalf("SetState(true, true): %v", err)
	}
	waitFor(t, "m2 holding everywhere", func() bool {
		for _, c := range cs {
			held := false
			for _, m := range c.Members() {
				if m.Name == "m2" {
					held = m.Holding && m.Healthy
				}
			}
			if !held {
				return false
			}
		}
		return true
	})

	// Interfaces down are published with health, and cleared again.
	lan2 := Interfaces{Down: []string{"lan2"}}
	m1Says := func(want Interfaces) func() bool {
		return func() bool {
			for _, c := range cs {
				for _, m := range c.Members() {
					if m.Name == "m1" && (!m.Healthy || !m.Interfaces.Equal(want)) {
						return false
					}
				}
			}
			return true
		}
	}
	if err := cs[0].SetHealth(ctx, true, lan2); err != nil {
		t.Fatalf("SetHealth(true, lan2 down): %v", err)
	}
	waitFor(t, "m1 healthy with lan2 down everywhere", m1Says(lan2))
	if err := cs[0].SetHealth(ctx, true, Interfaces{}); err != nil {
		t.Fatalf("SetHealth(true, none down): %v", err)
	}
	waitFor(t, "m1 healthy with no interface down everywhere", m1Says(Interfaces{}))
}

func TestClusterLeave(t *testing.T) {
	// A short rejoin interval makes the check below meaningful: the
	// survivors try to re-join the leaver's address many times.
	cs := startN(t, 3, Config{RejoinInterval: 50 * time.Millisecond})
	waitMembers(t, cs, "m1", "m2", "m3")
	drain(cs[0].Changed())

	if err := cs[2].Leave(5 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitMembers(t, cs[:2], "m1", "m2")
	select {
	case <-cs[0].Changed():
	default:
		t.Error("no Changed signal on m1 after m3 left")
	}
	// Between Leave and Shutdown the leaver still answers; the survivors'
	// rejoin loop must not bring it back.
	for range 20 {
		time.Sleep(25 * time.Millisecond) // the survivors' real rejoin rounds must not bring m3 back
		for _, c := range cs[:2] {
			if got := names(c.Members()); slices.Contains(got, "m3") {
				t.Fatalf("%s lists m3 again after it left: %v", c.cfg.NodeName, got)
			}
		}
	}
	if err := cs[2].SetHealthy(t.Context(), true); !errors.Is(err, ErrShutdown) {
		t.Errorf("SetHealthy after Leave: got %v, want ErrShutdown", err)
	}
}

func TestClusterKilledMemberIsDropped(t *testing.T) {
	cs := startN(t, 3, Config{})
	waitMembers(t, cs, "m1", "m2", "m3")
	if err := cs[1].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitMembers(t, []*Cluster{cs[0], cs[2]}, "m1", "m3")
	if err := cs[1].Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown: got %v, want ErrShutdown", err)
	}
}

// TestClusterRestartRejoins: a member killed and restarted under the same
// name and address (a speaker Pod restart) is a member again, though the
// others hold it dead at a higher incarnation than the new process starts
// with.
func TestClusterRestartRejoins(t *testing.T) {
	cs := startN(t, 3, Config{})
	waitMembers(t, cs, "m1", "m2", "m3")
	port := int(cs[2].LocalAddr().Port())
	if err := cs[2].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitMembers(t, cs[:2], "m1", "m2")

	cs[2] = start(t, Config{NodeName: "m3", Port: port})
	cs[2].SetPeers(addrsOf(cs))
	waitMembers(t, cs, "m1", "m2", "m3")
}

// TestClusterRejoinLoopJoinsLatePeer: a known peer address that is not a
// member (its speaker is not up yet, or was partitioned away) is joined by
// the rejoin loop as soon as it answers, without any new SetPeers call.
func TestClusterRejoinLoopJoinsLatePeer(t *testing.T) {
	const interval = 200 * time.Millisecond
	m1 := start(t, Config{NodeName: "m1", RejoinInterval: interval})
	// Reserve an address for m2 by starting and stopping a member on it.
	probe := start(t, Config{NodeName: "placeholder"})
	addr := probe.LocalAddr()
	if err := probe.Shutdown(); err != nil {
		t.Fatal(err)
	}
	m1.SetPeers([]netip.AddrPort{addr})
	time.Sleep(3 * interval) // several failed rounds against a real, closed port

	m2 := start(t, Config{NodeName: "m2", Port: int(addr.Port())}) // knows no peers
	waitMembers(t, []*Cluster{m1, m2}, "m1", "m2")
}

func TestClusterEncryption(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	other := bytes.Repeat([]byte{2}, 32)
	cs := startN(t, 2, Config{Keys: [][]byte{key}, RejoinInterval: 100 * time.Millisecond})
	waitMembers(t, cs, "m1", "m2")

	wrong := start(t, Config{NodeName: "wrong-key", Keys: [][]byte{other}, RejoinInterval: 100 * time.Millisecond})
	plain := start(t, Config{NodeName: "no-key", RejoinInterval: 100 * time.Millisecond})
	all := append(addrsOf(cs), wrong.LocalAddr(), plain.LocalAddr())
	for _, c := range append(cs, wrong, plain) {
		c.SetPeers(all)
	}
	// Several rejoin rounds in both directions.
	time.Sleep(time.Second) // real members refusing each other over real sockets
	waitMembers(t, cs, "m1", "m2")
	waitMembers(t, []*Cluster{wrong}, "wrong-key")
	waitMembers(t, []*Cluster{plain}, "no-key")

	// A member with the right key still joins.
	right := start(t, Config{NodeName: "m3", Keys: [][]byte{key}})
	right.SetPeers(addrsOf(cs))
	waitMembers(t, append(cs, right), "m1", "m2", "m3")
}

func TestStartValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no name", Config{BindAddr: loopback, Port: -1}},
		{"no address", Config{NodeName: "a", Port: -1}},
		{"short key", Config{NodeName: "a", BindAddr: loopback, Port: -1, Keys: [][]byte{make([]byte, 15)}}},
		{"long key", Config{NodeName: "a", BindAddr: loopback, Port: -1, Keys: [][]byte{make([]byte, 33)}}},
		{"port out of range", Config{NodeName: "a", BindAddr: loopback, Port: 70000}},
		{"probe timeout ≥ interval", Config{NodeName: "a", BindAddr: loopback, Port: -1, ProbeInterval: time.Second, ProbeTimeout: time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Start(t.Context(), tc.cfg)
			if err == nil {
				_ = c.Shutdown()
				t.Fatal("Start succeeded, want an error")
			}
		})
	}
}

func TestSetPeersFilters(t *testing.T) {
	c := start(t, Config{NodeName: "a"})
	self := c.LocalAddr()
	p1 := netip.MustParseAddrPort("127.0.0.2:7946")
	c.SetPeers([]netip.AddrPort{
		self,
		p1,
		netip.MustParseAddrPort("[::ffff:127.0.0.2]:7946"), // same as p1
		netip.MustParseAddrPort("[2001:db8::1]:7946"),      // other family
		{},
	})
	c.peersMu.Lock()
	got := slices.Clone(c.peers)
	c.peersMu.Unlock()
	if diff := cmp.Diff([]netip.AddrPort{p1}, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("peers (-want +got):\n%s", diff)
	}
}

func TestShutdownStopsOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	c, err := Start(ctx, Config{NodeName: "a", BindAddr: loopback, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-c.loopDone // the rejoin loop ends on ctx.Done
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// recordHandler records slog records.
type recordHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Level.String()+" "+r.Message)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestLogWriter(t *testing.T) {
	h := &recordHandler{}
	w := &logWriter{log: slog.New(h)}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1234\n",
		"[INFO] memberlist: Suspect m2 has failed, no acks received\n",
		"[WARN] memberlist: Refuting a suspect message (from: m1)\n",
		"[ERR] memberlist: Failed fallback TCP ping: EOF\n",
		"[ERROR] memberlist: something\n",
		"no prefix at all\n",
	} {
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", line, n, err)
		}
	}
	want := []string{
		"DEBUG Stream connection from=127.0.0.1:1234",
		"INFO Suspect m2 has failed, no acks received",
		"WARN Refuting a suspect message (from: m1)",
		"ERROR Failed fallback TCP ping: EOF",
		"ERROR something",
		"INFO no prefix at all",
	}
	if diff := cmp.Diff(want, h.recs); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestMetaFormat pins the metadata format, a contract between speaker
// versions: a first-release speaker reads bit 0 of byte 1 and nothing
// else.
func TestMetaFormat(t *testing.T) {
	c := &Cluster{}
	d := delegate{c}
	if got := d.NodeMeta(512); !bytes.Equal(got, []byte{3, 0, 0, 0}) || decodeMeta(got).healthy {
		t.Errorf("unhealthy meta = %v", got)
	}
	c.state.Store(&selfState{healthy: true})
	if got := d.NodeMeta(512); !bytes.Equal(got, []byte{3, 1, 0, 0}) || !decodeMeta(got).healthy || decodeMeta(got).keyring.Known() {
		t.Errorf("healthy meta = %v", got)
	}
	for _, m := range [][]byte{nil, {1}, {9, 0}} {
		if decodeMeta(m).healthy {
			t.Errorf("decodeMeta(%v).healthy = true", m)
		}
	}
	if !decodeMeta([]byte{3, 1, 0, 0xff}).healthy {
		t.Error("a later format with bit 0 of byte 1 set must read as healthy")
	}
	c.state.Store(&selfState{healthy: true, holding: true})
	if got := d.NodeMeta(512); !bytes.Equal(got, []byte{3, 3, 0, 0}) || !decodeMeta(got).holding || !decodeMeta(got).healthy {
		t.Errorf("holding meta = %v", got)
	}
	c.state.Store(&selfState{healthy: true})
	if decodeMeta([]byte{2, 1, 0}).holding {
		t.Error("bit 1 of byte 1 clear must read as not holding")
	}
	if m := decodeMeta([]byte{1, 1}); !m.healthy || m.keyring.Known() {
		t.Errorf("a first-release member's meta reads as %+v; want healthy, no keyring", m)
	}

	// The keyring: count, then the primary's fingerprint, then the others'.
	primary, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	kr, err := memberlist.NewKeyring([][]byte{other, primary}, primary)
	if err != nil {
		t.Fatal(err)
	}
	c.keyring = kr
	got := d.NodeMeta(512)
	want := append([]byte{3, 1, 2}, 0x72, 0xcd, 0x6e, 0x84, 0x22, 0xc4, 0x07, 0xfb)
	want = append(want, mustHex(t, memberkey.Fingerprint(other))...)
	want = append(want, 0)
	if !bytes.Equal(got, want) {
		t.Errorf("meta with keys = %x; want %x", got, want)
	}
	if diff := cmp.Diff(c.Keyring(), decodeMeta(got).keyring); diff != "" {
		t.Errorf("keyring after a round trip (-sent +read):\n%s", diff)
	}
	if m := decodeMeta(want[:len(want)-2]); m.keyring.Known() || !m.healthy {
		t.Errorf("a truncated keyring reads as %+v; want healthy, no keyring", m)
	}
	// A version 2 member (before interfaces were judged) can answer on
	// every interface.
	if m := decodeMeta(append([]byte{2}, want[1:len(want)-1]...)); m.down.Unlisted || len(m.down.Down) > 0 || !m.keyring.Known() {
		t.Errorf("version 2 meta with keys reads as %+v; want the keyring and no interface down", m)
	}
}

// TestMetaInterfaces pins version 3's list of interfaces a node cannot
// answer on, and that whatever cannot be read or carried counts against
// the node.
func TestMetaInterfaces(t *testing.T) {
	c := &Cluster{}
	d := delegate{c}
	c.state.Store(&selfState{healthy: true, down: Interfaces{Down: []string{"eth1", "vlan20"}}})
	got := d.NodeMeta(512)
	want := []byte{3, 1, 0, 2, 4, 'e', 't', 'h', '1', 6, 'v', 'l', 'a', 'n', '2', '0'}
	if !bytes.Equal(got, want) {
		t.Errorf("meta with eth1 and vlan20 down = %v; want %v", got, want)
	}
	if m := decodeMeta(got); !m.healthy || !slices.Equal(m.down.Down, []string{"eth1", "vlan20"}) || m.down.Unlisted {
		t.Errorf("round trip reads %+v", m)
	}
	for name, b := range map[string][]byte{
		"no list":          {3, 1, 0},
		"truncated name":   want[:len(want)-1],
		"missing entry":    {3, 1, 0, 2, 1, 'a'},
		"empty name":       {3, 1, 0, 1, 0},
		"explicitly large": {3, 1, 0, metaDownUnlisted},
	} {
		if m := decodeMeta(b); !m.down.Unlisted || len(m.down.Down) > 0 || !m.healthy {
			t.Errorf("%s: %v reads as %+v; want healthy, unlisted", name, b, m)
		}
	}
	// More than fits: the node says so instead of listing some.
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("interface%05d", i))
	}
	c.state.Store(&selfState{healthy: true, down: Interfaces{Down: many}})
	got = d.NodeMeta(512)
	if len(got) > memberlist.MetaMaxSize {
		t.Fatalf("meta is %d bytes; memberlist carries %d", len(got), memberlist.MetaMaxSize)
	}
	if m := decodeMeta(got); !m.down.Unlisted {
		t.Errorf("40 long names read as %+v; want unlisted", m.down)
	}

}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkFailureDetection measures, with the shipped timing defaults,
// how long after a member is killed (Shutdown without Leave) every other
// member of a 5-member loopback cluster has stopped listing it. The killed
// member then comes back under the same name and port before the next
// trial. It reports the median, 95th percentile and maximum over the
// trials (HERALD_FAILOVER_TRIALS, default 20); ns/op is the median.
func BenchmarkFailureDetection(b *testing.B) {
	trials := envInt(b, "HERALD_FAILOVER_TRIALS", 20)
	for b.Loop() {
		d := measureFailover(b, Config{}, 5, trials)
		b.ReportMetric(float64(quantile(d, 0.5).Nanoseconds()), "ns/op")
		b.ReportMetric(quantile(d, 0.5).Seconds(), "median-s")
		b.ReportMetric(quantile(d, 0.95).Seconds(), "p95-s")
		b.ReportMetric(quantile(d, 1).Seconds(), "max-s")
		b.ReportMetric(quantile(d, 0).Seconds(), "min-s")
	}
}

func measureFailover(b *testing.B, cfg Config, members, trials int) []time.Duration {
	b.Helper()
	cs := startN(b, members, cfg)
	want := memberNames(cs)
	waitMembers(b, cs, want...)

	var out []time.Duration
	for trial := range trials {
		i := trial % members
		victim := cs[i]
		name, port := victim.cfg.NodeName, int(victim.LocalAddr().Port())
		survivors := slices.Delete(slices.Clone(cs), i, i+1)
		// Let any refutation or gossip of the previous trial settle.
		time.Sleep(500 * time.Millisecond) // real memberlist settles before the next kill

		// Each survivor waits on its Changed signal (no busy polling, so
		// large clusters in one process are not slowed down by the
		// measurement) and records when it stopped listing the victim.
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			last time.Time
		)
		t0 := time.Now()
		for _, s := range survivors {
			wg.Go(func() {
				timeout := time.After(waitTimeout)
				for slices.Contains(names(s.Members()), name) {
					select {
					case <-s.Changed():
					case <-timeout:
						b.Errorf("trial %d: %s still lists %s after %v", trial, s.cfg.NodeName, name, waitTimeout)
						return
					}
				}
				now := time.Now()
				mu.Lock()
				if now.After(last) {
					last = now
				}
				mu.Unlock()
			})
		}
		if err := victim.Shutdown(); err != nil {
			b.Fatalf("Shutdown: %v", err)
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		out = append(out, last.Sub(t0))

		c := cfg
		c.NodeName, c.Port = name, port
		cs[i] = start(b, c)
		cs[i].SetPeers(addrsOf(cs))
		waitMembers(b, cs, want...)
	}
	b.Logf("failure detection over %d trials: %v", trials, out)
	return out
}

// quantile returns the q-quantile (nearest rank) of d.
func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Sorted(slices.Values(d))
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// envInt reads a positive number of trials from the environment.
func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// testLogLevel is debug when HERALD_TEST_DEBUG is set, else info.
func testLogLevel() slog.Level {
	if os.Getenv("HERALD_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
