//go:build privileged

package scenarios

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// Address plan of these scenarios (the shared pool "e2e" of l2_test.go is
// 198.51.100.200/29): every pool here is autoAssign: false, so the other
// scenarios never draw from it, and each Service names its pool.
const (
	sharePool = "more-share" // 198.51.100.208/30
	editPool  = "more-edit"  // 198.51.100.212/30
	extPool   = "more-ext"   // 198.51.100.216/29, externalIPs: true
	badPool   = "more-bad"   // 198.51.100.224/30
	aaPool    = "more-aa"    // 198.51.100.240/29 and 2001:db8:100::240/125
	keysPool  = "more-keys"  // 198.51.100.232/29
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pool creates an IPPool for one scenario and deletes it (waiting for
// herald's finalizer to let it go) once the scenario's Services are gone.
func pool(t *testing.T, name string, externalIPs bool, addresses ...string) {
	t.Helper()
	labPool(t, theLab, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: heraldv1.IPPoolSpec{Addresses: addresses, AutoAssign: ptr.To(false), ExternalIPs: externalIPs}})
}

// labPool creates p in lab l and deletes it (waiting for the finalizer)
// once the scenario's Services are gone.
func labPool(t *testing.T, l *lab.Lab, p *heraldv1.IPPool) {
	t.Helper()
	if err := l.ApplyPool(ctxFor(t, 30*time.Second), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		_ = l.DeletePool(ctx, p.Name)
		if err := l.WaitPoolGone(ctx, p.Name, 30*time.Second); err != nil {
			t.Errorf("IPPool %s still there 30 s after its Services were deleted: %v", p.Name, err)
		}
	})
}

// wantRefusedEvent waits for the Warning that externalIP addr of Service
// name will not be announced, naming the missing opt-in.
func wantRefusedEvent(t *testing.T, l *lab.Lab, name string, addr netip.Addr) {
	t.Helper()
	ev, err := l.WaitServiceEvent(ctxFor(t, 30*time.Second), "default", name, "ExternalIPRefused", 15*time.Second, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "externalIPs: true") {
		t.Errorf("ExternalIPRefused Event %s %q: want a Warning that names the missing opt-in (externalIPs: true)", ev.Type, ev.Message)
	}
	t.Logf("Event on %s: %s %s: %s", name, ev.Type, ev.Reason, ev.Message)
}

// backends registers app's backends on nodes, removed at cleanup.
func backends(t *testing.T, app string, nodes ...string) {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute) // a kubelet lab's backends are Pods

	for _, n := range nodes {
		if err := theLab.AddBackend(ctx, "default", app, n); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = theLab.RemoveBackend(context.Background(), "default", app, n)
		}
	})
}

// apply creates svc and deletes it at cleanup.
func apply(t *testing.T, svc *corev1.Service) {
	t.Helper()
	if err := theLab.ApplyService(ctxFor(t, 30*time.Second), svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = theLab.DeleteService(context.Background(), "default", svc.Name) })
}

func ingress(t *testing.T, name string) netip.Addr {
	t.Helper()
	addrs, err := theLab.WaitServing(ctxFor(t, 30*time.Second), "default", name, 1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

// statusAddrs reads Service name's ingress addresses now.
func statusAddrs(t *testing.T, name string) []string {
	t.Helper()
	svc, err := theLab.Kube.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// reachPort requests addr:port from the client until it answers (10 s).
func reachPort(t *testing.T, addr netip.Addr, port int) lab.Reply {
	t.Helper()
	hc := theLab.HTTPClient(theLab.Client(), time.Second)
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r, err := lab.Get(context.Background(), hc, addr, port)
		if err == nil {
			return r
		}
		last = err
	}
	t.Fatalf("client cannot reach %s:%d: %v", addr, port, last)
	return lab.Reply{}
}

// unreachable checks that the client gets no ARP answer for addr and no
// HTTP answer from addr:port.
func unreachable(t *testing.T, addr netip.Addr, port int) {
	t.Helper()
	if macs, _ := theLab.ARPReplies(context.Background(), theLab.Client(), addr, 3); len(macs) > 0 {
		t.Errorf("%s is answered over ARP by %v; it must not be announced", addr, macs)
	}
	hc := theLab.HTTPClient(theLab.Client(), time.Second)
	if r, err := lab.Get(context.Background(), hc, addr, port); err == nil {
		t.Errorf("client reached %s:%d (backend on %s); it must not be announced", addr, port, r.Node)
	} else {
		t.Logf("as expected, %s:%d is unreachable: %v", addr, port, err)
	}
}

// probing sends a request to addr:80 every 20 ms until the returned stop
// is called, which reports failures (connection resets of a request in
// flight at a handover are counted apart, as in TestGracefulSpeakerRestart).
func probing(t *testing.T, addr netip.Addr) (stop func() (failed, resets, total int)) {
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan []lab.Probe, 1)
	go func() { res <- theLab.ProbeEvery(ctx, theLab.Client(), addr, 80, 20*time.Millisecond, time.Second) }()
	return func() (int, int, int) {
		cancel()
		probes := <-res
		failed, resets := 0, 0
		for _, p := range probes {
			switch {
			case p.Err == nil:
			case strings.Contains(p.Err.Error(), "connection reset by peer"):
				resets++
			default:
				failed++
				if failed <= 3 {
					t.Logf("failed probe sent %s: %v", p.Sent.Format("15:04:05.000"), p.Err)
				}
			}
		}
		return failed, resets, len(probes)
	}
}

// serveOn creates svc in lab l, deleted at cleanup, and returns its
// address once every node's backend is an endpoint and kube-proxy
// forwards it.
func serveOn(ctx context.Context, t *testing.T, l *lab.Lab, svc *corev1.Service) netip.Addr {
	t.Helper()
	if err := l.ApplyService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.DeleteService(context.Background(), svc.Namespace, svc.Name) })
	if err := l.WaitEndpoints(ctx, svc.Namespace, svc.Name, len(l.Nodes())); err != nil {
		t.Fatal(err)
	}
	addrs, err := l.WaitServing(ctx, svc.Namespace, svc.Name, 1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}
