//go:build privileged

package scenarios

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/k8s"
)

// The scenarios of this file use BIRD's iBGP address (bgp/bird.conf) and
// pools beside the lab's "bgp" pool (203.0.113.64/27), inside the range
// the client routes through the routers (203.0.113.64/26).
const (
	ibgpAddr     = "198.51.100.253"
	ibgpPassword = "herald-lab-ibgp"
	extPoolBGP   = "bgp-ext"  // 203.0.113.96/28, externalIPs: true
	ibgpPool     = "bgp-ibgp" // 203.0.113.112/29, local-pref 250 to bird-ibgp only
)

// TestBGPWrongPasswordThenLocalPref: a BGPPeer whose TCP-MD5 password is
// wrong never comes up (BIRD drops the segments), says so in its status,
// and costs the working sessions nothing; fixing the Secret brings it up
// without touching the others. Over that iBGP session the pool's
// local-pref is what BIRD sees, and only that pool goes to that peer.
func TestBGPWrongPasswordThenLocalPref(t *testing.T) {
	l := bgpLab(t)
	ctx := ctxFor(t, 3*time.Minute)
	hc, err := versioned.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	secrets := l.Kube.CoreV1().Secrets("herald-system")
	if _, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ibgp-md5"},
		StringData: map[string]string{"password": "not-the-password"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), "ibgp-md5", metav1.DeleteOptions{}) })
	peer := &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "bird-ibgp"}, Spec: heraldv1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64512, PeerAddress: ibgpAddr,
		HoldTime: &metav1.Duration{Duration: 3 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second},
		PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "ibgp-md5", Key: "password"},
		NodeSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": "node1"}},
	}}
	if _, err := hc.HeraldV1alpha1().BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hc.HeraldV1alpha1().BGPPeers().Delete(context.Background(), "bird-ibgp", metav1.DeleteOptions{})
	})

	// Wrong password: down for 10 s (ten connect attempts), BGPPeer
	// status 0 of 1, and the six eBGP sessions never flap.
	wrongSince := time.Now()
	for time.Since(wrongSince) < 10*time.Second {
		if up, _ := birdUp(ctx, l, "inode"); len(up) > 0 {
			t.Fatalf("iBGP session up with a wrong password: %v", up)
		}
		frr, _ := frrEstablished(ctx, l)
		bird, _ := birdEstablished(ctx, l)
		if len(frr) != 3 || len(bird) != 3 {
			t.Fatalf("a wrong password on bird-ibgp cost other sessions: FRR up with %v, BIRD with %v", frr, bird)
		}
		time.Sleep(500 * time.Millisecond)
	}
	p, err := hc.HeraldV1alpha1().BGPPeers().Get(ctx, "bird-ibgp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.SessionsUp != 0 || p.Status.SessionsTotal != 1 {
		t.Errorf("BGPPeer bird-ibgp status with a wrong password: %d/%d sessions up, want 0/1", p.Status.SessionsUp, p.Status.SessionsTotal)
	}
	out, _ := l.RouterQuery(ctx, "bird", "show", "protocols", "all", "inode1")
	t.Logf("wrong password: no iBGP session for 10 s, eBGP sessions untouched; BGPPeer status %d/%d; BIRD inode1:\n%s",
		p.Status.SessionsUp, p.Status.SessionsTotal, firstLines(out, 8))

	// The right password: up, with nothing else reset.
	sec, err := secrets.Get(ctx, "ibgp-md5", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"password": []byte(ibgpPassword)}
	fixed := time.Now()
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		if up, _ := birdUp(ctx, l, "inode"); slices.Equal(up, []string{"inode1"}) {
			break
		}
		if time.Since(fixed) > 30*time.Second {
			out, _ := l.RouterQuery(ctx, "bird", "show", "protocols", "all", "inode1")
			t.Fatalf("iBGP session not up 30 s after the password was fixed:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("iBGP session up %v after the Secret was fixed", time.Since(fixed).Round(time.Millisecond))
	if frr, _ := frrEstablished(ctx, l); len(frr) != 3 {
		t.Errorf("FRR sessions after the fix: %v", frr)
	}

	// local-pref: a pool for this peer only.
	labPool(t, l, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: ibgpPool}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"203.0.113.112/29"}, AutoAssign: ptr.To(false),
		Announce: heraldv1.Announce{BGP: &heraldv1.BGPAnnounce{BGPAdvertisement: heraldv1.BGPAdvertisement{Peers: []string{"bird-ibgp"}, LocalPref: ptr.To(uint32(250))}}},
	}})
	for _, n := range []string{"node1", "node2"} {
		if err := l.AddBackend(ctx, "default", "lpref", n); err != nil {
			t.Fatal(err)
		}
	}
	svc := lab.NewLBService("lpref", "lpref", 80)
	svc.Annotations = map[string]string{k8s.AnnotationPool: ibgpPool}
	if err := l.ApplyService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.DeleteService(context.Background(), "default", "lpref")
		for _, n := range []string{"node1", "node2"} {
			_ = l.RemoveBackend(context.Background(), "default", "lpref", n)
		}
	})
	addrs, err := l.WaitServing(ctx, "default", "lpref", 1)
	if err != nil {
		t.Fatal(err)
	}
	vip := addrs[0]
	var route string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		route, _ = l.RouterQuery(ctx, "bird", "show", "route", "table", "ibgp4", "for", vip.String(), "all")
		if strings.Contains(route, "BGP.local_pref") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(route, "BGP.local_pref: 250") {
		t.Errorf("BIRD's iBGP route to %s lacks local-pref 250:\n%s", vip, route)
	}
	t.Logf("BIRD (iBGP, table ibgp4) for %s:\n%s", vip, firstLines(route, 14))
	// Announced to bird-ibgp only: FRR and BIRD's eBGP table never get it.
	time.Sleep(time.Second)
	if gws, err := l.KernelRoute(ctx, "frr", host(vip)); err == nil && len(gws) > 0 {
		t.Errorf("FRR has a route to %s via %v; the pool names bird-ibgp only", vip, gws)
	}
	if out, _ := l.RouterQuery(ctx, "bird", "show", "route", "for", vip.String()); strings.Contains(out, vip.String()) {
		t.Errorf("BIRD's eBGP table has %s; the pool names bird-ibgp only:\n%s", vip, out)
	}
}

