//go:build privileged

package scenarios

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/k8s"
)

// Shared addresses (herald.dev/share, docs/sharing.md): two Services with one
// sharing key and different ports get one address, reachable on both
// ports; a third with the same key but a colliding port gets another.
func TestSharedAddresses(t *testing.T) {
	pool(t, sharePool, false, "198.51.100.208/30")
	backends(t, "shared", theLab.Nodes()...)
	mk := func(name string, port int32) {
		svc := lab.NewLBService(name, "shared", port)
		svc.Annotations[k8s.AnnotationPool] = sharePool
		svc.Annotations[k8s.AnnotationShare] = "web"
		apply(t, svc)
	}
	mk("share-a", 80)
	mk("share-b", 81)
	a, b := ingress(t, "share-a"), ingress(t, "share-b")
	if a != b {
		t.Fatalf("share-a got %s, share-b got %s; same sharing key and distinct ports must share one address", a, b)
	}
	mk("share-c", 80)
	c := ingress(t, "share-c")
	if c == a {
		t.Fatalf("share-c (port 80, like share-a) got the shared address %s; a colliding port must get another", c)
	}
	if err := theLab.WaitEndpoints(ctxFor(t, 30*time.Second), "default", "share-a", len(theLab.Nodes())); err != nil {
		t.Fatal(err)
	}
	ra, rb, rc := reachPort(t, a, 80), reachPort(t, a, 81), reachPort(t, c, 80)
	t.Logf("share-a %s:80 (backend %s), share-b %s:81 (backend %s), share-c %s:80 (backend %s); ARP owner of %s: %s, of %s: %s",
		a, ra.Node, b, rb.Node, c, rc.Node, a, owner(t, a), c, owner(t, c))
	// The shared address answers nothing on a port none of its Services has.
	hc := theLab.HTTPClient(theLab.Client(), time.Second)
	if r, err := lab.Get(context.Background(), hc, a, 82); err == nil {
		t.Errorf("%s:82 answered (backend %s); no Service has that port", a, r.Node)
	}
}

