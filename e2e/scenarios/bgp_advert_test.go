//go:build privileged

package scenarios

import (
	"context"
	"fmt"
	"maps"
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

// advPool is the pool of TestBGPAdvertisementsPerPeerAndNode, inside the
// range the client routes through the routers (203.0.113.64/26).
const advPool = "bgp-adv" // 203.0.113.120/29

// TestBGPAdvertisementsPerPeerAndNode (#18 item 1): one pool, four
// advertisements, one prefix. FRR gets it from every node with one pair
// of communities, BIRD's eBGP side from every node with another
// community, and BIRD's iBGP side (a peer chosen by label) from node1
// with local-pref 300 and from node2 with local-pref 200, never from
// node3, which has the session but no advertisement for it. Changing one
// advertisement's communities reaches only its peer, with no session
// reset anywhere; removing it withdraws the prefix from that peer only.
func TestBGPAdvertisementsPerPeerAndNode(t *testing.T) {
	l := bgpLab(t)
	ctx := ctxFor(t, 4*time.Minute)
	hc, err := versioned.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	secrets := l.Kube.CoreV1().Secrets("herald-system")
	if _, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "rr-md5"},
		StringData: map[string]string{"password": ibgpPassword},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), "rr-md5", metav1.DeleteOptions{}) })
	peer := &heraldv1.BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "rr-bird", Labels: map[string]string{"role": "reflector"}},
		Spec: heraldv1.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64512, PeerAddress: ibgpAddr,
			HoldTime: &metav1.Duration{Duration: 3 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second},
			PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "rr-md5", Key: "password"},
		},
	}
	if _, err := hc.HeraldV1alpha1().BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hc.HeraldV1alpha1().BGPPeers().Delete(context.Background(), "rr-bird", metav1.DeleteOptions{})
	})
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if up, _ := birdUp(ctx, l, "inode"); len(up) == 3 {
			break
		}
		if time.Since(start) > 30*time.Second {
			out, _ := l.RouterQuery(ctx, "bird", "show", "protocols")
			t.Fatalf("BIRD's iBGP sessions not all up 30 s after BGPPeer rr-bird:\n%s", out)
		}
	}

	onNode := func(n string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": n}}
	}
	reflectors := &metav1.LabelSelector{MatchLabels: map[string]string{"role": "reflector"}}
	pool := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: advPool}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"203.0.113.120/29"}, AutoAssign: ptr.To(false),
		Announce: heraldv1.Announce{BGP: &heraldv1.BGPAnnounce{
			BGPAdvertisement: heraldv1.BGPAdvertisement{
				Peers: []string{"frr"}, Communities: []string{"64512:110"}, LargeCommunities: []string{"64512:11:1"},
			},
			Advertisements: []heraldv1.NamedBGPAdvertisement{
				{Name: "to-bird", BGPAdvertisement: heraldv1.BGPAdvertisement{Peers: []string{"bird"}, Communities: []string{"64512:120"}}},
				{Name: "rr-node1", BGPAdvertisement: heraldv1.BGPAdvertisement{
					PeerSelector: reflectors, NodeSelector: onNode("node1"), LocalPref: ptr.To(uint32(300)), Communities: []string{"64512:131"},
				}},
				{Name: "rr-node2", BGPAdvertisement: heraldv1.BGPAdvertisement{
					PeerSelector: reflectors, NodeSelector: onNode("node2"), LocalPref: ptr.To(uint32(200)), Communities: []string{"64512:132"},
				}},
			},
		}},
	}}
	labPool(t, l, pool)
	for _, n := range []string{"node1", "node2"} {
		if err := l.AddBackend(ctx, "default", "adv", n); err != nil {
			t.Fatal(err)
		}
	}
	svc := lab.NewLBService("adv", "adv", 80)
	svc.Annotations = map[string]string{k8s.AnnotationPool: advPool}
	if err := l.ApplyService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.DeleteService(context.Background(), "default", "adv")
		for _, n := range []string{"node1", "node2"} {
			_ = l.RemoveBackend(context.Background(), "default", "adv", n)
		}
	})
	addrs, err := l.WaitServing(ctx, "default", "adv", 1)
	if err != nil {
		t.Fatal(err)
	}
	vip := addrs[0]
	nodeAddr := map[string]string{}
	for _, n := range []string{"node1", "node2", "node3"} {
		nodeAddr[l.Node(n).Address.String()] = n
	}

	// Each router's view, by announcing node: "c=<communities> l=<large>
	// lp=<local-pref>" (local-pref read on the iBGP side only).
	type views struct{ frr, bird, ibgp map[string]string }
	read := func() views {
		v := views{frr: map[string]string{}}
		for _, p := range frrPaths(t, l, vip) {
			v.frr[nodeAddr[p.Peer.PeerID]] = fmt.Sprintf("c=%s l=%s", p.Community.String, p.LargeCommunity.String)
		}
		v.bird = birdAttrs(t, l, "master4", vip)
		v.ibgp = birdAttrs(t, l, "ibgp4", vip)
		return v
	}
	want := views{
		frr:  map[string]string{"node1": "c=64512:110 l=64512:11:1", "node2": "c=64512:110 l=64512:11:1", "node3": "c=64512:110 l=64512:11:1"},
		bird: map[string]string{"node1": "c=(64512,120) l=", "node2": "c=(64512,120) l=", "node3": "c=(64512,120) l="},
		ibgp: map[string]string{"inode1": "c=(64512,131) l= lp=300", "inode2": "c=(64512,132) l= lp=200"},
	}
	same := func(a, b views) bool {
		return maps.Equal(a.frr, b.frr) && maps.Equal(a.bird, b.bird) && maps.Equal(a.ibgp, b.ibgp)
	}
	// waitViews returns when the views first matched.
	waitViews := func(what string, want views) time.Time {
		t.Helper()
		start := time.Now()
		var got views
		for time.Since(start) < 20*time.Second {
			if got = read(); same(got, want) {
				return time.Now()
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: routers' views after 20 s:\n FRR  %v\n BIRD %v\n iBGP %v\nwant:\n FRR  %v\n BIRD %v\n iBGP %v",
			what, got.frr, got.bird, got.ibgp, want.frr, want.bird, want.ibgp)
		return time.Time{}
	}
	waitViews("four advertisements of "+vip.String(), want)
	best, _ := l.RouterQuery(ctx, "bird", "show", "route", "table", "ibgp4", "for", vip.String(), "all")
	t.Logf("%s: FRR %v; BIRD eBGP %v; BIRD iBGP %v\nBIRD's iBGP table:\n%s", vip, want.frr, want.bird, want.ibgp, firstLines(best, 24))
	// BIRD lists the best route first.
	if _, first, _ := strings.Cut(best, "unicast ["); !strings.HasPrefix(first, "inode1 ") {
		t.Errorf("BIRD's best iBGP route to %s is not node1's (local-pref 300):\n%s", vip, best)
	}

	// Sessions as they are now: nothing below may reset one.
	type sess struct {
		frr  map[string]int
		bird map[string]string
	}
	sessions := func() sess {
		s := sess{frr: map[string]int{}, bird: map[string]string{}}
		for _, n := range []string{"node1", "node2", "node3"} {
			s.frr[n] = frrSession(t, l, l.Node(n).Address).Established
			s.bird["node"+n[4:]] = birdSince(t, l, "node"+n[4:])
			s.bird["inode"+n[4:]] = birdSince(t, l, "inode"+n[4:])
		}
		return s
	}
	before := sessions()

	// One advertisement's communities change: only BIRD's eBGP side sees it.
	pool.Spec.Announce.BGP.Advertisements[0].Communities = []string{"64512:121"}
	changed := time.Now()
	if err := l.ApplyPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	want.bird = map[string]string{"node1": "c=(64512,121) l=", "node2": "c=(64512,121) l=", "node3": "c=(64512,121) l="}
	seen := waitViews("to-bird's communities changed", want)
	t.Logf("to-bird's community changed 64512:120 -> 64512:121: BIRD's eBGP routes from all three nodes carry it %v after the update (polled every 100 ms); FRR's and the iBGP side's unchanged",
		seen.Sub(changed).Round(time.Millisecond))

	// The advertisement goes: BIRD's eBGP side loses the prefix, the
	// others keep theirs.
	pool.Spec.Announce.BGP.Advertisements = slices.Delete(pool.Spec.Announce.BGP.Advertisements, 0, 1)
	if err := l.ApplyPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	want.bird = map[string]string{}
	waitViews("to-bird removed", want)
	if gws, _ := l.KernelRoute(ctx, "bird", host(vip)); len(gws) > 0 {
		t.Errorf("BIRD's kernel still routes %s via %v after to-bird was removed", vip, gws)
	}
	if gws, _ := l.KernelRoute(ctx, "frr", host(vip)); len(gws) != 3 {
		t.Errorf("FRR's kernel routes %s via %v after to-bird was removed; want all three nodes", vip, gws)
	}
	if after := sessions(); !maps.Equal(before.frr, after.frr) || !maps.Equal(before.bird, after.bird) {
		t.Errorf("sessions reset by the advertisement changes:\n before %v\n after  %v", before, after)
	} else {
		t.Logf("no session reset: FRR connections established %v, BIRD state-change times %v", after.frr, after.bird)
	}
}

