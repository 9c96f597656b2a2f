//go:build privileged

package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab/lab"
)

// service sets up pool, backends and a LoadBalancer Service and returns
// its addresses (IPv4 first).
func service(t *testing.T, name string, local, dual bool, backends ...string) []netip.Addr {
	t.Helper()
	// Backends of a kubelet lab are Pods, started one after another.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := theLab
	// One pool for all scenarios; every Service gets its own address.
	if err := l.CreatePool(ctx, "e2e", "198.51.100.200/29", "2001:db8:100::200/125"); err != nil {
		t.Fatal(err)
	}
	for _, n := range backends {
		if err := l.AddBackend(ctx, "default", name, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.CreateService(ctx, lab.ServiceSpec{Name: name, Local: local, DualStack: dual}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = l.DeleteService(ctx, "default", name)
		for _, n := range backends {
			_ = l.RemoveBackend(ctx, "default", name, n)
		}
	})
	if err := l.WaitEndpoints(ctx, "default", name, len(backends)); err != nil {
		t.Fatalf("endpoints of %s: %v", name, err)
	}
	families := 1
	if dual {
		families = 2
	}
	addrs, err := l.WaitServing(ctx, "default", name, families)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Is4() && !addrs[j].Is4() })
	t.Logf("service %s: %v", name, addrs)
	return addrs
}

// reach requests addr from the client until it answers (up to 10 s).
func reach(t *testing.T, addr netip.Addr) lab.Reply {
	t.Helper()
	return reachWithin(t, addr, 10*time.Second)
}