// Pool edits and deletion (docs/pools.md): shrinking a pool keeps the address in
// use (InUseOutsideSpec=True), deleting the pool leaves it Terminating
// while the address is in use, and the client reaches the Service all
// along; deleting the Service lets the pool go.
func TestPoolShrinkAndDelete(t *testing.T) {
	pool(t, editPool, false, "198.51.100.212/30")
	backends(t, "pooledit", theLab.Nodes()...)
	svc := lab.NewLBService("pooledit", "pooledit", 80)
	svc.Annotations[k8s.AnnotationPool] = editPool
	svc.Annotations[k8s.AnnotationIPs] = "198.51.100.212"
	apply(t, svc)
	vip := ingress(t, "pooledit")
	if vip != netip.MustParseAddr("198.51.100.212") {
		t.Fatalf("pooledit got %s, asked for 198.51.100.212", vip)
	}
	if err := theLab.WaitEndpoints(ctxFor(t, 30*time.Second), "default", "pooledit", len(theLab.Nodes())); err != nil {
		t.Fatal(err)
	}
	reach(t, vip)
	before := owner(t, vip)
	stop := probing(t, vip)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	// The client's neighbour cache would hide a short withdrawal from the
	// requests: ask ARP every 10 ms too and look for gaps in the answers.
	w, err := theLab.WatchARP(theLab.Client(), vip, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	time.Sleep(200 * time.Millisecond)
	ctx := ctxFor(t, 2*time.Minute)

	// Shrink: .212 is no longer in spec.addresses.
	shrunk := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: editPool},
		Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.214/31"}, AutoAssign: ptr.To(false)}}
	announcedBefore := announcedSince(t, vip)
	shrinkAt := time.Now()
	if err := theLab.ApplyPool(ctx, shrunk); err != nil {
		t.Fatal(err)
	}
	p, err := theLab.WaitPool(ctx, editPool, 15*time.Second, func(p *heraldv1.IPPool) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionInUseOutsideSpec)
		return c != nil && c.ObservedGeneration == p.Generation && c.Status == metav1.ConditionTrue
	})
	if err != nil {
		t.Fatalf("IPPool %s never reported InUseOutsideSpec=True after shrinking: %v (status %+v)", editPool, err, p.Status)
	}
	c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionInUseOutsideSpec)
	t.Logf("shrunk to 198.51.100.214/31: InUseOutsideSpec=%s (%s: %s)", c.Status, c.Reason, c.Message)
	time.Sleep(time.Second)
	if got := statusAddrs(t, "pooledit"); !slices.Equal(got, []string{vip.String()}) {
		t.Errorf("after the shrink pooledit has %v, want %s kept", got, vip)
	}
	// A withdrawal, however short (the client's neighbour cache hides it
	// from the requests), restarts the announcement: its "since" moves.
	afterShrink := announcedSince(t, vip)
	if afterShrink != announcedBefore {
		t.Errorf("announcement of %s was withdrawn and made again when its pool shrank: %s before, %s after", vip, announcedBefore, afterShrink)
	}
	r := reach(t, vip)
	t.Logf("after the shrink the client reaches %s (backend %s), ARP owner %s (was %s)", vip, r.Node, owner(t, vip), before)

	// Delete the pool while its address is in use: Terminating, held by
	// herald's finalizer, the address still answered.
	deleteAt := time.Now()
	if err := theLab.DeletePool(ctx, editPool); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	p, err = theLab.GetPool(ctx, editPool)
	if err != nil {
		t.Fatalf("IPPool %s gone 3 s after deletion while its address is in use: %v", editPool, err)
	}
	if p.DeletionTimestamp == nil || !slices.Contains(p.Finalizers, "herald.dev/pool-protection") {
		t.Errorf("IPPool %s: deletionTimestamp %v, finalizers %v; want Terminating with herald.dev/pool-protection", editPool, p.DeletionTimestamp, p.Finalizers)
	}
	if rc := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionReady); rc != nil {
		t.Logf("Terminating pool: Ready=%s (%s: %s)", rc.Status, rc.Reason, rc.Message)
	}
	if got := statusAddrs(t, "pooledit"); !slices.Equal(got, []string{vip.String()}) {
		t.Errorf("with its pool Terminating pooledit has %v, want %s kept", got, vip)
	}
	r = reach(t, vip)
	t.Logf("pool Terminating: the client reaches %s (backend %s), ARP owner %s", vip, r.Node, owner(t, vip))
	failed, resets, total := stop()
	stopped = true
	seen := w.Seen()
	var gap time.Duration
	var gapAt time.Time
	macs := map[string]bool{}
	for i, s := range seen {
		macs[s.MAC] = true
		if i > 0 && s.At.Sub(seen[i-1].At) > gap {
			gap, gapAt = s.At.Sub(seen[i-1].At), seen[i-1].At
		}
	}
	t.Logf("ARP for %s asked every 10 ms across shrink (%s) and deletion (%s): %d answers from %d MAC(s), longest silence %v (from %s)",
		vip, shrinkAt.Format("15:04:05.000"), deleteAt.Format("15:04:05.000"), len(seen), len(macs), gap.Round(time.Millisecond), gapAt.Format("15:04:05.000"))
	if gap > 100*time.Millisecond || len(macs) != 1 {
		// On a loaded machine the whole lab stalls now and then (memberlist
		// logs failed pings at such moments): reported, not failed; the
		// announcement check above catches herald withdrawing it.
		t.Logf("NOTE: ARP answers for %s paused %v or came from %d MACs", vip, gap.Round(time.Millisecond), len(macs))
		if len(macs) != 1 {
			keepLogs(t)
		}
	}
	if after := announcedSince(t, vip); after != afterShrink {
		t.Errorf("announcement of %s was withdrawn and made again while its pool was Terminating: %s before, %s after", vip, afterShrink, after)
	}
	t.Logf("POOL EDITS: %d of %d requests at 20 ms failed, %d reset, across shrink and deletion", failed, total, resets)
	// A reset is a request in flight when the client's neighbour entry
	// moved (see TestGracefulSpeakerRestart): only a memberlist flap on a
	// starved machine moves the owner here, which is not what this tests.
	if failed > 0 || resets > 1 {
		t.Errorf("%d requests failed and %d were reset while the pool shrank and was deleted; want none (the address never moves)", failed, resets)
	}

	// Deleting the Service releases the address: the pool goes.
	if err := theLab.DeleteService(ctx, "default", "pooledit"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := theLab.WaitPoolGone(ctx, editPool, 30*time.Second); err != nil {
		t.Fatalf("IPPool %s still there 30 s after its last Service was deleted: %v", editPool, err)
	}
	t.Logf("IPPool %s gone %v after its last Service was deleted", editPool, time.Since(start).Round(time.Millisecond))
}

