//go:build privileged

package scenarios

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/netns"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/k8s"
)

// The second segment of TestSecondInterfaceDown: a bridge in a namespace of
// its own, with an interface lan2 in each node and in the client.
const (
	lan2NS     = "hl-e2ebgp-lan2"
	lan2Iface  = "lan2"
	lan2Pool   = "lan2"
	edgePool   = "edge"
	lan2Client = "203.0.113.62"
)

// TestSecondInterfaceDown (docs/traffic-policy.md#interfaces-named-by-layer-2-pools):
// a layer-2 pool on a second interface (lan2) of every node. When the
// lan2 link of the node that answers for that pool's address goes down,
// only that address moves, and a client on lan2 reaches the Service again
// through another node; the same node keeps its address of a layer-2 pool
// on its main interface, its BGP sessions with FRR and BIRD stay up
// without a reset, and its routes stay. When the link returns, the address
// comes back. Run in the BGP lab, whose nodes have BGP sessions.
func TestSecondInterfaceDown(t *testing.T) {
	l := bgpLab(t)
	ctx := ctxFor(t, 10*time.Minute)
	macs := addSegment(t, l)

	labPool(t, l, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: lan2Pool}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"203.0.113.40/29"}, AutoAssign: ptr.To(false),
		Announce: heraldv1.Announce{Layer2: &heraldv1.Layer2Announce{Interfaces: []string{lan2Iface}}},
	}})
	labPool(t, l, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: edgePool}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"198.51.100.192/27"}, AutoAssign: ptr.To(false),
		Announce: heraldv1.Announce{Layer2: &heraldv1.Layer2Announce{}},
	}})
	const app = "iface"
	for _, n := range l.Nodes() {
		if err := l.AddBackend(ctx, "default", app, n); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range l.Nodes() {
			_ = l.RemoveBackend(context.Background(), "default", app, n)
		}
	})
	service := func(name, pool, ip string) netip.Addr {
		t.Helper()
		svc := lab.NewLBService(name, app, 80)
		svc.Annotations[k8s.AnnotationPool] = pool
		if ip != "" {
			svc.Annotations[k8s.AnnotationIPs] = ip
		}
		return serveOn(ctx, t, l, svc)
	}
	vip := service("iface-lan2", lan2Pool, "")
	owner := lan2Owner(t, l, macs, vip, "")
	// An address of the main-interface pool that the same node answers
	// for: the election is rendezvous hashing over the three nodes.
	ranker := election.NewRanker(slices.Sorted(slices.Values(l.Nodes())))
	var edge netip.Addr
	for a := netip.MustParseAddr("198.51.100.192"); a.Compare(netip.MustParseAddr("198.51.100.223")) <= 0; a = a.Next() {
		if ranker.Owner(a) == owner {
			edge = a
			break
		}
	}
	if !edge.IsValid() {
		t.Fatalf("no address of 198.51.100.192/27 is %s's; cannot show that its other pools stay", owner)
	}
	service("iface-edge", edgePool, edge.String())
	ownerMAC, err := l.MAC(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	edgeAnsweredBy := func() []string {
		macs, _ := l.ARPReplies(ctx, "frr", edge, 2)
		return slices.Compact(macs)
	}
	if err := pollUntil(10*time.Second, func() bool { return slices.Equal(edgeAnsweredBy(), []string{ownerMAC}) }); err != nil {
		t.Fatalf("%s (pool %s) is answered by %v; want only %s (%s)", edge, edgePool, edgeAnsweredBy(), owner, ownerMAC)
	}
	bgpVIP := bgpService(t, l, "iface-bgp", false, false, l.Nodes()...)[0]
	all := nodeAddrs(l, false, l.Nodes()...)
	waitKernelRoute(t, l, "frr", bgpVIP, all, 10*time.Second)
	t.Logf("%s (pool %s, on lan2) and %s (pool %s, on eth1) answered by %s; %s routed over BGP from every node",
		vip, lan2Pool, edge, edgePool, owner, bgpVIP)

	hc, err := l.Herald()
	if err != nil {
		t.Fatal(err)
	}
	frrBefore := frrSession(t, l, l.Node(owner).Address)
	birdBefore := birdSince(t, l, owner)
	var gaps []time.Duration
	failedTotal, sentTotal, failedBack, sentBack := 0, 0, 0, 0
	for trial := range 5 {
		pctx, stop := context.WithCancel(ctx)
		probes := make(chan []lab.Probe, 1)
		go func() { probes <- l.ProbeEvery(pctx, "client", vip, 80, 10*time.Millisecond, time.Second) }()
		time.Sleep(300 * time.Millisecond)
		cut := time.Now()
		if _, err := l.Exec(ctx, owner, "ip", "link", "set", lan2Iface, "down"); err != nil {
			stop()
			t.Fatal(err)
		}
		next := lan2Owner(t, l, macs, vip, owner)
		time.Sleep(700 * time.Millisecond)
		stop()
		ps := <-probes
		gap, failed := recovery(ps, cut)
		if gap == neverRecovered {
			t.Fatalf("trial %d: requests to %s still fail 700 ms after %s answered for it", trial+1, vip, next)
		}
		gaps = append(gaps, gap)
		failedTotal += failed
		sentTotal += len(ps)
		up := interfaceUp(t, l, owner)
		t.Logf("trial %d: %s's lan2 down: %s answers for %s; requests all succeed again %v after the cut, %d of %d failed; %s's herald_speaker_interface_up{interface=%q} %s",
			trial+1, owner, next, vip, gap.Round(time.Millisecond), failed, len(ps), owner, lan2Iface, up)
		if up != "0" {
			t.Errorf("%s reports lan2 up (%q) while it is down", owner, up)
		}
		if trial == 0 {
			var got []string
			if err := pollUntil(5*time.Second, func() bool {
				sp, err := hc.HeraldV1alpha1().Speakers().Get(ctx, owner, metav1.GetOptions{})
				if err == nil {
					got = sp.Status.InterfacesDown
				}
				return slices.Equal(got, []string{lan2Iface})
			}); err != nil {
				t.Errorf("Speaker %s lists interfacesDown %q with lan2 down; want [lan2]", owner, got)
			}
		}
		// Nothing else of that node moved.
		if got := edgeAnsweredBy(); !slices.Equal(got, []string{ownerMAC}) {
			t.Errorf("trial %d: %s (pool %s, eth1) answered by %v with %s's lan2 down; want %s alone", trial+1, edge, edgePool, got, owner, ownerMAC)
		}
		if got, err := l.KernelRoute(ctx, "frr", netip.PrefixFrom(bgpVIP, 32)); err != nil || !slices.Equal(got, all) {
			t.Errorf("trial %d: FRR routes %s via %v (%v); want every node %v", trial+1, bgpVIP, got, err, all)
		}

		// The link returns: the node wins the address back.
		pctx, stop = context.WithCancel(ctx)
		go func() { probes <- l.ProbeEvery(pctx, "client", vip, 80, 10*time.Millisecond, time.Second) }()
		time.Sleep(300 * time.Millisecond)
		if _, err := l.Exec(ctx, owner, "ip", "link", "set", lan2Iface, "up"); err != nil {
			stop()
			t.Fatal(err)
		}
		back := time.Now()
		if err := pollUntil(10*time.Second, func() bool {
			replies, _ := l.ARPRepliesOn(ctx, "client", lan2Iface, vip, 1)
			return slices.Equal(replies, []string{macs[owner]})
		}); err != nil {
			stop()
			t.Fatalf("trial %d: %s's lan2 up again, but %s is not answered by it alone after 10 s", trial+1, owner, vip)
		}
		answered := time.Since(back)
		time.Sleep(700 * time.Millisecond)
		stop()
		ps = <-probes
		if gap, failed := recovery(ps, back); gap == neverRecovered {
			t.Fatalf("trial %d: requests to %s still fail 700 ms after %s's lan2 came back and it answered", trial+1, vip, owner)
		} else {
			failedBack += failed
		}
		sentBack += len(ps)
		t.Logf("trial %d: lan2 up: %s answers for %s again after %v; %d requests failed in all so far", trial+1, owner, vip, answered.Round(time.Millisecond), failedBack)
		reachVia(t, l, vip)
	}
	frrAfter := frrSession(t, l, l.Node(owner).Address)
	birdAfter := birdSince(t, l, owner)
	if frrAfter.State != "Established" || frrAfter.Dropped != frrBefore.Dropped || frrAfter.Established != frrBefore.Established {
		t.Errorf("FRR's session with %s went from %+v to %+v; it must stay up through lan2's failures", owner, frrBefore, frrAfter)
	}
	if birdAfter != birdBefore {
		t.Errorf("BIRD's session with %s changed state at %q (was %q); it must stay up through lan2's failures", owner, birdAfter, birdBefore)
	}
	t.Logf("lan2 of the owner down: requests all succeed again after %s; %d of %d requests failed; lan2 back up: %d of %d failed; BGP sessions of %s: FRR %+v, BIRD %s",
		summary(gaps), failedTotal, sentTotal, failedBack, sentBack, owner, frrAfter, birdAfter)
}

