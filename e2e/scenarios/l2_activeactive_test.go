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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/internal/k8s"
)

// Active-active layer 2 (docs/layer2-vs-bgp.md#several-addresses-per-service): a
// dual-stack Service with herald.dev/address-count "3" over three nodes
// has each slot (the i-th IPv4 and IPv6 address) answered over ARP and NDP
// by a different node, and the backends behind each answer from that
// node. When one node dies only its slot moves and the other addresses
// never go unanswered; when it returns, only that slot moves back.
//
// Which node received a request: the lab backend answers with its own
// node, which with externalTrafficPolicy Cluster may be any node (kube-proxy
// spreads the requests). So the first part runs the Service with Local and a
// backend on every node: a request never leaves the node that received it,
// and the backend's node is the announcing node. The eligible nodes are the
// same under Local (every node has an endpoint) and Cluster, so switching
// to Cluster for the failure moves nothing; from then on the owner is read
// from the neighbour MAC only. Cluster is needed for the failure: a Local
// Service's endpoints change when the dead node's Pods are marked not
// ready or restart, and a change of the eligible set may place the slots
// anew, which is not what this scenario measures.
func TestActiveActiveL2(t *testing.T) {
	l := theLab
	ctx := context.Background()
	const app = "aa"
	pool(t, aaPool, false, "198.51.100.240/29", "2001:db8:100::240/125")
	backends(t, app, l.Nodes()...)
	svc := lab.NewLBService(app, app, 80)
	svc.Annotations[k8s.AnnotationPool] = aaPool
	svc.Annotations[k8s.AnnotationAddressCount] = "3"
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	apply(t, svc)
	if err := l.WaitEndpoints(ctxFor(t, time.Minute), "default", app, len(l.Nodes())); err != nil {
		t.Fatal(err)
	}
	all, err := l.WaitServing(ctxFor(t, 30*time.Second), "default", app, 6)
	if err != nil {
		t.Fatal(err)
	}
	// Slots pair the addresses in status order, as the speakers do.
	var v4, v6 []netip.Addr
	for _, a := range all {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	if len(v4) != 3 || len(v6) != 3 {
		t.Fatalf("status.loadBalancer.ingress %v: want 3 IPv4 and 3 IPv6 addresses", all)
	}
	t.Logf("service %s: slots %v / %v", app, v4, v6)

	// 1. Three slots on three nodes, ARP and NDP agreeing.
	before := waitSlotOwners(t, v4, v6, 15*time.Second, func(o []string) bool { return distinctNodes(o) == 3 })
	if distinctNodes(before) != 3 {
		t.Fatalf("slots answered by %v; want three different nodes", before)
	}
	t.Logf("ARP/NDP owners by slot: %v", before)
	seen := map[string]bool{}
	for i := range v4 {
		for _, a := range []netip.Addr{v4[i], v6[i]} {
			for range 3 {
				r := reach(t, a)
				if r.Node != before[i] {
					t.Errorf("%s: answered by the backend on %s (Pod %s), want the announcing node %s (externalTrafficPolicy Local)", a, r.Node, r.Pod, before[i])
				}
				seen[r.Node] = true
			}
			t.Logf("client -> %s: backend on %s", a, before[i])
		}
	}
	if len(seen) != 3 {
		t.Errorf("the client's requests to the six addresses reached the nodes %v; want three", seen)
	}
	// heraldctl shows each address with its node.
	var problems []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		problems = nil
		for i := range v4 {
			problems = append(problems, heraldctlProblems(t, l, v4[i], "layer2", []string{before[i]})...)
			problems = append(problems, heraldctlProblems(t, l, v6[i], "layer2", []string{before[i]})...)
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("heraldctl status:\n%s", heraldctl(t, l, "status", "-n", "default"))

	// 2. Same eligible nodes under Cluster: nothing moves.
	patch := []byte(`{"spec":{"externalTrafficPolicy":"Cluster"}}`)
	if _, err := l.Kube.CoreV1().Services("default").Patch(ctx, app, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	victim := before[0]
	// The dead node's backend would otherwise still get a share of every
	// address's requests through kube-proxy, and their failures would say
	// nothing about the announcements.
	dropBackend(t, app, victim, len(l.Nodes())-1)
	if now := waitSlotOwners(t, v4, v6, 3*time.Second, func([]string) bool { return false }); !slices.Equal(now, before) {
		t.Fatalf("switching to externalTrafficPolicy Cluster and dropping a backend moved slots: %v -> %v", before, now)
	}
	for _, a := range all {
		settle(t, a)
	}

	// 3. The node of slot 0 dies; every other address is probed every 20 ms.
	others := slices.Concat(v4[1:], v6)
	stop := probeAll(others)
	revived := false
	t.Cleanup(func() {
		if !revived {
			if err := l.Revive(context.Background(), victim); err != nil {
				t.Errorf("reviving %s: %v", victim, err)
			}
		}
	})
	f, err := l.KillNode(ctx, victim, v4[0], 80)
	if err != nil {
		t.Fatal(err)
	}
	killed := stop()
	t.Logf("FAILOVER: %s (slot 0) died; the client reached %s through %s after %v (%d of %d probes at 10 ms failed: %v)",
		victim, v4[0], f.NewOwner, f.Took.Round(time.Millisecond), f.Failed, f.Probes, f.Errors)
	if f.Took > 5*time.Second {
		t.Errorf("failover took %v; the target (docs/design.md#targets) is a median ≤ 0.5 s and worst ≤ 1 s", f.Took)
	}
	for _, a := range others {
		s := killed[a]
		if a == v6[0] {
			t.Logf("FAILOVER %s (slot 0, IPv6): %d of %d probes at 20 ms failed, unanswered for %v", a, s.failed, s.total, s.outage.Round(time.Millisecond))
			continue
		}
		t.Logf("NODE LOSS %s: %d of %d probes at 20 ms failed, %d reset", a, s.failed, s.total, s.resets)
		if s.failed > 0 || s.resets > 0 {
			t.Errorf("%s (not on %s) went unanswered %d times (%d resets) while %s died; want never", a, victim, s.failed, s.resets, victim)
		}
	}
	during := waitSlotOwners(t, v4, v6, 10*time.Second, func(o []string) bool { return o[0] != victim && o[0] != "" })
	t.Logf("owners with %s dead: %v (before %v)", victim, during, before)
	for i := range before {
		switch {
		case i == 0 && (during[0] == victim || during[0] == ""):
			t.Errorf("slot 0 still on %q after %s died", during[0], victim)
		case i > 0 && during[i] != before[i]:
			t.Errorf("slot %d moved from %s to %s when %s died; only slot 0 may move", i, before[i], during[i], victim)
		}
	}

	// 4. It returns: at most its slot moves back.
	stop = probeAll(all)
	if err := l.Revive(ctx, victim); err != nil {
		t.Fatal(err)
	}
	revived = true
	after := waitSlotOwners(t, v4, v6, 20*time.Second, func(o []string) bool { return o[0] == victim })
	time.Sleep(2 * time.Second) // a late second move would show in the owners and the probes
	final := waitSlotOwners(t, v4, v6, 5*time.Second, func(o []string) bool { return slices.Equal(o, after) })
	returned := stop()
	moved := 0
	for i := range final {
		if final[i] != during[i] {
			moved++
		}
	}
	t.Logf("RETURN of %s: owners %v -> %v, %d slot(s) (%d addresses) moved; before the loss %v", victim, during, final, moved, 2*moved, before)
	for _, a := range all {
		s := returned[a]
		t.Logf("RETURN %s: %d of %d probes at 20 ms failed, %d reset", a, s.failed, s.total, s.resets)
		if s.failed > 0 && a != v4[0] && a != v6[0] {
			t.Errorf("%s (not returning to %s) went unanswered %d times; want never", a, victim, s.failed)
		}
	}
	if moved > 1 {
		t.Errorf("%d slots moved when %s returned; want at most one", moved, victim)
	}
	if !slices.Equal(final, before) {
		t.Errorf("owners after %s returned %v, before it died %v; want them back", victim, final, before)
	}
}

// slotOwner is the one node answering ARP for the IPv4 address and NDP
// for the IPv6 address of a slot, or an error saying why there is none.
func slotOwner(ctx context.Context, v4, v6 netip.Addr) (string, error) {
	l := theLab
	nodeOf := func(a netip.Addr, macs []string, err error) (string, error) {
		slices.Sort(macs)
		if macs = slices.Compact(macs); len(macs) != 1 {
			return "", fmt.Errorf("%s answered by %v (%v)", a, macs, err)
		}
		n := l.NodeByMAC(ctx, macs[0])
		if n == "" {
			return "", fmt.Errorf("%s answered by %s, no node's MAC", a, macs[0])
		}
		return n, nil
	}
	macs, err := l.ARPReplies(ctx, l.Client(), v4, 2)
	n4, err := nodeOf(v4, macs, err)
	if err != nil {
		return "", err
	}
	macs, err = l.NDPReplies(ctx, l.Client(), v6)
	n6, err := nodeOf(v6, macs, err)
	if err != nil {
		return "", err
	}
	if n4 != n6 {
		return "", fmt.Errorf("slot %s/%s split: ARP from %s, NDP from %s", v4, v6, n4, n6)
	}
	return n4, nil
}

// waitSlotOwners reads the owners of every slot until done says they are
// what the caller waits for, or d passes; it returns the last reading
// ("" for a slot without a single owner, logged).
func waitSlotOwners(t *testing.T, v4, v6 []netip.Addr, d time.Duration, done func([]string) bool) []string {
	t.Helper()
	var owners []string
	var errs []string
	for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		owners, errs = make([]string, len(v4)), nil
		for i := range v4 {
			o, err := slotOwner(context.Background(), v4[i], v6[i])
			if err != nil {
				errs = append(errs, err.Error())
			}
			owners[i] = o
		}
		if (len(errs) == 0 && done(owners)) || time.Now().After(deadline) {
			break
		}
	}
	if len(errs) > 0 {
		t.Logf("slot owners %v: %s", owners, strings.Join(errs, "; "))
	}
	return owners
}

func distinctNodes(owners []string) int {
	return len(slices.Compact(slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(owners), func(s string) bool { return s == "" })))))
}