// Bad input is surfaced (docs/reference.md): a CIDR with host bits is refused by
// the API server's CEL rule, and a Service asking for an address outside
// every pool gets a Warning Event and no address while others keep theirs.
func TestBadInput(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	bad := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "more-hostbits"},
		Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.225/28"}}}
	err := theLab.ApplyPool(ctx, bad)
	if err == nil {
		_ = theLab.DeletePool(ctx, bad.Name)
		t.Fatal("IPPool with 198.51.100.225/28 (host bits set) was accepted; the schema must refuse it")
	}
	if msg := err.Error(); !strings.Contains(msg, "CIDR 198.51.100.225/28 has host bits set; did you mean 198.51.100.224/28?") {
		t.Errorf("API server refused the bad CIDR, but not with the CEL message: %v", err)
	} else {
		t.Logf("refused by the API server: %v", err)
	}

	pool(t, badPool, false, "198.51.100.224/30")
	backends(t, "badin", theLab.Nodes()...)
	good := lab.NewLBService("badin-good", "badin", 80)
	good.Annotations[k8s.AnnotationPool] = badPool
	apply(t, good)
	vip := ingress(t, "badin-good")
	if err := theLab.WaitEndpoints(ctx, "default", "badin-good", len(theLab.Nodes())); err != nil {
		t.Fatal(err)
	}
	reach(t, vip)

	outside := lab.NewLBService("badin-outside", "badin", 80)
	outside.Annotations[k8s.AnnotationIPs] = "203.0.113.77"
	apply(t, outside)
	ev, err := theLab.WaitServiceEvent(ctx, "default", "badin-outside", "AllocationFailed", 15*time.Second, "NotInPool", "203.0.113.77")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != corev1.EventTypeWarning {
		t.Errorf("AllocationFailed Event is %s, want Warning", ev.Type)
	}
	t.Logf("Event on badin-outside: %s %s: %s", ev.Type, ev.Reason, ev.Message)
	time.Sleep(time.Second)
	if got := statusAddrs(t, "badin-outside"); len(got) > 0 {
		t.Errorf("badin-outside got %v; an address outside every pool must get none", got)
	}
	unreachable(t, netip.MustParseAddr("203.0.113.77"), 80)
	if got := statusAddrs(t, "badin-good"); !slices.Equal(got, []string{vip.String()}) {
		t.Errorf("badin-good has %v, want %s unchanged", got, vip)
	}
	r := reach(t, vip)
	t.Logf("badin-good %s still reached (backend %s)", vip, r.Node)
}

