//go:build privileged

package scenarios

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/netns"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/k8s"
)

// The VRF link of TestBGPPeerInVRF: node1's red0, enslaved to the VRF
// device "red", to FRR's vrf1 (FRR's listen range covers it, bgp/frr.conf).
const (
	vrfName     = "red"
	vrfNodeAddr = "203.0.113.9"
	vrfFRRAddr  = "203.0.113.10"
	vrfPool     = "bgp-vrf" // 203.0.113.24/29, outside every other pool
)

// vrfSupported creates a VRF device in a scratch namespace: kernels
// built without CONFIG_NET_VRF refuse it ("Unknown device type").
func vrfSupported(ctx context.Context) (bool, string) {
	const ns = "hl-e2ebgp-vrfprobe"
	if _, err := netns.IP(ctx, "netns", "add", ns); err != nil {
		return false, err.Error()
	}
	defer func() { _, _ = netns.IP(context.Background(), "netns", "del", ns) }()
	out, err := netns.IP(ctx, "-n", ns, "link", "add", "probe", "type", "vrf", "table", "10")
	if err != nil {
		return false, strings.TrimSpace(out + " " + err.Error())
	}
	return true, ""
}

// TestBGPPeerInVRF (#18 item 3): a BGPPeer with vrf: red is reached only
// through node1's VRF "red" (the main table has no route to it). The
// session comes up from inside the VRF, and FRR gets the pool's address
// with the node's address in the VRF as next hop, not the node's
// InternalIP, which FRR could not reach over that link.
func TestBGPPeerInVRF(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	if ok, why := vrfSupported(ctx); !ok {
		t.Skipf("BLOCKED, NOT RUN: this machine's kernel cannot create a VRF device (`ip link add probe type vrf table 10`: %s; "+
			"the kernel is built without CONFIG_NET_VRF). herald's vrf field is tested here only by unit tests (internal/bgp TestPeerBoundToDevice).", why)
	}
	l := bgpLab(t)
	node1, frr := l.Node("node1").Namespace, l.Node("frr").Namespace
	run := func(args ...string) {
		t.Helper()
		if out, err := netns.IP(ctx, args...); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("-n", node1, "link", "add", vrfName, "type", "vrf", "table", "10")
	t.Cleanup(func() { _, _ = netns.IP(context.Background(), "-n", node1, "link", "del", vrfName) })
	run("-n", node1, "link", "set", vrfName, "up")
	run("link", "add", "red0", "netns", node1, "type", "veth", "peer", "name", "vrf1", "netns", frr)
	t.Cleanup(func() { _, _ = netns.IP(context.Background(), "-n", node1, "link", "del", "red0") })
	run("-n", node1, "link", "set", "red0", "master", vrfName)
	run("-n", node1, "addr", "add", vrfNodeAddr+"/30", "dev", "red0")
	run("-n", node1, "link", "set", "red0", "up")
	run("-n", frr, "addr", "add", vrfFRRAddr+"/30", "dev", "vrf1")
	run("-n", frr, "link", "set", "vrf1", "up")
	if out, _ := netns.IP(ctx, "-n", node1, "route", "get", vrfFRRAddr); !strings.Contains(out, "unreachable") && strings.Contains(out, "red0") {
		t.Fatalf("node1's main table reaches %s over red0; the test needs it reachable only in the VRF:\n%s", vrfFRRAddr, out)
	}

	hc, err := versioned.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	peer := &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr-vrf"}, Spec: heraldv1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64513, PeerAddress: vrfFRRAddr, VRF: vrfName,
		HoldTime: &metav1.Duration{Duration: 3 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: time.Second},
		ConnectTime:  &metav1.Duration{Duration: time.Second},
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": "node1"}},
	}}
	if _, err := hc.HeraldV1alpha1().BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hc.HeraldV1alpha1().BGPPeers().Delete(context.Background(), "frr-vrf", metav1.DeleteOptions{})
	})
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if n := frrNeighborOf(t, l, vrfNodeAddr); n.State == "Established" {
			t.Logf("FRR's session with node1's VRF address %s up %v after the BGPPeer", vrfNodeAddr, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 30*time.Second {
			out, _ := l.RouterQuery(ctx, "frr", "show bgp summary")
			t.Fatalf("no session from node1's VRF after 30 s:\n%s", out)
		}
	}
	// The session comes from 203.0.113.9, an address only red0 (in the
	// VRF) has, to an address only the VRF's table reaches.
	ss, _ := netns.Run(ctx, node1, "ss", "-tn", "state", "established", "( dport = :179 )")
	t.Logf("node1's BGP sockets:\n%s", ss)

	labPool(t, l, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: vrfPool}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"203.0.113.24/29"}, AutoAssign: ptr.To(false),
		Announce: heraldv1.Announce{BGP: &heraldv1.BGPAnnounce{BGPAdvertisement: heraldv1.BGPAdvertisement{Peers: []string{"frr-vrf"}}}},
	}})
	if err := l.AddBackend(ctx, "default", "vrf", "node1"); err != nil {
		t.Fatal(err)
	}
	svc := lab.NewLBService("vrf", "vrf", 80)
	svc.Annotations = map[string]string{k8s.AnnotationPool: vrfPool}
	if err := l.ApplyService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.DeleteService(context.Background(), "default", "vrf")
		_ = l.RemoveBackend(context.Background(), "default", "vrf", "node1")
	})
	var vip netip.Addr
	for start := time.Now(); !vip.IsValid(); time.Sleep(100 * time.Millisecond) {
		s, err := l.Kube.CoreV1().Services("default").Get(ctx, "vrf", metav1.GetOptions{})
		if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
			vip, _ = netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("Service vrf got no address in 30 s")
		}
	}
	want := netip.MustParseAddr(vrfNodeAddr)
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		gws, _ := l.KernelRoute(ctx, "frr", host(vip))
		if len(gws) == 1 && gws[0] == want {
			t.Logf("FRR routes %s via %s (node1 in VRF %s) %v after the address was assigned", vip, want, vrfName, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 15*time.Second {
			out, _ := l.RouterQuery(ctx, "frr", "show bgp ipv4 unicast "+host(vip).String())
			t.Fatalf("FRR's route to %s goes via %v after 15 s, want %s only:\n%s", vip, gws, want, out)
		}
	}
}