// addSegment builds the lan2 segment: node i gets 203.0.113.(33+i)/27
// on lan2, the client 203.0.113.62/27 (the kubelet lab's Pods use
// 203.0.113.128/25). It returns each node's lan2 MAC
// and removes the segment at cleanup.
func addSegment(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	run := func(args ...string) {
		t.Helper()
		if out, err := netns.IP(ctx, args...); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if netns.Exists(lan2NS) {
		run("netns", "del", lan2NS)
	}
	run("netns", "add", lan2NS)
	t.Cleanup(func() { _, _ = netns.IP(context.Background(), "netns", "del", lan2NS) })
	run("-n", lan2NS, "link", "add", "br0", "type", "bridge")
	run("-n", lan2NS, "link", "set", "br0", "up")
	macs := map[string]string{}
	attach := func(node, addr string) {
		ns := l.Node(node).Namespace
		port := "p-" + node
		run("link", "add", lan2Iface, "netns", ns, "type", "veth", "peer", "name", port, "netns", lan2NS)
		run("-n", lan2NS, "link", "set", port, "master", "br0", "up")
		run("-n", ns, "addr", "add", addr, "dev", lan2Iface)
		run("-n", ns, "link", "set", lan2Iface, "up")
		out, err := l.Exec(ctx, node, "cat", "/sys/class/net/"+lan2Iface+"/address")
		if err != nil {
			t.Fatal(err)
		}
		macs[node] = strings.TrimSpace(out)
	}
	for i, n := range l.Nodes() {
		attach(n, fmt.Sprintf("203.0.113.%d/27", 33+i))
	}
	attach("client", lan2Client+"/27")
	return macs
}

// lan2Owner waits until exactly one node other than not answers ARP for
// vip on lan2 and returns it.
func lan2Owner(t *testing.T, l *lab.Lab, macs map[string]string, vip netip.Addr, not string) string {
	t.Helper()
	byMAC := map[string]string{}
	for n, m := range macs {
		byMAC[m] = n
	}
	var owner string
	var last []string
	if err := pollUntil(10*time.Second, func() bool {
		replies, _ := l.ARPRepliesOn(context.Background(), "client", lan2Iface, vip, 1)
		last = replies
		if len(replies) != 1 || byMAC[replies[0]] == "" || byMAC[replies[0]] == not {
			return false
		}
		owner = byMAC[replies[0]]
		return true
	}); err != nil {
		t.Fatalf("%s is not answered on lan2 by one node (other than %q) after 10 s; last replies %v (lan2 MACs %v)", vip, not, last, macs)
	}
	return owner
}

// recovery is how long after cut the requests to vip all succeed again
// (the send time of the first success after the last failure), and how
// many failed; neverRecovered when the last request failed.
func recovery(ps []lab.Probe, cut time.Time) (time.Duration, int) {
	failed, lastFailed := 0, -1
	for i, p := range ps {
		if p.Err != nil {
			failed++
			lastFailed = i
		}
	}
	switch {
	case lastFailed < 0:
		return 0, failed
	case lastFailed+1 >= len(ps):
		return neverRecovered, failed
	}
	return max(ps[lastFailed+1].Sent.Sub(cut), 0), failed
}

// neverRecovered is recovery's answer when requests still failed at the end.
const neverRecovered = time.Duration(-1)

// reachVia requests vip from the client until it answers (10 s).
func reachVia(t *testing.T, l *lab.Lab, vip netip.Addr) {
	t.Helper()
	hc := l.HTTPClient("client", time.Second)
	var err error
	if perr := pollUntil(10*time.Second, func() bool {
		_, err = lab.Get(context.Background(), hc, vip, 80)
		return err == nil
	}); perr != nil {
		t.Fatalf("the client cannot reach %s: %v", vip, err)
	}
}

// interfaceUp reads herald_speaker_interface_up{interface="lan2"} from
// node's speaker.
func interfaceUp(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	body, err := l.SpeakerGet(context.Background(), node, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if rest, ok := strings.CutPrefix(line, `herald_speaker_interface_up{interface="`+lan2Iface+`"} `); ok {
			return strings.TrimSpace(rest)
		}
	}
	return "absent"
}

// frrSessionState is what FRR says of one BGP neighbour.
type frrSessionState struct {
	State       string `json:"bgpState"`
	Established int    `json:"connectionsEstablished"`
	Dropped     int    `json:"connectionsDropped"`
}

func frrSession(t *testing.T, l *lab.Lab, peer netip.Addr) frrSessionState {
	t.Helper()
	var nbrs map[string]frrSessionState
	if err := frrJSON(context.Background(), l, &nbrs, "show bgp neighbors json"); err != nil {
		t.Fatal(err)
	}
	return nbrs[peer.String()]
}

// birdSince is the state and time of BIRD's last state change of its
// session with node.
func birdSince(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	out, err := l.RouterQuery(context.Background(), "bird", "show", "protocols")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= 6 && f[0] == node {
			return strings.Join(f[3:], " ")
		}
	}
	t.Fatalf("BIRD has no protocol %s:\n%s", node, out)
	return ""
}
