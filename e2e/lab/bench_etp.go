package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
)

// benchETPMove measures the target (docs/design.md#targets) for ETP Local move over layer 2: a
// selector-less LoadBalancer Service with externalTrafficPolicy Local whose
// one endpoint lives in an EndpointSlice the bench writes itself, so the
// write is the moment measured from. Per trial the endpoint's node changes
// and the time until the client first sees the new node's MAC claim the
// VIP (gratuitous ARP or a reply to its requests, sent every 5 ms) is
// recorded. Target: ≤ 0.1 s.
func benchETPMove(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("bench-etp-move", flag.ContinueOnError)
	trials := fs.Int("trials", 10, "number of endpoint moves")
	out := fs.String("out", "", "also append the table to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := benchLab(ctx, "benchetp", log)
	if err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	upTime := l.UpTime()
	const name = "etpmove"
	svc := lab.NewLBService(name, "", 80)
	svc.Spec.Selector = nil
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if err := l.ApplyService(ctx, svc); err != nil {
		return err
	}
	nodes := l.Nodes()
	// The slice is written by hand (its write is the moment measured
	// from) and names each node's backend: a Pod of app "<name>-be" with
	// kubelet nodes, the node's backend process otherwise.
	backend := map[string]string{}
	for _, n := range nodes {
		if err := l.AddBackend(ctx, "default", name+"-be", n); err != nil {
			return err
		}
		defer func() { _ = l.RemoveBackend(context.Background(), "default", name+"-be", n) }()
		if backend[n], err = l.BackendAddr(ctx, "default", name+"-be", n); err != nil {
			return err
		}
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-lab", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "herald-lab",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(svc.Spec.Ports[0].Name), Port: ptr.To[int32](lab.BackendPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	setNode := func(n string) {
		slice.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{backend[n]}, NodeName: ptr.To(n),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}}}
	}
	setNode(nodes[0])
	eps := l.Kube.DiscoveryV1().EndpointSlices("default")
	created, err := eps.Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	slice = created
	addrs, err := l.WaitServing(ctx, "default", name, 1)
	if err != nil {
		return err
	}
	vip := addrs[0]
	hc := l.HTTPClient(l.Client(), time.Second)
	reached := func(want string) error {
		var last error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			r, err := lab.Get(ctx, hc, vip, 80)
			if err == nil && r.Node == want {
				return nil
			}
			last = err
			if err == nil {
				last = fmt.Errorf("answered by the backend on %s", r.Node)
			}
		}
		return fmt.Errorf("client does not reach %s through %s: %v", vip, want, last)
	}
	if err := reached(nodes[0]); err != nil {
		return err
	}
	macs := map[string]string{}
	for _, n := range nodes {
		if macs[n], err = l.MAC(ctx, n); err != nil {
			return err
		}
	}
	type row struct {
		from, to    string
		write, took time.Duration
		oldLast     time.Duration // last claim by the old node after the write (0: none)
	}
	var rows []row
	var tooks []time.Duration
	cur := nodes[0]
	for i := 1; i <= *trials && ctx.Err() == nil; i++ {
		next := nodes[i%len(nodes)]
		if next == cur {
			next = nodes[(i+1)%len(nodes)]
		}
		if o, err := currentOwner(ctx, l, vip); err != nil || o != cur {
			return fmt.Errorf("trial %d: ARP owner %q (%v), want %s before the move", i, o, err, cur)
		}
		w, err := l.WatchARP(l.Client(), vip, 5*time.Millisecond)
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		setNode(next)
		t0 := time.Now()
		updated, err := eps.Update(ctx, slice, metav1.UpdateOptions{})
		write := time.Since(t0)
		if err != nil {
			w.Stop()
			return err
		}
		slice = updated
		var first time.Time
		for deadline := t0.Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if at, ok := w.FirstFrom(macs[next], t0); ok {
				first = at
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
		w.Stop()
		if first.IsZero() {
			return fmt.Errorf("trial %d: %s never claimed %s within 5 s of the EndpointSlice write", i, next, vip)
		}
		rw := row{from: cur, to: next, write: write, took: first.Sub(t0)}
		if last, ok := w.LastFrom(macs[cur]); ok && last.After(t0) {
			rw.oldLast = last.Sub(t0)
		}
		if err := reached(next); err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		fmt.Printf("trial %2d: endpoint %s -> %s: new node claims %s %v after the write (API call %v); old node last claimed it at %v\n",
			i, cur, next, vip, rw.took.Round(100*time.Microsecond), write.Round(100*time.Microsecond), rw.oldLast.Round(100*time.Microsecond))
		rows = append(rows, rw)
		tooks = append(tooks, rw.took)
		cur = next
	}
	if len(tooks) == 0 {
		return errors.New("no trial completed")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# herald ETP Local endpoint move over L2 (target in docs/design.md#targets): the only endpoint's EndpointSlice is rewritten to another node;\n")
	fmt.Fprintf(&b, "# measured from the start of the Update call to the first ARP packet (gratuitous or reply; client asks every 5 ms) with the new node's MAC\n")
	fmt.Fprintf(&b, "# %s, %s, lab up in %v, shipped speaker defaults, VIP %s\n", time.Now().UTC().Format(time.RFC3339), l.NodeKind(), upTime.Round(time.Millisecond), vip)
	fmt.Fprintf(&b, "%-6s %-6s %-6s %10s %10s %12s\n", "trial", "from", "to", "api-write", "new-ARP", "old-last-ARP")
	for i, r := range rows {
		old := "-"
		if r.oldLast > 0 {
			old = r.oldLast.Round(100 * time.Microsecond).String()
		}
		fmt.Fprintf(&b, "%-6d %-6s %-6s %10v %10v %12s\n", i+1, r.from, r.to, r.write.Round(100*time.Microsecond), r.took.Round(100*time.Microsecond), old)
	}
	s := slices.Clone(tooks)
	slices.Sort(s)
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	fmt.Fprintf(&b, "\ntrials %d  median %v  max %v  min %v   (target: ≤ 0.1s)\n", len(s), median.Round(100*time.Microsecond),
		s[len(s)-1].Round(100*time.Microsecond), s[0].Round(100*time.Microsecond))
	return appendTable(*out, b.String())
}
