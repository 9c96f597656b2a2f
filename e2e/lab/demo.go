package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/netns"
)

const demoTopology = "e2e/topologies/l2.clab.yml"

// demo brings up the layer-2 lab (detached, so it outlives this command),
// gives a Service an address, shows the client reaching it, kills the
// announcing node's speaker and shows the client reaching the new owner.
func demo(_ []string, _ *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	step := func(format string, a ...any) { fmt.Printf("\n==> "+format+"\n", a...) }

	step("bringing up the layer-2 lab (%s)", demoTopology)
	if st, err := lab.LoadState(lab.StateDir("l2")); err == nil && st.Ready {
		fmt.Println("(already up: reusing it; `make demo-down` first for a fresh one)")
	} else if err := upDetached(demoTopology, "", lab.KubeletFromEnv()); err != nil {
		return err
	}
	l, err := lab.Attach(lab.StateDir("l2"))
	if err != nil {
		return err
	}
	client := l.Client()

	step("applying IPPool demo (198.51.100.200/29, 2001:db8:100::200/125) and Service default/demo")
	fmt.Println("    type LoadBalancer, externalTrafficPolicy Local, dual-stack, backends on node1 and node2")
	if err := l.CreatePool(ctx, "demo", "198.51.100.200/29", "2001:db8:100::200/125"); err != nil {
		return err
	}
	_ = l.DeleteService(ctx, "default", "demo")
	for _, n := range []string{"node1", "node2"} {
		_ = l.RemoveBackend(ctx, "default", "demo", n)
		if err := l.AddBackend(ctx, "default", "demo", n); err != nil {
			return err
		}
	}
	if err := l.CreateService(ctx, lab.ServiceSpec{Name: "demo", Local: true, DualStack: true}); err != nil {
		return err
	}
	if err := l.WaitEndpoints(ctx, "default", "demo", 2); err != nil {
		return fmt.Errorf("waiting for the EndpointSlice controller: %w", err)
	}
	addrs, err := l.WaitServing(ctx, "default", "demo", 2)
	if err != nil {
		return err
	}
	var vip netip.Addr
	for _, a := range addrs {
		fmt.Printf("    assigned: %s\n", a)
		if a.Is4() {
			vip = a
		}
	}
	if !vip.IsValid() {
		return errors.New("no IPv4 address assigned")
	}

	step("curl from the client namespace (%s)", l.Node(client).Namespace)
	var owner string
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 5; {
		out, err := netns.Run(ctx, l.Node(client).Namespace, "curl", "-s", "--max-time", "1", "http://"+vip.String()+"/")
		if err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("the client cannot reach %s: %w", vip, err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		fmt.Printf("    $ curl http://%s/   ->  %s", vip, out)
		owner = strings.Fields(out)[0]
		i++
	}
	for _, a := range addrs {
		if a.Is6() {
			out, err := netns.Run(ctx, l.Node(client).Namespace, "curl", "-s", "--max-time", "2", "http://["+a.String()+"]/")
			if err == nil {
				fmt.Printf("    $ curl http://[%s]/   ->  %s", a, out)
			} else {
				fmt.Printf("    IPv6 %s not reachable yet: %v\n", a, err)
			}
		}
	}
	mac := l.NeighborMAC(ctx, client, vip)
	fmt.Printf("    %s answers ARP for %s (client's neighbour entry: %s)\n", owner, vip, mac)

	sp, ok := l.Proc(owner, "herald-speaker")
	if !ok {
		return fmt.Errorf("no speaker recorded for %s", owner)
	}
	step("killing herald-speaker on %s (pid %d, SIGKILL) while the client requests every 10 ms", owner, sp.PID)
	pctx, pcancel := context.WithCancel(ctx)
	results := make(chan []lab.Probe, 1)
	go func() { results <- l.ProbeEvery(pctx, client, vip, 80, 10*time.Millisecond, time.Second) }()
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	if err := syscall.Kill(sp.PID, syscall.SIGKILL); err != nil {
		pcancel()
		return err
	}
	var newOwner string
	var took time.Duration
	for time.Since(killed) < 20*time.Second && newOwner == "" {
		time.Sleep(100 * time.Millisecond)
		if m := l.NeighborMAC(ctx, client, vip); m != "" && m != mac {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	pcancel()
	probes := <-results
	failed := 0
	for _, p := range probes {
		if p.Err != nil {
			failed++
			continue
		}
		if p.Sent.After(killed) && p.Reply.Node != owner && newOwner == "" {
			newOwner = p.Reply.Node
			took = p.Sent.Add(p.Took).Sub(killed)
		}
	}
	if newOwner == "" {
		return fmt.Errorf("the client still reaches %s %v after its speaker died", owner, time.Since(killed).Round(time.Millisecond))
	}
	fmt.Printf("    client reached the new owner %s %v after the kill (neighbour entry now %s)\n",
		newOwner, took.Round(time.Millisecond), l.NeighborMAC(ctx, client, vip))
	fmt.Printf("    %d requests, %d failed (%s kept forwarding: only its speaker died)\n", len(probes), failed, owner)
	out, err := netns.Run(ctx, l.Node(client).Namespace, "curl", "-s", "--max-time", "1", "http://"+vip.String()+"/")
	if err == nil {
		fmt.Printf("    $ curl http://%s/   ->  %s", vip, out)
	}

	cp := l.Topo.ByRole("controlplane")[0]
	if l.State().Kubelet {
		step("the cluster (the kubelet restarted the killed speaker's container)")
		time.Sleep(2 * time.Second)
		out, err := l.Kubectl(ctx, "get", "nodes,pods", "-A", "-o", "wide")
		if err != nil {
			return err
		}
		fmt.Print(out)
	}
	step("the lab stays up; poke around")
	fmt.Printf("    ip netns exec %s %s --kubeconfig %s get svc,ippools,endpointslices,events\n", cp.Namespace, l.KubectlPath(), l.Kubeconfig)
	fmt.Printf("    ip netns exec %s curl http://%s/\n", l.Node(client).Namespace, vip)
	fmt.Printf("    ip netns exec %s ip neigh; ip netns exec %s nft list ruleset\n", l.Node(client).Namespace, l.Node("node2").Namespace)
	fmt.Printf("    go run ./e2e/lab status l2;  logs in %s/logs/\n", l.StateDir)
	fmt.Printf("    make demo-down    # tears everything down\n")
	return nil
}
