//go:build privileged

package scenarios

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab/lab"
)

// Fail static (docs/design.md#membership): with the API server down for 60 s the owner
// keeps announcing (same ARP owner, ARP answered throughout), and once it
// is back a new Service is assigned and reachable within 5 s.
func TestAPIServerDown60s(t *testing.T) {
	if os.Getenv("HERALD_E2E_SHORT") != "" {
		t.Skip("HERALD_E2E_SHORT set: skipping the 60 s API outage")
	}
	l := theLab
	ctx := context.Background()
	addrs := service(t, "failstatic", false, false, l.Nodes()...)
	vip := addrs[0]
	reach(t, vip)
	before := owner(t, vip)
	// The announcement itself is watched: ARP asked every 50 ms for the
	// whole outage, every answer must come from one MAC with no long
	// silence (the target: no announcement withdrawn or moved).
	w, err := l.WatchARP(l.Client(), vip, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	watchStopped := false
	defer func() {
		if !watchStopped {
			w.Stop()
		}
	}()
	if err := l.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = l.StartAPIServer(context.Background())
		}
	})
	hc := l.HTTPClient(l.Client(), time.Second)
	failed, total := 0, 0
	var failedAt []time.Time
	for start := time.Now(); time.Since(start) < 60*time.Second; total++ {
		sent := time.Now()
		if _, err := getOnce(ctx, hc, vip); err != nil {
			failed++
			failedAt = append(failedAt, sent)
			t.Logf("request sent %s failed after %v: %v", sent.Format("15:04:05.000"), time.Since(sent).Round(time.Millisecond), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := owner(t, vip)
	w.Stop()
	watchStopped = true
	seen := w.Seen()
	var gap time.Duration
	var gapAt time.Time
	macs := map[string]bool{}
	for i, a := range seen {
		macs[a.MAC] = true
		if i > 0 && a.At.Sub(seen[i-1].At) > gap {
			gap, gapAt = a.At.Sub(seen[i-1].At), seen[i-1].At
		}
	}
	t.Logf("API server down 60 s: %d of %d requests failed; ARP owner %s before, %s after; ARP asked every 50 ms: %d answers from %d MAC(s), longest silence %v (from %s)",
		failed, total, before, after, len(seen), len(macs), gap.Round(time.Millisecond), gapAt.Format("15:04:05.000"))
	if failed > 0 {
		logsAround(t, failedAt, 2*time.Second)
	}
	// The target (docs/design.md#targets): no announcement withdrawn or
	// moved while the API server is away.
	if after != before || len(macs) != 1 || len(seen) == 0 || gap > 500*time.Millisecond {
		t.Errorf("the announcement of %s changed during the API outage: owner %s -> %s, %d answering MAC(s), longest ARP silence %v; want one owner answering throughout",
			vip, before, after, len(macs), gap.Round(time.Millisecond))
	}
	// Nor is a request lost: kube-proxy keeps its rules and herald its
	// announcement. (The 1 s timeouts once seen here came from a client
	// port poisoned before the outage, when the Service was new; see
	// Lab.WaitServing.)
	if failed > 0 {
		t.Errorf("%d of %d requests to %s failed while the API server was down; want none", failed, total, vip)
	}
	if err := l.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	ready := time.Now()
	t.Logf("API server ready again")
	afterOutage(t, ready)
}

// afterOutage creates a Service right after the API server returned and
// times herald's part (address assigned, ARP answered) apart from the
// controller manager's (EndpointSlices), whose client-go reconnect backoff
// (up to 30 s after a 60 s outage) is not herald's to fix.
func afterOutage(t *testing.T, ready time.Time) {
	l := theLab
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The kubelets, the scheduler and the controller manager reconnect
	// with client-go's backoff, and one kubelet has been seen to start a
	// Pod more than 2 minutes after the API server returned: their part
	// gets longer, and is only reported.
	kubeCtx, kubeCancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer kubeCancel()
	const name = "afteroutage"
	backends := l.Nodes()
	// The Service first: its address is the controller's alone to give.
	// With kubelet nodes the backends' Pods wait for the scheduler, the
	// ReplicaSet controller and the kubelets, which reconnect with their
	// own backoff (over a minute here) and would be timed with herald.
	if err := l.CreateService(ctx, lab.ServiceSpec{Name: name}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.DeleteService(context.Background(), "default", name)
		for _, n := range backends {
			_ = l.RemoveBackend(context.Background(), "default", name, n)
		}
	})
	backendsAdded := make(chan error, 1)
	go func() {
		for _, n := range backends {
			if err := l.AddBackend(kubeCtx, "default", name, n); err != nil {
				backendsAdded <- err
				return
			}
		}
		backendsAdded <- nil
	}()
	endpointsAt := make(chan time.Time, 1)
	go func() {
		defer close(endpointsAt)
		for kubeCtx.Err() == nil {
			if err := l.WaitEndpoints(kubeCtx, "default", name, len(backends)); err == nil {
				endpointsAt <- time.Now()
				return
			}
		}
	}()
	addrs, err := l.WaitIngress(ctx, "default", name, 1)
	if err != nil {
		t.Fatal(err)
	}
	assigned := time.Since(ready)
	var announced time.Duration
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		if macs, _ := l.ARPReplies(ctx, l.Client(), addrs[0], 1); len(macs) > 0 {
			announced = time.Since(ready)
			break
		}
	}
	eps, ok := <-endpointsAt
	endpoints, epsText := time.Duration(0), "not within 4 minutes"
	if ok {
		endpoints = eps.Sub(ready)
		epsText = endpoints.Round(time.Millisecond).String()
	}
	t.Logf("after the outage: address %s assigned %v, ARP answered %v, EndpointSlices (kube-controller-manager) %s after the API server was ready",
		addrs[0], assigned.Round(time.Millisecond), announced.Round(time.Millisecond), epsText)
	if assigned > 5*time.Second {
		t.Errorf("address assigned %v after the API returned; the target (docs/design.md#targets) is ≤ 5 s", assigned)
	}
	if announced == 0 {
		t.Errorf("%s never answered ARP after the outage", addrs[0])
	} else if limit := max(endpoints, 0) + 5*time.Second; announced > limit {
		t.Errorf("ARP answered %v after the API returned (endpoints at %v); the target (docs/design.md#targets) is ≤ 5 s", announced, endpoints)
	}
	if err := <-backendsAdded; err != nil {
		t.Fatal(err)
	}
	// kube-proxy rides out the outage with the same backoff.
	r := reachWithin(t, addrs[0], 2*time.Minute)
	t.Logf("client reaches %s again (backend %s) %v after the API server was ready", addrs[0], r.Node, time.Since(ready).Round(time.Millisecond))
}