// externalIPs (docs/pools.md, docs/security.md): an externalIP inside an
// opt-in pool is announced over layer 2 (with Local, only by a node with
// an endpoint); one outside every opt-in pool is never announced and the
// Service says why.
func TestExternalIPs(t *testing.T) {
	pool(t, extPool, true, "198.51.100.216/29")
	nodes := theLab.Nodes()
	backends(t, "extip", nodes...)
	mk := func(name, app, ip string, local bool) *corev1.Service {
		svc := lab.NewLBService(name, app, 80)
		svc.Spec.Type = corev1.ServiceTypeNodePort
		svc.Spec.ExternalIPs = []string{ip}
		if local {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		apply(t, svc)
		return svc
	}
	ctx := ctxFor(t, 2*time.Minute)

	// Cluster: any node may announce it; one does.
	mk("ext-cluster", "extip", "198.51.100.217", false)
	if err := theLab.WaitEndpoints(ctx, "default", "ext-cluster", len(nodes)); err != nil {
		t.Fatal(err)
	}
	ext := netip.MustParseAddr("198.51.100.217")
	r := reachPort(t, ext, 80)
	t.Logf("externalIP %s:80 (NodePort, Cluster) reached, backend %s, ARP owner %s", ext, r.Node, owner(t, ext))
	if got := statusAddrs(t, "ext-cluster"); len(got) > 0 {
		t.Errorf("NodePort Service ext-cluster got load-balancer status %v", got)
	}

	// Local: only the node with the endpoint answers ARP, and follows it.
	local := netip.MustParseAddr("198.51.100.218")
	first := nodes[len(nodes)-1]
	backends(t, "extlocal", first)
	mk("ext-local", "extlocal", local.String(), true)
	if err := theLab.WaitEndpoints(ctx, "default", "ext-local", 1); err != nil {
		t.Fatal(err)
	}
	r = reachPort(t, local, 80)
	if own := owner(t, local); own != first || r.Node != first {
		t.Errorf("externalIP %s (Local, endpoint on %s only): ARP owner %s, answered by backend on %s", local, first, own, r.Node)
	}
	client := theLab.Node(theLab.Client()).Address.String()
	if r.Source != client {
		t.Errorf("backend saw source %s, want the client's %s (Local)", r.Source, client)
	}
	second := nodes[0]
	if err := theLab.AddBackend(ctx, "default", "extlocal", second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = theLab.RemoveBackend(context.Background(), "default", "extlocal", second) })
	if err := theLab.RemoveBackend(ctx, "default", "extlocal", first); err != nil {
		t.Fatal(err)
	}
	if err := theLab.WaitEndpoints(ctx, "default", "ext-local", 1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if macs, _ := theLab.ARPReplies(ctx, theLab.Client(), local, 1); len(macs) == 1 && theLab.NodeByMAC(ctx, macs[0]) == second {
			break
		}
	}
	own := owner(t, local)
	if own != second {
		t.Errorf("endpoint of ext-local moved %s -> %s, but %s answers ARP for %s", first, second, own, local)
	}
	r = reachPort(t, local, 80)
	t.Logf("externalIP %s (Local): endpoint %s -> %s, ARP owner %s, backend %s, source %s", local, first, second, own, r.Node, r.Source)

	// Outside every opt-in pool: never announced, and the Service says why.
	refused := netip.MustParseAddr("198.51.100.230")
	mk("ext-refused", "extip", refused.String(), false)
	wantRefusedEvent(t, theLab, "ext-refused", refused)
	unreachable(t, refused, 80)
	// The accepted ones are unaffected.
	reachPort(t, ext, 80)
}

// announcedSince returns "node since" of the one layer-2 announcement of
// addr in the Speaker objects, waiting up to 10 s for one to appear.
func announcedSince(t *testing.T, addr netip.Addr) string {
	t.Helper()
	hc, err := theLab.Herald()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		sps, err := hc.HeraldV1alpha1().Speakers().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			continue
		}
		found = found[:0]
		for _, sp := range sps.Items {
			for _, a := range sp.Status.Announcements {
				if a.Address == addr.String() && a.Protocol == "layer2" {
					found = append(found, sp.Name+" "+a.Since.UTC().Format(time.RFC3339))
				}
			}
		}
		if len(found) == 1 {
			return found[0]
		}
	}
	t.Fatalf("want exactly one layer-2 announcement of %s in the Speaker objects, found %v", addr, found)
	return ""
}

// keepLogs copies the lab's process logs (removed with the lab) to a
// directory that stays, for a failure's diagnosis.
func keepLogs(t *testing.T) {
	t.Helper()
	dir, err := os.MkdirTemp("", "herald-e2e-logs-")
	if err != nil {
		return
	}
	files, _ := filepath.Glob(filepath.Join(theLab.StateDir, "logs", "*.log"))
	for _, f := range files {
		if raw, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(f)), raw, 0o644)
		}
	}
	t.Logf("lab logs kept in %s", dir)
}
