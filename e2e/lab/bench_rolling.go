package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/e2e/lab/lab"
)

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
		a, err := l.WaitServing(ctx, "default", name, 1)
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
	fmt.Fprintf(&b, "# %s, %s, lab up in %v, shipped speaker defaults, VIPs %v\n", time.Now().UTC().Format(time.RFC3339), l.NodeKind(), upTime.Round(time.Millisecond), addrs)
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
