package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
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

// appendTable prints table and appends it to file (if set).
func appendTable(file, table string) error {
	fmt.Print(table)
	if file == "" {
		return nil
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(table + "\n"); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// benchLab brings up an l2 lab of its own (instance name distinct from the
// demo's, the tests' and bench-failover's) with IPPool "bench".
func benchLab(ctx context.Context, instance string, log *slog.Logger) (*lab.Lab, error) {
	l, err := lab.Up(ctx, lab.Options{Topology: "e2e/topologies/l2.clab.yml", Instance: instance, Log: log, Kubelet: lab.KubeletFromEnv()})
	if err != nil {
		return nil, err
	}
	if err := l.CreatePool(ctx, "bench", "198.51.100.200/29"); err != nil {
		_ = l.Down()
		return nil, err
	}
	return l, nil
}

// benchRolling measures the target (docs/design.md#targets) for rolling upgrade: every speaker in turn
// gets SIGTERM, is restarted once it has exited and the others saw it
// leave, and the next follows once it has rejoined, while the client sends
// one request every 10 ms to each of three VIPs (backends on every node,
// externalTrafficPolicy Cluster). Target: 0 failed requests.
func benchRolling(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("bench-rolling", flag.ContinueOnError)
	rounds := fs.Int("rounds", 3, "number of rolling restarts of all speakers")
	vips := fs.Int("vips", 3, "number of LoadBalancer Services probed")
	out := fs.String("out", "", "also append the table to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := benchLab(ctx, "benchroll", log)
	if err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	upTime := l.UpTime()
	for _, n := range l.Nodes() {
		if err := l.AddBackend(ctx, "default", "roll", n); err != nil {
			return err
		}
	}
	var addrs []netip.Addr
	for i := range *vips {
		name := fmt.Sprintf("roll%d", i+1)
		if err := l.ApplyService(ctx, lab.NewLBService(name, "roll", 80)); err != nil {
			return err
		}
		if err := l.WaitEndpoints(ctx, "default", name, len(l.Nodes())); err != nil {
			return err
		}
		a, err := l.WaitIngress(ctx, "default", name, 1)
		if err != nil {
			return err
		}
		addrs = append(addrs, a[0])
	}
	// Warm up: freshly created Services take kube-proxy a moment (its
	// nftables sync period) on every node; failures then are not herald's.
	hc := l.HTTPClient(l.Client(), time.Second)
	for _, a := range addrs {
		ok := 0
		for deadline := time.Now().Add(30 * time.Second); ok < 20; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("client does not reach %s steadily", a)
			}
			if _, err := lab.Get(ctx, hc, a, 80); err == nil {
				ok++
			} else {
				ok = 0
			}
		}
	}
	time.Sleep(2 * time.Second)
	owners := func() string {
		var s []string
		for _, a := range addrs {
			o, _ := currentOwner(ctx, l, a)
			s = append(s, o)
		}
		return strings.Join(s, ",")
	}
	type row struct {
		round                  int
		owners                 string
		probes, failed, resets int
		took                   time.Duration
		errs                   []string
	}
	var rows []row
	for r := 1; r <= *rounds && ctx.Err() == nil; r++ {
		own := owners()
		pctx, stopProbes := context.WithCancel(ctx)
		results := make(chan []lab.Probe, len(addrs))
		for _, a := range addrs {
			go func() { results <- l.ProbeEvery(pctx, l.Client(), a, 80, 10*time.Millisecond, time.Second) }()
		}
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		var rerr error
		for _, n := range l.Nodes() {
			if rerr = l.RestartSpeaker(ctx, n); rerr != nil {
				break
			}
			fmt.Printf("round %d: speaker on %s restarted and rejoined (%v since the round began)\n", r, n, time.Since(start).Round(time.Millisecond))
		}
		took := time.Since(start)
		time.Sleep(2 * time.Second) // handovers back settle; late probes finish
		stopProbes()
		rw := row{round: r, owners: own, took: took}
		for range addrs {
			for _, p := range <-results {
				rw.probes++
				switch {
				case p.Err == nil:
				case strings.Contains(p.Err.Error(), "connection reset by peer"):
					rw.resets++
				default:
					rw.failed++
					if len(rw.errs) < 3 {
						rw.errs = append(rw.errs, p.Sent.Format("15:04:05.000")+" "+p.Err.Error())
					}
				}
			}
		}
		fmt.Printf("round %d: %d of %d requests failed, %d reset %v\n", r, rw.failed, rw.probes, rw.resets, rw.errs)
		rows = append(rows, rw)
		if rerr != nil {
			return fmt.Errorf("round %d: %w", r, rerr)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# herald rolling restart of all speakers (target in docs/design.md#targets): SIGTERM each speaker in turn, restart it once it exited, next once it rejoined;\n")
	fmt.Fprintf(&b, "# client sends one request every 10 ms to each of %d VIPs (ETP Cluster, backends on every node)\n", len(addrs))
	fmt.Fprintf(&b, "# %s, lab up in %v, shipped speaker defaults, VIPs %v\n", time.Now().UTC().Format(time.RFC3339), upTime.Round(time.Millisecond), addrs)
	fmt.Fprintf(&b, "%-6s %-20s %9s %8s %7s %7s\n", "round", "owners-before", "restarts", "requests", "failed", "reset")
	totalFailed, totalResets, total := 0, 0, 0
	for _, rw := range rows {
		fmt.Fprintf(&b, "%-6d %-20s %9v %8d %7d %7d\n", rw.round, rw.owners, rw.took.Round(time.Millisecond), rw.probes, rw.failed, rw.resets)
		totalFailed += rw.failed
		totalResets += rw.resets
		total += rw.probes
	}
	fmt.Fprintf(&b, "\nrounds %d  requests %d  failed %d  reset %d   (target: 0 failed; a reset is a request in flight at a handover)\n",
		len(rows), total, totalFailed, totalResets)
	return appendTable(*out, b.String())
}

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
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-lab", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "herald-lab",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(svc.Spec.Ports[0].Name), Port: ptr.To[int32](lab.BackendPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	setNode := func(n string) {
		slice.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{l.Node(n).Address.String()}, NodeName: ptr.To(n),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}}}
	}
	setNode(nodes[0])
	eps := l.Kube.DiscoveryV1().EndpointSlices("default")
	created, err := eps.Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	slice = created
	addrs, err := l.WaitIngress(ctx, "default", name, 1)
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
	fmt.Fprintf(&b, "# %s, lab up in %v, shipped speaker defaults, VIP %s\n", time.Now().UTC().Format(time.RFC3339), upTime.Round(time.Millisecond), vip)
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