// birdAttrs reads BIRD's routes to addr in table, by protocol: the
// communities, large communities and (on iBGP) local-pref of each.
func birdAttrs(t *testing.T, l *lab.Lab, table string, addr netip.Addr) map[string]string {
	t.Helper()
	out, err := l.RouterQuery(context.Background(), "bird", "show", "route", "table", table, "for", host(addr).String(), "all")
	if err != nil && !strings.Contains(out+err.Error(), "Network not found") {
		t.Fatal(err)
	}
	type attrs struct{ c, l, lp string }
	got := map[string]*attrs{}
	var cur *attrs
	for line := range strings.Lines(out) {
		// A route starts with "<prefix> unicast [proto ..." or, for the
		// next routes of the prefix, with "unicast [proto ...".
		if _, rest, ok := strings.Cut(line, "unicast ["); ok {
			proto, _, _ := strings.Cut(rest, " ")
			cur = &attrs{}
			got[proto] = cur
			continue
		}
		if cur == nil {
			continue
		}
		f := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(f, "BGP.community:"):
			cur.c = strings.TrimSpace(strings.TrimPrefix(f, "BGP.community:"))
		case strings.HasPrefix(f, "BGP.large_community:"):
			cur.l = strings.TrimSpace(strings.TrimPrefix(f, "BGP.large_community:"))
		case strings.HasPrefix(f, "BGP.local_pref:"):
			cur.lp = strings.TrimSpace(strings.TrimPrefix(f, "BGP.local_pref:"))
		}
	}
	m := map[string]string{}
	for proto, a := range got {
		s := fmt.Sprintf("c=%s l=%s", a.c, a.l)
		if table != "master4" {
			s += " lp=" + a.lp
		}
		m[proto] = s
	}
	return m
}