// TestBGPExternalIPs (issue 8 over BGP): a NodePort Service's externalIP
// inside an opt-in pool is announced over BGP by every node (Cluster) or
// only by nodes with an endpoint (Local), and the client behind the
// routers reaches it; one outside every opt-in pool is never announced
// and the Service says why.
func TestBGPExternalIPs(t *testing.T) {
	l := bgpLab(t)
	ctx := ctxFor(t, 3*time.Minute)
	labPool(t, l, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: extPoolBGP}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"203.0.113.96/28"}, AutoAssign: ptr.To(false), ExternalIPs: true,
		Announce: heraldv1.Announce{BGP: &heraldv1.BGPAnnounce{BGPAdvertisement: heraldv1.BGPAdvertisement{Peers: []string{"frr", "bird"}}}},
	}})
	mk := func(name, app string, ip netip.Addr, local bool, backends ...string) {
		t.Helper()
		for _, n := range backends {
			if err := l.AddBackend(ctx, "default", app, n); err != nil {
				t.Fatal(err)
			}
		}
		svc := lab.NewLBService(name, app, 80)
		svc.Spec.Type = corev1.ServiceTypeNodePort
		svc.Spec.ExternalIPs = []string{ip.String()}
		if local {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		if err := l.ApplyService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = l.DeleteService(context.Background(), "default", name)
			for _, n := range backends {
				_ = l.RemoveBackend(context.Background(), "default", app, n)
			}
		})
		if len(backends) > 0 {
			if err := l.WaitEndpoints(ctx, "default", name, len(backends)); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Cluster: every node announces it; ECMP at both routers.
	ext := netip.MustParseAddr("203.0.113.97")
	mk("bgp-ext-cluster", "bgpext", ext, false, "node1", "node2")
	all := nodeAddrs(l, false, l.Nodes()...)
	waitKernelRoute(t, l, "frr", ext, all, 15*time.Second)
	waitKernelRoute(t, l, "bird", ext, all, 15*time.Second)
	r := bgpReach(t, l, ext)
	t.Logf("externalIP %s (NodePort, Cluster): FRR and BIRD route via %v; client reached backend on %s", ext, all, r.Node)

	// Local: only node3, which has the endpoint; the client's source
	// address reaches the backend.
	local := netip.MustParseAddr("203.0.113.98")
	mk("bgp-ext-local", "bgpextlocal", local, true, "node3")
	only := nodeAddrs(l, false, "node3")
	waitKernelRoute(t, l, "frr", local, only, 15*time.Second)
	waitKernelRoute(t, l, "bird", local, only, 15*time.Second)
	r = bgpReach(t, l, local)
	if r.Node != "node3" {
		t.Errorf("externalIP %s (Local, endpoint on node3) answered by backend on %s", local, r.Node)
	}
	t.Logf("externalIP %s (NodePort, Local, endpoint on node3): routes via %v only; backend %s saw source %s", local, only, r.Node, r.Source)

	// Outside every opt-in pool (inside the client's routed range): an
	// Event, and no route anywhere.
	refused := netip.MustParseAddr("203.0.113.125")
	mk("bgp-ext-refused", "bgpext", refused, false)
	wantRefusedEvent(t, l, "bgp-ext-refused", refused)
	time.Sleep(2 * time.Second)
	for _, router := range []string{"frr", "bird"} {
		if gws, err := l.KernelRoute(ctx, router, host(refused)); err == nil && len(gws) > 0 {
			t.Errorf("%s has a route to %s via %v; it must not be announced", router, refused, gws)
		}
	}
	hcl := l.HTTPClient(l.Client(), time.Second)
	if r, err := lab.Get(ctx, hcl, refused, 80); err == nil {
		t.Errorf("client reached %s (backend %s); it must not be announced", refused, r.Node)
	} else {
		t.Logf("as expected, %s is unreachable: %v", refused, err)
	}
}
