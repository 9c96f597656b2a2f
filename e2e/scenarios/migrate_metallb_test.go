//go:build privileged

package scenarios

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/internal/ctl"
	"github.com/heraldlb/herald/internal/election"
)

// The MetalLB configuration of the migration lab: a layer-2 pool on the
// node segment and a BGP pool routed to FRR and BIRD, as a MetalLB user
// of the same network would write them (no keepaliveTime or connectTime:
// MetalLB's native BGP refuses both; it keeps alive at a third of the hold
// time).
const metallbConfig = `
apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: v1
kind: Secret
metadata: {name: bird-md5, namespace: metallb-system}
type: kubernetes.io/basic-auth
stringData: {password: ` + bgpPassword + `}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [198.51.100.192/27]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec:
  ipAddressPools: [lan]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: metallb-system}
spec:
  addresses: [203.0.113.64/27]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: metallb-system}
spec:
  ipAddressPools: [routed]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: frr, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.51.100.1
  holdTime: 3s
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: bird, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64514
  peerAddress: 198.51.100.254
  holdTime: 3s
  passwordSecret: {name: bird-md5, namespace: metallb-system}
`

// cutoverLabel marks a node whose BGP sessions herald has taken over:
// herald's BGPPeers select the nodes that carry it.
const cutoverLabel = "migration.example/bgp"