func reachWithin(t *testing.T, addr netip.Addr, d time.Duration) lab.Reply {
	t.Helper()
	hc := theLab.HTTPClient(theLab.Client(), time.Second)
	deadline := time.Now().Add(d)
	for {
		r, err := lab.Get(context.Background(), hc, addr, 80)
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("client cannot reach %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// owner is the node whose MAC answers ARP for addr; it fails the test
// unless exactly one node answers.
func owner(t *testing.T, addr netip.Addr) string {
	t.Helper()
	ctx := context.Background()
	macs, err := theLab.ARPReplies(ctx, theLab.Client(), addr, 3)
	if err != nil || len(macs) == 0 {
		t.Fatalf("no ARP reply for %s: %v", addr, err)
	}
	slices.Sort(macs)
	if macs = slices.Compact(macs); len(macs) != 1 {
		t.Fatalf("%d MACs answer ARP for %s: %v", len(macs), addr, macs)
	}
	n := theLab.NodeByMAC(ctx, macs[0])
	if n == "" {
		t.Fatalf("ARP for %s answered by %s, no node's MAC", addr, macs[0])
	}
	return n
}

// (a) externalTrafficPolicy Cluster over layer 2, dual-stack: the client
// reaches both addresses, one node answers ARP.
func TestETPClusterL2DualStack(t *testing.T) {
	addrs := service(t, "cluster", false, true, theLab.Nodes()...)
	for _, a := range addrs {
		r := reach(t, a)
		t.Logf("%s answered by backend on %s (source seen %s)", a, r.Node, r.Source)
	}
	// heraldctl against the live system agrees with ARP.
	for _, a := range addrs {
		if a.Is4() {
			checkHeraldctl(t, theLab, a, "layer2", owner(t, a))
		}
	}
	t.Logf("ARP owner of %s: %s", addrs[0], owner(t, addrs[0]))
}

// (b) externalTrafficPolicy Local: only nodes with a local endpoint may
// answer ARP, and the backend sees the client's own address.
func TestETPLocalL2(t *testing.T) {
	backends := []string{"node1", "node2"}
	addrs := service(t, "local", true, false, backends...)
	vip := addrs[0]
	r := reach(t, vip)
	own := owner(t, vip)
	if !slices.Contains(backends, own) {
		t.Fatalf("%s answers ARP for %s but has no endpoint (endpoints on %v)", own, vip, backends)
	}
	if r.Node != own {
		t.Errorf("reply from backend on %s, want the announcing node %s (Local never leaves the node)", r.Node, own)
	}
	client := theLab.Node(theLab.Client()).Address.String()
	for range 5 {
		r = reach(t, vip)
		if r.Source != client {
			t.Fatalf("backend saw source %s, want the client's %s (ETP Local preserves it)", r.Source, client)
		}
	}
	t.Logf("owner %s, backend %s saw source %s", own, r.Node, r.Source)
}

// (c) the owner dies (speaker SIGKILLed and its link cut): the client
// reaches the service through another node; measures how long it took.
func TestFailoverNodeDies(t *testing.T) {
	l := theLab
	addrs := service(t, "failover", false, false, l.Nodes()...)
	vip := addrs[0]
	reach(t, vip)
	dead := owner(t, vip)
	dropBackend(t, "failover", dead, len(l.Nodes())-1)
	f, err := l.KillNode(context.Background(), dead, vip, 80)
	t.Cleanup(func() {
		if err := l.Revive(context.Background(), dead); err != nil {
			t.Errorf("reviving %s: %v", dead, err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FAILOVER: owner %s died; client reached the service through %s after %v (%d of %d probes at 10 ms failed: %v)",
		dead, f.NewOwner, f.Took.Round(time.Millisecond), f.Failed, f.Probes, f.Errors)
	if f.Took > 5*time.Second {
		t.Errorf("failover took %v; the target (docs/design.md#targets) is a median ≤ 0.5 s and worst ≤ 1 s", f.Took)
	}
	if now := owner(t, vip); now == dead {
		t.Errorf("%s still owns %s after it died", dead, vip)
	}
}

// dropBackend takes node's backend out of Service app: with
// externalTrafficPolicy Cluster the new owner would otherwise still send a
// share of the requests to the dead node's backend, and those failures
// would say nothing about the announcement.
func dropBackend(t *testing.T, app, node string, left int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := theLab.RemoveBackend(ctx, "default", app, node); err != nil {
		t.Fatal(err)
	}
	if err := theLab.WaitEndpoints(ctx, "default", app, left); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // kube-proxy resync
}

// settle waits until 50 requests in a row, one every 10 ms, reach addr,
// so that a restart scenario starts from a working path. Requests that
// fail on the way are reported loudly with the lab's logs around them:
// they are no part of the restart, but a path that breaks without a
// restart is a problem of its own.
func settle(t *testing.T, addr netip.Addr) {
	t.Helper()
	hc := theLab.HTTPClient(theLab.Client(), time.Second)
	var failedAt []time.Time
	ok := 0
	for deadline := time.Now().Add(20 * time.Second); ok < 50; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 50 requests in a row within 20 s (%d failed)", addr, len(failedAt))
		}
		sent := time.Now()
		if _, err := lab.Get(context.Background(), hc, addr, 80); err != nil {
			t.Logf("request sent %s before the scenario failed: %v", sent.Format("15:04:05.000"), err)
			failedAt = append(failedAt, sent)
			ok = 0
			continue
		}
		ok++
	}
	if len(failedAt) > 0 {
		logsAround(t, failedAt, 2*time.Second)
		t.Logf("*** NOTE: %d requests to %s failed before the scenario began (not counted; the path settled afterwards) ***", len(failedAt), addr)
	}
}

// Graceful restart (SIGTERM, as in a rolling upgrade): the speaker hands
// over before it stops answering, so a client sending every 10 ms sees no
// failed request (target in docs/design.md#targets), even when the node leaves the network right
// after its speaker exited.
func TestGracefulSpeakerRestart(t *testing.T) {
	l := theLab
	ctx := context.Background()
	addrs := service(t, "graceful", false, false, l.Nodes()...)
	vip := addrs[0]
	reach(t, vip)
	own := owner(t, vip)
	dropBackend(t, "graceful", own, len(l.Nodes())-1)
	settle(t, vip)
	pctx, stop := context.WithCancel(ctx)
	results := make(chan []lab.Probe, 1)
	go func() { results <- l.ProbeEvery(pctx, l.Client(), vip, 80, 10*time.Millisecond, time.Second) }()
	time.Sleep(300 * time.Millisecond)
	p, _ := l.Proc(own, "herald-speaker")
	t.Logf("SIGTERM to the speaker on %s at %s", own, time.Now().Format("15:04:05.000"))
	if err := l.Kill(own, "herald-speaker", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitGone(p, 20*time.Second) {
		t.Errorf("speaker on %s still running 20 s after SIGTERM", own)
	}
	// Had the handover not happened before the speaker stopped, the
	// client's neighbour entry would still name this node now.
	if err := l.LinkDown(ctx, own); err != nil {
		t.Fatal(err)
	}
	t.Logf("speaker exited; link of %s cut at %s", own, time.Now().Format("15:04:05.000"))
	time.Sleep(2 * time.Second)
	stop()
	probes := <-results
	if err := l.Revive(ctx, own); err != nil {
		t.Fatal(err)
	}
	failed, resets := 0, 0
	var failedAt []time.Time
	for _, p := range probes {
		if p.Err == nil {
			continue
		}
		t.Logf("failed probe sent %s: %v", p.Sent.Format("15:04:05.000"), p.Err)
		if strings.Contains(p.Err.Error(), "connection reset by peer") {
			resets++
		} else {
			failed++
			failedAt = append(failedAt, p.Sent)
		}
	}
	t.Logf("GRACEFUL RESTART of the speaker on %s: %d of %d requests at 10 ms failed, %d more reset", own, failed, len(probes), resets)
	// The target (docs/design.md#targets) is 0.
	if failed > 0 {
		logsAround(t, failedAt, 2*time.Second)
		t.Errorf("%d requests failed (not answered) during a graceful restart; want 0", failed)
	}
	// A connection open at the instant the client's neighbour entry moves
	// continues to the new owner, whose kube-proxy has no conntrack entry
	// for it, and is reset. With ~2 ms requests every 10 ms, one such
	// request per handover happens in about a third of the runs; it is no
	// black hole and no later request fails, so one is tolerated (loudly).
	if resets > 1 {
		t.Errorf("%d requests reset during a graceful restart; at most the one in flight at the handover is expected", resets)
	} else if resets == 1 {
		t.Logf("NOTE: 1 request in flight at the handover was reset (conntrack lives on the old owner)")
	}
}

func waitGone(p lab.Proc, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func getOnce(ctx context.Context, hc *http.Client, addr netip.Addr) (lab.Reply, error) {
	return lab.Get(ctx, hc, addr, 80)
}

// A rolling restart of the speaker DaemonSet, as an operator runs it
// (`kubectl rollout restart daemonset`), while a client requests each of
// three addresses every 10 ms: every speaker is replaced, one node at a
// time, and no request may fail. Requests reset at a handover are counted
// apart (see TestGracefulSpeakerRestart). Kubelet labs only.
func TestSpeakerRollingRestart(t *testing.T) {
	l := theLab
	if _, ok := l.Proc(l.Nodes()[0], "kubelet"); !ok {
		t.Skip("the lab runs no kubelet (HERALD_LAB_MODE=process): no DaemonSet to restart")
	}
	ctx := context.Background()
	if err := l.CreatePool(ctxFor(t, 30*time.Second), "e2e", "198.51.100.200/29", "2001:db8:100::200/125"); err != nil {
		t.Fatal(err)
	}
	backends(t, "roll", l.Nodes()...)
	var vips []netip.Addr
	for _, name := range []string{"roll1", "roll2", "roll3"} {
		apply(t, lab.NewLBService(name, "roll", 80))
		if err := l.WaitEndpoints(ctxFor(t, 30*time.Second), "default", name, len(l.Nodes())); err != nil {
			t.Fatal(err)
		}
		vips = append(vips, ingress(t, name))
	}
	for _, v := range vips {
		settle(t, v)
	}
	before := map[string]string{}
	for _, n := range l.Nodes() {
		p, _ := l.Proc(n, "herald-speaker")
		before[n] = fmt.Sprint(p.PID)
	}
	pctx, stop := context.WithCancel(ctx)
	results := make(chan []lab.Probe, len(vips))
	for _, v := range vips {
		go func() { results <- l.ProbeEvery(pctx, l.Client(), v, 80, 10*time.Millisecond, time.Second) }()
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	err := l.RolloutRestartSpeakers(ctx)
	took := time.Since(start)
	time.Sleep(time.Second)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	failed, resets, total := 0, 0, 0
	var failedAt []time.Time
	for range vips {
		for _, p := range <-results {
			total++
			switch {
			case p.Err == nil:
			case strings.Contains(p.Err.Error(), "connection reset by peer"):
				resets++
			default:
				failed++
				failedAt = append(failedAt, p.Sent)
				t.Logf("failed probe sent %s: %v", p.Sent.Format("15:04:05.000"), p.Err)
			}
		}
	}
	for _, n := range l.Nodes() {
		if p, ok := l.Proc(n, "herald-speaker"); !ok || fmt.Sprint(p.PID) == before[n] {
			t.Errorf("the speaker on %s was not replaced (pid before %s, now %d)", n, before[n], p.PID)
		}
	}
	t.Logf("ROLLING RESTART (kubectl rollout restart daemonset/herald-speaker, %v): %d of %d requests at 10 ms to %d addresses failed, %d reset",
		took.Round(time.Millisecond), failed, total, len(vips), resets)
	if failed > 0 {
		logsAround(t, failedAt, 2*time.Second)
		t.Errorf("%d requests failed during a rolling restart of the speakers; want 0", failed)
	}
	if resets > len(l.Nodes()) {
		t.Errorf("%d requests reset; at most one per handover (%d nodes) is expected", resets, len(l.Nodes()))
	}
}
