//go:build privileged

package scenarios

import (
	"context"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/netns"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
)

// The IPv6-only node of TestBGPIPv6OnlyNode: a namespace on the BGP lab's
// switch with an IPv6 address and no IPv4 one, whose Node object lists
// that address alone.
const (
	v6NodeNS   = "hl-e2ebgp-node4"
	v6NodeName = "node4"
	v6NodeAddr = "2001:db8:100::14"
	// Its router ID, derived from the address's last 32 bits.
	v6NodeRouterID = "0.0.0.20"
	// The API server's address on the segment, where a relay passes
	// connections to it (the lab's API server listens on IPv4 only).
	v6APIAddr = "2001:db8:100::2"
)

// TestBGPIPv6OnlyNode (#18 item 4): a node with no IPv4 address at all,
// in the network or in its Node object, runs BGP: herald-speaker (run as
// the DaemonSet runs it, with the lab's memberlist key) derives its router
// ID from the IPv6 InternalIP, opens an IPv6 session to FRR, and announces
// a dual-stack Service's IPv6 address with itself as next hop, and not
// the IPv4 one, for which it has no next hop.
func TestBGPIPv6OnlyNode(t *testing.T) {
	l := bgpLab(t)
	ctx := ctxFor(t, 4*time.Minute)
	dir := t.TempDir()
	cfgPath := v6Kubeconfig(t, l, dir)

	run := func(args ...string) {
		t.Helper()
		if out, err := netns.IP(ctx, args...); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if netns.Exists(v6NodeNS) {
		run("netns", "del", v6NodeNS)
	}
	run("netns", "add", v6NodeNS)
	t.Cleanup(func() { _, _ = netns.IP(context.Background(), "netns", "del", v6NodeNS) })
	if _, err := netns.Run(ctx, v6NodeNS, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"); err != nil {
		t.Fatal(err)
	}
	sw := l.Node("sw")
	run("link", "add", "eth1", "netns", v6NodeNS, "type", "veth", "peer", "name", "p-node4", "netns", sw.Namespace)
	run("-n", sw.Namespace, "link", "set", "p-node4", "master", sw.Name, "up")
	run("-n", v6NodeNS, "link", "set", "lo", "up")
	run("-n", v6NodeNS, "addr", "add", v6NodeAddr+"/64", "dev", "eth1", "nodad")
	run("-n", v6NodeNS, "link", "set", "eth1", "up")
	if out, _ := netns.Run(ctx, v6NodeNS, "ip", "-4", "addr", "show"); strings.Contains(out, "inet ") && !strings.Contains(out, "inet 127.0.0.1") {
		t.Fatalf("%s has an IPv4 address:\n%s", v6NodeNS, out)
	}

	// The Node: an IPv6 InternalIP only. No kubernetes.io/os label, so
	// the lab's DaemonSet does not target it; its speaker runs below.
	nodes := l.Kube.CoreV1().Nodes()
	_, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: v6NodeName,
		Labels: map[string]string{"kubernetes.io/hostname": v6NodeName}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nodes.Delete(context.Background(), v6NodeName, metav1.DeleteOptions{}) })
	// The kubelet lab's controllers (node lifecycle, taints) may write the
	// new Node first: retry on their newer version.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, v6NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: v6NodeAddr}, {Type: corev1.NodeHostName, Address: v6NodeName}}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// A BGPPeer for FRR's IPv6 address, for this node only.
	hc, err := versioned.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	peer := &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr-v6"}, Spec: heraldv1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64513, PeerAddress: l.Node("frr").Address6.String(),
		HoldTime: &metav1.Duration{Duration: 3 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: time.Second},
		ConnectTime:  &metav1.Duration{Duration: time.Second},
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": v6NodeName}},
	}}
	if _, err := hc.HeraldV1alpha1().BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hc.HeraldV1alpha1().BGPPeers().Delete(context.Background(), "frr-v6", metav1.DeleteOptions{})
	})

	logPath := startV6Speaker(t, l, dir, cfgPath)

	// FRR: an Established IPv6 session from the node, with the derived
	// router ID.
	var nbr frrNeighbor
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		nbr = frrNeighborOf(t, l, v6NodeAddr)
		if nbr.State == "Established" {
			t.Logf("FRR's session with %s up %v after the speaker started; remote router ID %s", v6NodeAddr, time.Since(start).Round(time.Millisecond), nbr.RouterID)
			break
		}
		if time.Since(start) > 45*time.Second {
			t.Fatalf("FRR has no Established session with %s after 45 s (%+v); speaker log:\n%s", v6NodeAddr, nbr, tail(logPath, 4000))
		}
	}
	if nbr.RouterID != v6NodeRouterID {
		t.Errorf("node4's router ID at FRR is %s, want %s (the last 32 bits of %s)", nbr.RouterID, v6NodeRouterID, v6NodeAddr)
	}

	// A dual-stack Service with its backends on the kubelet nodes: node4
	// announces its IPv6 address (Cluster policy: every node does), not
	// its IPv4 one.
	addrs := bgpService(t, l, "v6only", false, true, "node1", "node2")
	v4, v6 := addrs[0], addrs[1]
	node4 := netip.MustParseAddr(v6NodeAddr)
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		var hops []netip.Addr
		for _, p := range frrPaths(t, l, v6) {
			if p.Peer.PeerID == v6NodeAddr {
				for _, h := range p.Nexthops {
					if a, err := netip.ParseAddr(h.IP); err == nil && h.Scope == "global" {
						hops = append(hops, a)
					}
				}
			}
		}
		if slices.Contains(hops, node4) {
			t.Logf("FRR has %s from node4 over the IPv6 session, next hop %v, %v after the Service got its addresses", v6, hops, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 15*time.Second {
			out, _ := l.RouterQuery(ctx, "frr", "show bgp ipv6 unicast "+host(v6).String())
			t.Fatalf("FRR has no path to %s from node4 with next hop %s after 15 s:\n%s\nspeaker log:\n%s", v6, node4, out, tail(logPath, 4000))
		}
	}
	for _, p := range frrPaths(t, l, v4) {
		if p.Peer.PeerID == v6NodeAddr {
			t.Errorf("FRR has %s (IPv4) from node4, which has no IPv4 next hop to give: %+v", v4, p)
		}
	}
	if log := tail(logPath, 1<<20); !strings.Contains(log, "this node has no IPv4 address: IPv4 paths are not announced over BGP") {
		t.Errorf("node4's speaker did not say it leaves IPv4 paths out; log:\n%s", tail(logPath, 4000))
	}
	gws, _ := l.KernelRoute(ctx, "frr", host(v6))
	t.Logf("FRR's kernel route to %s: via %v", v6, gws)
	if !slices.Contains(gws, node4) {
		t.Errorf("FRR's kernel route to %s does not include node4 (%s): %v", v6, node4, gws)
	}
}

