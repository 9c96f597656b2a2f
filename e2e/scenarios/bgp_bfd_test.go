//go:build privileged

package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/netns"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
)

// frrBFDPeer is one entry of FRR's `show bfd peers json`.
type frrBFDPeer struct {
	Peer       string `json:"peer"`
	Status     string `json:"status"`
	Diagnostic string `json:"diagnostic"`
	RemoteDiag string `json:"remote-diagnostic"`
}

// frrJSONList is frrJSON for commands that print a JSON array.
func frrJSONList(ctx context.Context, l *lab.Lab, v any, cmd string) error {
	out, err := l.RouterQuery(ctx, "frr", cmd)
	if err != nil {
		return err
	}
	if i := strings.Index(out, "["); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("parsing the output of FRR's %q: %w\n%s", cmd, err, out)
	}
	return nil
}

func frrBFDPeers(t *testing.T, l *lab.Lab) map[string]frrBFDPeer {
	t.Helper()
	var peers []frrBFDPeer
	if err := frrJSONList(context.Background(), l, &peers, "show bfd peers json"); err != nil {
		t.Fatal(err)
	}
	out := map[string]frrBFDPeer{}
	for _, p := range peers {
		out[p.Peer] = p
	}
	return out
}

// TestBGPBFDLinkCut (#18 item 2): the BGPPeer "frr" gets BFD (3 x 100 ms,
// matching FRR's profile); FRR's bfdd and every node's speaker bring the
// sessions Up. node2's link is then cut silently (no carrier change at
// the routers): FRR, which runs BFD, drops node2's path within the BFD
// detection time; BIRD, which does not, only when its 3 s hold time runs
// out. Both are measured on the same cut. The link comes back and
// everything returns. Taking BFD off the peer resets no BGP session.
func TestBGPBFDLinkCut(t *testing.T) {
	l := bgpLab(t)
	ctx := ctxFor(t, 4*time.Minute)
	hc, err := versioned.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	peers := hc.HeraldV1alpha1().BGPPeers()
	setBFD := func(b *heraldv1.BFDProfile) {
		t.Helper()
		p, err := peers.Get(ctx, "frr", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.BFD = b
		if _, err := peers.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ms := func(n int) *metav1.Duration { return &metav1.Duration{Duration: time.Duration(n) * time.Millisecond} }
	three := int32(3)
	setBFD(&heraldv1.BFDProfile{ReceiveInterval: ms(100), TransmitInterval: ms(100), DetectMultiplier: &three})
	nodes := []string{"node1", "node2", "node3"}
	addrOf := map[string]string{}
	for _, n := range nodes {
		addrOf[n] = l.Node(n).Address.String()
	}
	bfdUp := func() []string {
		var up []string
		for _, n := range nodes {
			if frrBFDPeers(t, l)[addrOf[n]].Status == "up" {
				up = append(up, n)
			}
		}
		return up
	}
	start := time.Now()
	for len(bfdUp()) < 3 {
		if time.Since(start) > 30*time.Second {
			out, _ := l.RouterQuery(ctx, "frr", "show bfd peers")
			t.Fatalf("FRR's BFD sessions with the nodes not all up 30 s after the BGPPeer got bfd:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("FRR's BFD sessions with node1-3 up %v after the BGPPeer got bfd", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		// Off again, router first, as docs/layer2-vs-bgp.md says: FRR
		// takes its BFD sessions AdminDown, which herald must not read as
		// a failure (RFC 5882 §3.2); then the BGPPeer loses bfd. (The other
		// order drops the sessions: FRR 8.4 reads a peer's AdminDown as
		// BFD down.) No BGP session may drop.
		before := map[string]int{}
		for _, n := range nodes {
			before[n] = frrSession(t, l, l.Node(n).Address).Established
		}
		ns := l.Node("frr").Namespace
		if out, err := netns.Run(context.Background(), ns, "vtysh", "-N", ns, "-c", "configure terminal", "-c", "router bgp 64513", "-c", "no neighbor HERALD bfd"); err != nil {
			t.Errorf("taking BFD off FRR's herald sessions: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
		setBFD(nil)
		time.Sleep(2 * time.Second)
		for _, n := range nodes {
			if s := frrSession(t, l, l.Node(n).Address); s.State != "Established" || s.Established != before[n] {
				t.Errorf("taking BFD off reset %s's session with FRR: %+v (established %d times before)", n, s, before[n])
			}
		}
	})

	vip := bgpService(t, l, "bfd", false, false, "node1", "node2", "node3")[0]
	all := nodeAddrs(l, false, nodes...)
	waitKernelRoute(t, l, "frr", vip, all, 10*time.Second)
	waitKernelRoute(t, l, "bird", vip, all, 10*time.Second)

	n2 := l.Node("node2").Address
	cut := time.Now()
	if err := l.LinkDown(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	linkBack := false
	t.Cleanup(func() {
		if !linkBack {
			_ = l.LinkUp(context.Background(), "node2")
		}
	})
	var frrGone, birdGone time.Duration
	for frrGone == 0 || birdGone == 0 {
		el := time.Since(cut)
		if frrGone == 0 {
			if gws, _ := l.KernelRoute(ctx, "frr", host(vip)); !slices.Contains(gws, n2) {
				frrGone = el
			}
		}
		if birdGone == 0 {
			if gws, _ := l.KernelRoute(ctx, "bird", host(vip)); !slices.Contains(gws, n2) {
				birdGone = el
			}
		}
		if el > 15*time.Second {
			t.Fatalf("node2's path to %s still at FRR (gone after %v) or BIRD (gone after %v) 15 s after the cut", vip, frrGone, birdGone)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// bgpd drops a dynamic neighbour's BFD session with the neighbour,
	// so the session is down or gone.
	p := frrBFDPeers(t, l)[n2.String()]
	t.Logf("node2's link cut: FRR (BFD, 3 x 100 ms = 300 ms detection) dropped its path to %s after %v; BIRD (no BFD, hold time 3 s) after %v; FRR's BFD session with node2 now: %q",
		vip, frrGone.Round(time.Millisecond), birdGone.Round(time.Millisecond), p.Status)
	if frrGone >= birdGone {
		t.Errorf("FRR with BFD dropped node2's path after %v, no sooner than BIRD on its hold time (%v)", frrGone, birdGone)
	}
	if p.Status == "up" {
		t.Errorf("FRR's BFD session with node2 is up after the cut")
	}

	back := time.Now()
	if err := l.LinkUp(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	linkBack = true
	waitKernelRoute(t, l, "frr", vip, all, 30*time.Second)
	// BIRD, without BFD, took the session down on its hold time; the
	// next scenarios need it back too.
	waitKernelRoute(t, l, "bird", vip, all, 30*time.Second)
	for !slices.Contains(bfdUp(), "node2") {
		if time.Since(back) > 30*time.Second {
			t.Fatalf("FRR's BFD session with node2 not up 30 s after its link came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("node2's link back: FRR routes %s via all three nodes and BFD is up again %v later", vip, time.Since(back).Round(time.Millisecond))
}