// TestMetalLBCutover follows docs/migrating-from-metallb.md#cut-over in a
// lab where MetalLB's own controller and speakers (the release pinned by
// hack/metallbbin.sh) serve a layer-2 and a BGP Service, with herald
// installed beside them through the beside-metallb component:
//
//  1. heraldctl import-metallb --hold converts MetalLB's objects; herald
//     adopts the Services' addresses and announces nothing.
//  2. Layer 2, per pool: the pool's hold is released (herald's owner
//     answers and sends gratuitous ARP), then MetalLB's L2Advertisement
//     is deleted. An ARP prober on the segment counts the requests nobody
//     answered.
//  3. BGP, per node: MetalLB's speaker on the node stops (its DaemonSet no
//     longer selects the node), and the node gets the label herald's
//     BGPPeers select. The routers' next hops are polled: the gap of each
//     node's next hop and whether the prefix was ever without a route.
//
// A client behind the routers requests both Services every 10 ms all
// along; it reaches the layer-2 address through FRR, whose neighbour
// entry is what the ARP takeover moves.
func TestMetalLBCutover(t *testing.T) {
	if !lab.KubeletFromEnv() {
		t.Skipf("TestMetalLBCutover needs kubelet nodes and %s=process runs none: MetalLB's speakers find each other through their Pods", lab.ModeEnv)
	}
	mlbDir := metallbBinaries(t)
	l := migrationLab(t)
	ctx := ctxFor(t, 15*time.Minute)

	// MetalLB, as processes in the lab's namespaces. Each speaker reads
	// its own Pod, and the speakers find each other (memberlist, port
	// 7946, encrypted) through their Pods' labels and addresses: a
	// host-network Pod per node stands for the speaker's, holding only the
	// pause image.
	if out, err := l.Kubectl(ctx, "apply", "--server-side", "-f", metallbCRDs(t, mlbDir)); err != nil {
		t.Fatalf("installing MetalLB's CRDs: %v\n%s", err, out)
	}
	if out, err := l.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/ipaddresspools.metallb.io",
		"crd/bgppeers.metallb.io", "crd/l2advertisements.metallb.io", "crd/bgpadvertisements.metallb.io"); err != nil {
		t.Fatalf("MetalLB's CRDs not established: %v\n%s", err, out)
	}
	applyYAML(t, l, metallbConfig)
	env := []string{"METALLB_BGP_TYPE=native"}
	if _, err := l.StartProcess("cp", "metallb-controller", env, filepath.Join(mlbDir, "controller"),
		"--kubeconfig", l.Kubeconfig, "--namespace", "metallb-system", "--webhook-mode", "disabled",
		"--disable-cert-rotation", "--port", "7480", "--log-level", "info"); err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(keyDir, "secretkey"), []byte("metallb-lab-memberlist-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes() {
		pod := metallbSpeakerPod(t, l, n)
		if _, err := l.StartProcess(n, "metallb-speaker", env, filepath.Join(mlbDir, "speaker"),
			"--kubeconfig", l.Kubeconfig, "--namespace", "metallb-system", "--node-name", n, "--pod-name", pod,
			"--host", l.Node(n).Address.String(), "--port", "7472", "--log-level", "info",
			"--ml-bindaddr", l.Node(n).Address.String(), "--ml-labels", "app=metallb,component=speaker",
			"--ml-secret-key-path", keyDir); err != nil {
			t.Fatal(err)
		}
	}

	// Two Services, addressed and announced by MetalLB.
	const app = "cut"
	for _, n := range l.Nodes() {
		if err := l.AddBackend(ctx, "default", app, n); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(name, pool, ip string) netip.Addr {
		t.Helper()
		s := lab.NewLBService(name, app, 80)
		s.Annotations["metallb.universe.tf/address-pool"] = pool
		if ip != "" {
			s.Annotations["metallb.universe.tf/loadBalancerIPs"] = ip
		}
		return serveOn(ctx, t, l, s)
	}
	macs := map[string]string{}
	for _, n := range l.Nodes() {
		m, err := l.MAC(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		macs[m] = n
	}
	answering := func(vip netip.Addr) []string {
		replies, _ := l.ARPReplies(ctx, "frr", vip, 2)
		var nodes []string
		for _, m := range slices.Compact(replies) {
			nodes = append(nodes, cmp.Or(macs[m], m))
		}
		slices.Sort(nodes)
		return slices.Compact(nodes)
	}
	// The layer-2 address is one that herald will give to another node
	// than MetalLB does (herald's election is rendezvous hashing over the
	// three nodes), so that the cut-over moves clients from one MAC to
	// another.
	ranker := election.NewRanker(slices.Sorted(slices.Values(l.Nodes())))
	var l2VIP netip.Addr
	var mlbOwner []string
	for a := netip.MustParseAddr("198.51.100.192"); ; a = a.Next() {
		if a == netip.MustParseAddr("198.51.100.200") {
			t.Fatalf("MetalLB and herald pick the same node for every address tried; last: %v", mlbOwner)
		}
		l2VIP = svc("cut-l2", "lan", a.String())
		if err := pollUntil(30*time.Second, func() bool { mlbOwner = answering(l2VIP); return len(mlbOwner) == 1 }); err != nil {
			t.Fatalf("MetalLB does not answer for %s from one node: %v", l2VIP, mlbOwner)
		}
		if mlbOwner[0] != ranker.Owner(l2VIP) {
			break
		}
		if err := l.DeleteService(ctx, "default", "cut-l2"); err != nil {
			t.Fatal(err)
		}
		if err := pollUntil(30*time.Second, func() bool { return len(answering(l2VIP)) == 0 }); err != nil {
			t.Fatalf("MetalLB still answers for %s after its Service was deleted", l2VIP)
		}
	}
	bgpVIP := svc("cut-bgp", "routed", "")
	all := nodeAddrs(l, false, l.Nodes()...)
	waitKernelRoute(t, l, "frr", bgpVIP, all, 30*time.Second)
	waitKernelRoute(t, l, "bird", bgpVIP, all, 30*time.Second)
	t.Logf("MetalLB serves %s over layer 2 from %v (herald will choose %s) and %s over BGP from every node", l2VIP, mlbOwner, ranker.Owner(l2VIP), bgpVIP)

	// Step 1: import, held.
	var out, errb bytes.Buffer
	code := ctl.Main(ctx, ctl.Env{Name: "heraldctl", Out: &out, Err: &errb, Config: l.Config}, []string{"import-metallb", "--hold"})
	t.Logf("heraldctl import-metallb --hold: exit %d; stderr:\n%s", code, errb.String())
	if code != 0 {
		t.Fatalf("import-metallb refused part of MetalLB's configuration:\n%s", out.String())
	}
	heraldYAML := out.String()
	if n := strings.Count(heraldYAML, "hold: true"); n != 2 {
		t.Fatalf("import-metallb --hold wrote hold: true %d times; want the 2 pools:\n%s", n, heraldYAML)
	}
	// herald's BGPPeers select only the nodes already cut over, so that
	// no node has two sessions with one router.
	heraldYAML = selectCutover(t, heraldYAML)
	// The password Secret, copied to herald's namespace as the guide says.
	applyYAML(t, l, `
apiVersion: v1
kind: Secret
metadata: {name: bird-md5, namespace: herald-system}
stringData: {password: `+bgpPassword+`}
`)
	applyYAML(t, l, heraldYAML)
	for _, cmd := range annotateCommands(heraldYAML) {
		if out, err := l.Kubectl(ctx, cmd...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	// herald adopts the addresses and announces nothing yet.
	time.Sleep(3 * time.Second)
	for name, want := range map[string]netip.Addr{"cut-l2": l2VIP, "cut-bgp": bgpVIP} {
		s, err := l.Kube.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			got = append(got, in.IP)
		}
		if !slices.Equal(got, []string{want.String()}) {
			t.Errorf("%s has %v after herald was installed; MetalLB gave it %s", name, got, want)
		}
		if s.Annotations["herald.dev/pool-allocated"] == "" {
			t.Errorf("%s has no herald.dev/pool-allocated annotation: herald-controller did not adopt its address", name)
		}
	}
	if got := answering(l2VIP); !slices.Equal(got, mlbOwner) {
		t.Errorf("with herald's pools held, %s is answered by %v; want MetalLB's %v alone", l2VIP, got, mlbOwner)
	}

	// The client requests both addresses all along.
	pctx, stopProbes := context.WithCancel(ctx)
	type probed struct {
		addr netip.Addr
		ps   []lab.Probe
	}
	probeDone := make(chan probed, 2)
	for _, a := range []netip.Addr{l2VIP, bgpVIP} {
		go func() {
			probeDone <- probed{a, l.ProbeEvery(pctx, l.Client(), a, 80, 10*time.Millisecond, time.Second)}
		}()
	}

	// Step 2: layer 2. An ARP request every 50 ms from FRR's side of the
	// segment.
	w, err := l.WatchARP("frr", l2VIP, 50*time.Millisecond)
	if err != nil {
		stopProbes()
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	l2Start := time.Now()
	hc, err := l.Herald()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hc.HeraldV1alpha1().IPPools().Patch(ctx, "lan", types.MergePatchType, []byte(`{"spec":{"hold":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	heraldOwner := ""
	if err := pollUntil(10*time.Second, func() bool { heraldOwner = heraldAnnouncer(ctx, l, l2VIP); return heraldOwner != "" }); err != nil {
		t.Fatalf("no herald speaker announces %s 10 s after its pool's hold was released", l2VIP)
	}
	released := time.Now()
	both := answering(l2VIP)
	if heraldOwner != ranker.Owner(l2VIP) || heraldOwner == mlbOwner[0] {
		t.Errorf("herald announces %s from %s; want %s, which is not MetalLB's %v", l2VIP, heraldOwner, ranker.Owner(l2VIP), mlbOwner)
	}
	if out, err := l.Kubectl(ctx, "-n", "metallb-system", "delete", "l2advertisement", "lan"); err != nil {
		t.Fatalf("deleting MetalLB's L2Advertisement: %v\n%s", err, out)
	}
	var now []string
	if err := pollUntil(30*time.Second, func() bool {
		now = answering(l2VIP)
		return slices.Equal(now, []string{heraldOwner}) && metallbQuiet(l, l2VIP)
	}); err != nil {
		t.Fatalf("after MetalLB's L2Advertisement was deleted, %s is answered by %v; want herald's %s alone", l2VIP, now, heraldOwner)
	}
	time.Sleep(2 * time.Second)
	l2End := time.Now()
	w.Stop()
	unanswered, sent := w.Unanswered(l2Start, l2End, 100*time.Millisecond)
	t.Logf("layer 2 cut-over of pool lan: herald's %s announced %s %v after the hold was released (ARP answered then by %v); MetalLB let go after its L2Advertisement was deleted; %d of %d ARP requests (every 50 ms from FRR's side) unanswered within 100 ms",
		heraldOwner, l2VIP, released.Sub(l2Start).Round(time.Millisecond), both, unanswered, sent)
	if unanswered > 0 {
		t.Errorf("%d ARP requests for %s went unanswered during the layer-2 cut-over; the guide's order (herald first, then MetalLB lets go) must leave none", unanswered, l2VIP)
	}

	// Step 3: BGP, one node at a time.
	if _, err := hc.HeraldV1alpha1().IPPools().Patch(ctx, "routed", types.MergePatchType, []byte(`{"spec":{"hold":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	watch := watchNextHops(l, bgpVIP)
	for _, n := range l.Nodes() {
		if err := l.Kill(n, "metallb-speaker", syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Kubectl(ctx, "label", "node", n, cutoverLabel+"=herald"); err != nil {
			t.Fatalf("labelling %s: %v\n%s", n, err, out)
		}
		want := l.Node(n).Address
		if err := pollUntil(30*time.Second, func() bool {
			hops, _ := l.KernelRoute(ctx, "frr", netip.PrefixFrom(bgpVIP, 32))
			return slices.Contains(hops, want) && frrSession(t, l, want).State == "Established"
		}); err != nil {
			t.Fatalf("FRR has no route to %s via %s 30 s after %s was cut over", bgpVIP, want, n)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second)
	hops := watch.stop()
	stopProbes()
	// A connection in flight when a router's ECMP set changes may see
	// its later packets hashed to another node, which has no state for it
	// and resets it: counted apart, as in the other scenarios; any other
	// failure fails the test.
	for range 2 {
		p := <-probeDone
		failed, resets := 0, 0
		for _, r := range p.ps {
			switch {
			case r.Err == nil:
			case strings.Contains(r.Err.Error(), "connection reset by peer"):
				resets++
				t.Logf("request to %s sent %s reset: %v", p.addr, r.Sent.Format("15:04:05.000"), r.Err)
			default:
				failed++
				t.Logf("request to %s sent %s failed: %v", p.addr, r.Sent.Format("15:04:05.000"), r.Err)
			}
		}
		t.Logf("client → %s: %d of %d requests failed, %d reset, during the cut-over", p.addr, failed, len(p.ps), resets)
		if failed > 0 {
			t.Errorf("%d requests to %s failed during the cut-over", failed, p.addr)
		}
	}
	for _, n := range l.Nodes() {
		gap := hops.gap(l.Node(n).Address)
		t.Logf("BGP cut-over of %s: FRR had no next hop %s for %v", n, l.Node(n).Address, gap.Round(time.Millisecond))
	}
	if hops.emptyFor > 0 {
		t.Errorf("FRR had no route at all to %s for %v during the BGP cut-over", bgpVIP, hops.emptyFor.Round(time.Millisecond))
	}
	t.Logf("BGP cut-over: FRR's route to %s was never empty (polled every %v, %d polls); routes now via %v",
		bgpVIP, nextHopPoll, hops.polls, hops.last)
	if got, err := birdEstablished(ctx, l); err != nil || len(got) != 3 {
		t.Errorf("BIRD's sessions after the cut-over: %v (%v); want herald's three", got, err)
	}
	waitKernelRoute(t, l, "bird", bgpVIP, all, 30*time.Second)
}

// metallbBinaries builds (or finds cached) MetalLB's controller and
// speaker: hack/metallbbin.sh, a few minutes cold.
func metallbBinaries(t *testing.T) string {
	t.Helper()
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "hack", "metallbbin.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("building MetalLB (hack/metallbbin.sh): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// metallbSpeakerPod creates, on node, the host-network Pod MetalLB's
// speaker process takes for its own, and returns its name once the
// kubelet runs it.
func metallbSpeakerPod(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "metallb-speaker-" + node, Namespace: "metallb-system",
			Labels: map[string]string{"app": "metallb", "component": "speaker"}},
		Spec: corev1.PodSpec{
			NodeName: node, HostNetwork: true,
			Containers: []corev1.Container{{Name: "speaker", Image: lab.PauseImage, ImagePullPolicy: corev1.PullNever}},
		},
	}
	if _, err := l.Kube.CoreV1().Pods("metallb-system").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pollUntil(time.Minute, func() bool {
		p, err := l.Kube.CoreV1().Pods("metallb-system").Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning
	}); err != nil {
		t.Fatalf("the stand-in Pod of MetalLB's speaker on %s does not run", node)
	}
	return pod.Name
}

// metallbCRDs copies MetalLB's CRDs and returns the copy's directory.
// MetalLB v0.15.2 declares its BGPPeer ASNs (uint32) as integers of format
// int32 with maximum 4294967295, which the Kubernetes release the lab runs
// refuses in every BGPPeer ("Maximum boundary value must be of type
// integer with format int32"); the copy says int64, which holds the same
// range.
func metallbCRDs(t *testing.T, mlbDir string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(mlbDir, "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no MetalLB CRDs in %s: %v", mlbDir, err)
	}
	asn := regexp.MustCompile(`format: int32(\n\s+maximum: 4294967295\n)`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), asn.ReplaceAll(raw, []byte("format: int64$1")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// migrationLab brings up the BGP topology as its own lab, herald
// installed with the beside-metallb component, and takes it down at the
// end of the test.
func migrationLab(t *testing.T) *lab.Lab {
	t.Helper()
	// Not t.TempDir: FRR reads its config as user frr, which the test's
	// private temporary directory keeps out.
	dir, err := os.MkdirTemp("", "herald-e2e-mlb-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := lab.Up(ctxFor(t, 10*time.Minute), lab.Options{
		Topology: filepath.Join("..", "topologies", "bgp.clab.yml"),
		Instance: "e2emlb", StateDir: filepath.Join(dir, "lab"), Log: log, Kubelet: lab.KubeletFromEnv(),
		BesideMetalLB: true,
	})
	if err != nil {
		t.Fatalf("bringing up the migration lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(l.StateDir)
		}
		if err := l.Down(); err != nil {
			t.Errorf("tearing down the migration lab: %v", err)
		}
		_ = os.RemoveAll(dir)
	})
	return l
}

// applyYAML applies manifests with kubectl (server-side).
func applyYAML(t *testing.T, l *lab.Lab, manifests string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(f, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Kubectl(context.Background(), "apply", "--server-side", "-f", f); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// selectCutover gives every BGPPeer of import-metallb's output the
// nodeSelector of the nodes cut over. The lab's MetalLB peers select every
// node, so the converted ones have no nodeSelector to merge with.
func selectCutover(t *testing.T, manifests string) string {
	t.Helper()
	docs := strings.Split(manifests, "\n---\n")
	peers := 0
	for i, d := range docs {
		if !strings.Contains(d, "kind: BGPPeer") {
			continue
		}
		if strings.Contains(d, "nodeSelector") {
			t.Fatalf("a converted BGPPeer already has a nodeSelector; the test expects none:\n%s", d)
		}
		docs[i] = strings.Replace(d, "\nspec:\n", "\nspec:\n  nodeSelector:\n    matchLabels:\n      "+cutoverLabel+": herald\n", 1)
		peers++
	}
	if peers != 2 {
		t.Fatalf("import-metallb wrote %d BGPPeers; want frr and bird:\n%s", peers, manifests)
	}
	return strings.Join(docs, "\n---\n")
}

// annotateCommands are the kubectl annotate commands import-metallb lists
// at the end of its YAML, as kubectl arguments.
func annotateCommands(manifests string) [][]string {
	var cmds [][]string
	for line := range strings.Lines(manifests) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "# kubectl annotate "); ok {
			cmds = append(cmds, append([]string{"annotate", "--overwrite"}, strings.Fields(rest)...))
		}
	}
	return cmds
}

// metallbQuiet reports whether no MetalLB speaker lists vip as announced
// over layer 2 in its metrics.
func metallbQuiet(l *lab.Lab, vip netip.Addr) bool {
	for _, n := range l.Nodes() {
		req, err := http.NewRequest(http.MethodGet, "http://"+l.Node(n).Address.String()+":7472/metrics", nil)
		if err != nil {
			return false
		}
		resp, err := l.HTTPClient(n, time.Second).Do(req)
		if err != nil {
			return false
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return false
		}
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, "metallb_speaker_announced{") && strings.Contains(line, `ip="`+vip.String()+`"`) && strings.Contains(line, `protocol="layer2"`) &&
				!strings.HasSuffix(strings.TrimSpace(line), " 0") {
				return false
			}
		}
	}
	return true
}

// heraldAnnouncer is the node whose Speaker object lists vip as announced
// over layer 2, or "".
func heraldAnnouncer(ctx context.Context, l *lab.Lab, vip netip.Addr) string {
	hc, err := l.Herald()
	if err != nil {
		return ""
	}
	sps, err := hc.HeraldV1alpha1().Speakers().List(ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, sp := range sps.Items {
		for _, a := range sp.Status.Announcements {
			if a.Address == vip.String() && a.Protocol == "layer2" {
				return sp.Name
			}
		}
	}
	return ""
}

// nextHopPoll is how often watchNextHops reads FRR's kernel route.
const nextHopPoll = 20 * time.Millisecond

// hopSummary is what watchNextHops saw.
type hopSummary struct {
	polls    int
	emptyFor time.Duration // total time with no route at all
	missing  map[netip.Addr]time.Duration
	last     []netip.Addr
}

func (h hopSummary) gap(a netip.Addr) time.Duration { return h.missing[a] }

type hopWatch struct {
	stopc chan struct{}
	done  chan hopSummary
}

func (w hopWatch) stop() hopSummary {
	close(w.stopc)
	return <-w.done
}

// watchNextHops polls FRR's kernel route to vip every nextHopPoll and
// adds up, per node address, how long it was not a next hop, and how long
// the route was gone altogether.
func watchNextHops(l *lab.Lab, vip netip.Addr) hopWatch {
	w := hopWatch{stopc: make(chan struct{}), done: make(chan hopSummary, 1)}
	go func() {
		h := hopSummary{missing: map[netip.Addr]time.Duration{}}
		nodes := nodeAddrs(l, false, l.Nodes()...)
		prev := time.Now()
		for {
			select {
			case <-w.stopc:
				w.done <- h
				return
			case <-time.After(nextHopPoll):
			}
			hops, err := l.KernelRoute(context.Background(), "frr", netip.PrefixFrom(vip, 32))
			now := time.Now()
			if err != nil {
				continue
			}
			h.polls++
			step := now.Sub(prev)
			prev = now
			if len(hops) == 0 {
				h.emptyFor += step
			}
			for _, n := range nodes {
				if !slices.Contains(hops, n) {
					h.missing[n] += step
				}
			}
			h.last = hops
		}
	}()
	return w
}