// frrNeighbor is what FRR says of one neighbour.
type frrNeighbor struct {
	State    string `json:"bgpState"`
	RouterID string `json:"remoteRouterId"`
}

func frrNeighborOf(t *testing.T, l *lab.Lab, addr string) frrNeighbor {
	t.Helper()
	var nbrs map[string]frrNeighbor
	if err := frrJSON(context.Background(), l, &nbrs, "show bgp neighbors json"); err != nil {
		t.Fatal(err)
	}
	return nbrs[addr]
}

// v6Kubeconfig writes a kubeconfig that reaches the lab's API server at
// v6APIAddr, through a relay in the control plane's namespace to its IPv4
// address. The serving certificate names no IPv6 address of the lab, so
// the client checks it against the name "kubernetes", which it holds.
func v6Kubeconfig(t *testing.T, l *lab.Lab, dir string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(l.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cpNS := l.Node("cp").Namespace
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		target := u.Host
		ln, err := netns.Listen(cpNS, "tcp", net.JoinHostPort(v6APIAddr, u.Port()))
		if err != nil {
			t.Fatalf("listening on [%s]:%s in %s: %v", v6APIAddr, u.Port(), cpNS, err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go relay(ln, cpNS, target)
		u.Host = ln.Addr().String()
		c.Server, c.TLSServerName = u.String(), "kubernetes"
	}
	path := filepath.Join(dir, "kubeconfig-v6")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// relay passes each connection accepted on ln to target, dialled from ns.
func relay(ln net.Listener, ns, target string) {
	dial := netns.Dialer(ns)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			u, err := dial(context.Background(), "tcp", target)
			if err != nil {
				return
			}
			defer func() { _ = u.Close() }()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}

// startV6Speaker builds herald-speaker and runs it in node4's namespace
// as the DaemonSet runs it, with the lab's memberlist key, until the test
// ends. It returns the path of its log. node4 runs no kube-proxy (the
// scenario checks routes, it sends no traffic through node4), so the
// speaker's kube-proxy gate is off.
func startV6Speaker(t *testing.T, l *lab.Lab, dir, kubeconfig string) string {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "herald-speaker")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/herald-speaker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building herald-speaker: %v\n%s", err, out)
	}
	sec, err := l.Kube.CoreV1().Secrets("herald-system").Get(ctx, "herald-memberlist", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "memberlist-key")
	if err := os.WriteFile(keyFile, sec.Data["key"], 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "node4-speaker.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := netns.Command(context.Background(), v6NodeNS, bin, "--kubeconfig", kubeconfig, "--node-name", v6NodeName,
		"--memberlist-key-file", keyFile, "--memberlist-key-secret=", "--metrics-addr", "[::1]:7473", "--kube-proxy-health-url=",
		"--cache-dir", filepath.Join(dir, "speaker-cache"))
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=herald-system")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("node4's speaker did not stop within 10 s of SIGTERM; killing it")
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
		if t.Failed() {
			t.Logf("--- node4's speaker log (tail):\n%s", tail(logPath, 6000))
		}
	})
	return logPath
}

// tail is the last n bytes of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
