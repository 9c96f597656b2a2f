package lab

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// Failover is one measured failover.
type Failover struct {
	Dead     string        // the node that died
	NewOwner string        // the node answering ARP afterwards
	Took     time.Duration // from the cut to the first answered probe sent after it
	Failed   int           // probes that failed
	Probes   int
	Errors   []string // the first few probe errors
}

// KillNode makes node die as the failover target (docs/design.md#targets)
// is measured: its switch link is cut and its speaker SIGKILLed (in a
// kubelet lab: the node stopped, StopNode), while the client probes
// vip:port every 10 ms
// (1 s timeout each). It returns once the client's neighbour entry for vip
// names another node (or after 15 s) and the probes have settled; the node
// stays dead (see Revive).
func (l *Lab) KillNode(ctx context.Context, node string, vip netip.Addr, port int) (Failover, error) {
	f := Failover{Dead: node}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	results := make(chan []Probe, 1)
	go func() { results <- l.ProbeEvery(pctx, l.Client(), vip, port, 10*time.Millisecond, time.Second) }()
	time.Sleep(200 * time.Millisecond)
	if err := l.LinkDown(ctx, node); err != nil {
		return f, err
	}
	// Measured from here: once `ip link set down` has returned nothing
	// can reach the node any more.
	cut := time.Now()
	if l.kubelet() {
		// The whole machine dies: kubelet, containerd and every Pod.
		if err := l.StopNode(ctx, node); err != nil {
			return f, err
		}
	} else if err := l.Kill(node, "herald-speaker", syscall.SIGKILL); err != nil {
		return f, err
	}
	for time.Since(cut) < 15*time.Second {
		time.Sleep(50 * time.Millisecond)
		if m := l.NeighborMAC(ctx, l.Client(), vip); m != "" {
			if n := l.NodeByMAC(ctx, m); n != "" && n != node {
				f.NewOwner = n
				break
			}
		}
	}
	time.Sleep(1200 * time.Millisecond) // probes sent meanwhile finish or time out
	stop()
	probes := <-results
	f.Probes = len(probes)
	for _, p := range probes {
		if p.Err != nil {
			f.Failed++
			if len(f.Errors) < 3 {
				f.Errors = append(f.Errors, p.Err.Error())
			}
			continue
		}
		if f.Took == 0 && p.Sent.After(cut) {
			f.Took = p.Sent.Add(p.Took).Sub(cut)
		}
	}
	if f.Took == 0 {
		return f, fmt.Errorf("the client never reached %s again after %s died", vip, node)
	}
	return f, nil
}

// Revive brings a node killed by KillNode back: link up, speaker started
// and ready, and a moment for memberlist to take it in again.
//
// In a kubelet lab a node whose kubelet was stopped (StopNode) boots
// again: containerd and kubelet start, and the kubelet starts its Pods.
func (l *Lab) Revive(ctx context.Context, node string) error {
	if l.kubelet() {
		if p, ok := l.Proc(node, "kubelet"); !ok || !p.Alive() {
			if err := l.StartNode(ctx, node); err != nil {
				return err
			}
		}
	}
	if err := l.LinkUp(ctx, node); err != nil {
		return err
	}
	if err := l.StartSpeaker(node); err != nil {
		return err
	}
	if err := l.WaitSpeakerReady(ctx, node); err != nil {
		return err
	}
	time.Sleep(time.Second)
	return nil
}