// probeStats counts one address's probes.
type probeStats struct {
	failed, resets, total int
	// outage is from the first failed probe's sending to the answer of
	// the first probe after it that succeeded.
	outage time.Duration
}

// probeAll requests every address of addrs every 20 ms from the client
// until the returned stop is called, which returns each address's figures.
func probeAll(addrs []netip.Addr) (stop func() map[netip.Addr]probeStats) {
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		addr   netip.Addr
		probes []lab.Probe
	}
	res := make(chan result, len(addrs))
	for _, a := range addrs {
		go func() {
			res <- result{a, theLab.ProbeEvery(ctx, theLab.Client(), a, 80, 20*time.Millisecond, time.Second)}
		}()
	}
	return func() map[netip.Addr]probeStats {
		cancel()
		out := map[netip.Addr]probeStats{}
		for range addrs {
			r := <-res
			var s probeStats
			var firstFail time.Time
			for _, p := range r.probes {
				s.total++
				switch {
				case p.Err == nil:
					if !firstFail.IsZero() && s.outage == 0 {
						s.outage = p.Sent.Add(p.Took).Sub(firstFail)
					}
				case strings.Contains(p.Err.Error(), "connection reset by peer"):
					s.resets++
				default:
					s.failed++
					if firstFail.IsZero() {
						firstFail = p.Sent
					}
				}
			}
			out[r.addr] = s
		}
		return out
	}
}
