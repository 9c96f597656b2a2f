package main

import (
	"context"
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

	"github.com/heraldlb/herald/e2e/lab/lab"
)

// benchFailover measures the target (docs/design.md#targets) for L2 failover: a lab of its own, one
// Service (externalTrafficPolicy Cluster, backends on the nodes that do
// not own it), and per trial: the owner's link cut and its speaker
// SIGKILLed while the client probes every 10 ms; the time to the first
// answered probe after the cut is recorded, then the node is revived.
func benchFailover(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("bench-failover", flag.ContinueOnError)
	trials := fs.Int("trials", 20, "number of failovers")
	out := fs.String("out", "", "also append the table to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := lab.Up(ctx, lab.Options{Topology: "e2e/topologies/l2.clab.yml", Instance: "bench", Log: log, Kubelet: lab.KubeletFromEnv()})
	if err != nil {
		return err
	}
	defer func() { _ = l.Down() }()
	upTime := l.UpTime()
	if err := l.CreatePool(ctx, "bench", "198.51.100.200/29"); err != nil {
		return err
	}
	for _, n := range l.Nodes() {
		if err := l.AddBackend(ctx, "default", "bench", n); err != nil {
			return err
		}
	}
	if err := l.CreateService(ctx, lab.ServiceSpec{Name: "bench"}); err != nil {
		return err
	}
	if err := l.WaitEndpoints(ctx, "default", "bench", len(l.Nodes())); err != nil {
		return err
	}
	addrs, err := l.WaitServing(ctx, "default", "bench", 1)
	if err != nil {
		return err
	}
	vip := addrs[0]
	var rows []lab.Failover
	var tooks []time.Duration
	for i := 1; i <= *trials && ctx.Err() == nil; i++ {
		own, err := currentOwner(ctx, l, vip)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		// Only the survivors serve: the dead node's backend would fail a
		// share of the probes for reasons that are not the announcement.
		for _, n := range l.Nodes() {
			_ = l.RemoveBackend(ctx, "default", "bench", n)
			if n != own {
				if err := l.AddBackend(ctx, "default", "bench", n); err != nil {
					return err
				}
			}
		}
		if err := l.WaitEndpoints(ctx, "default", "bench", len(l.Nodes())-1); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		f, err := l.KillNode(ctx, own, vip, 80)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		fmt.Printf("trial %2d: %s died, %s took over, client back after %v (%d probes failed)\n",
			i, f.Dead, f.NewOwner, f.Took.Round(time.Millisecond), f.Failed)
		rows = append(rows, f)
		tooks = append(tooks, f.Took)
		if err := l.Revive(ctx, own); err != nil {
			return err
		}
	}
	return appendTable(*out, failoverTable(rows, tooks, upTime, l.NodeKind()))
}

func currentOwner(ctx context.Context, l *lab.Lab, addr netip.Addr) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		macs, _ := l.ARPReplies(ctx, l.Client(), addr, 1)
		if len(macs) > 0 {
			if n := l.NodeByMAC(ctx, macs[0]); n != "" {
				return n, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("no node answers ARP for %s", addr)
}

func failoverTable(rows []lab.Failover, tooks []time.Duration, upTime time.Duration, nodeKind string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# herald L2 failover (target in docs/design.md#targets): owner's link cut + speaker SIGKILLed, client probing every 10 ms\n")
	fmt.Fprintf(&b, "# %s, %s, lab up in %v, shipped speaker defaults\n", time.Now().UTC().Format(time.RFC3339), nodeKind, upTime.Round(time.Millisecond))
	fmt.Fprintf(&b, "%-6s %-6s %-9s %10s %7s\n", "trial", "dead", "new", "failover", "failed")
	for i, r := range rows {
		fmt.Fprintf(&b, "%-6d %-6s %-9s %10v %7d\n", i+1, r.Dead, r.NewOwner, r.Took.Round(time.Millisecond), r.Failed)
	}
	if len(tooks) == 0 {
		return b.String()
	}
	s := slices.Clone(tooks)
	slices.Sort(s)
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	fmt.Fprintf(&b, "\ntrials %d  median %v  p95 %v  max %v  min %v   (target: median ≤ 0.5s, max ≤ 1s)\n",
		len(s), median.Round(time.Millisecond), pct(0.95).Round(time.Millisecond),
		s[len(s)-1].Round(time.Millisecond), s[0].Round(time.Millisecond))
	return b.String()
}
