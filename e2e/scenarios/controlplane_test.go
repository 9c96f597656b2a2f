//go:build privileged

package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/internal/ctl"
	"github.com/heraldlb/herald/internal/testcluster"
)

// The control-plane lab: three control-plane namespaces, each with its own
// kube-apiserver on one etcd (in a namespace of its own, as an external
// etcd), a herald-speaker in control-plane mode beside each, and a client,
// all on one bridge. Clients reach the API servers only through the VIP.
const (
	cpPrefix = "hl-cpv-"
	cpSwitch = cpPrefix + "sw"
	cpEtcd   = cpPrefix + "etcd"
	cpClient = cpPrefix + "cl"
	cpPort   = 6443
	// cpProbeEvery is the request rate: one every 10 ms.
	cpProbeEvery = 10 * time.Millisecond
	// cpProbeTimeout bounds one request: a request sent to a node whose
	// link is cut hangs until then.
	cpProbeTimeout = time.Second
	cpTrials       = 10
)

var (
	cpVIP4 = netip.MustParseAddr("203.0.113.100")
	cpVIP6 = netip.MustParseAddr("2001:db8:cb::100")
)

type cpNode struct {
	name, ns string
	v4, v6   netip.Addr
	server   *testcluster.APIServer
	speaker  *exec.Cmd
	done     chan struct{}
	log      string
}

type cpLab struct {
	t       *testing.T
	dir     string
	bin     string
	keyFile string
	cluster *testcluster.Cluster
	nodes   []*cpNode
	hc      *http.Client // from the client namespace, one connection per request
	kubecfg string       // admin kubeconfig whose server is the VIP
}

func (l *cpLab) node(name string) *cpNode {
	for _, n := range l.nodes {
		if n.name == name {
			return n
		}
	}
	l.t.Fatalf("no control-plane node %s", name)
	return nil
}

func ipIn(ctx context.Context, t *testing.T, ns string, args ...string) {
	t.Helper()
	if _, err := netns.IP(ctx, append([]string{"-n", ns}, args...)...); err != nil {
		t.Fatal(err)
	}
}

// upCPNetwork builds the namespaces; their removal is registered first, so
// it runs last.
func upCPNetwork(ctx context.Context, t *testing.T, names []string, v4 map[string]string, v6 map[string]string) {
	for _, ns := range netns.List(cpPrefix) {
		t.Fatalf("namespace %s exists: another control-plane lab runs, or one was left behind (ip netns del %s)", ns, ns)
	}
	t.Cleanup(func() {
		for _, ns := range netns.List(cpPrefix) {
			if _, err := netns.IP(context.Background(), "netns", "del", ns); err != nil {
				t.Errorf("removing %s: %v", ns, err)
			}
		}
	})
	addNS(ctx, t, cpSwitch)
	if _, err := netns.Run(ctx, cpSwitch, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
		t.Fatal(err)
	}
	ipIn(ctx, t, cpSwitch, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	ipIn(ctx, t, cpSwitch, "link", "set", "br0", "up")
	for i, ns := range names {
		addNS(ctx, t, ns)
		attach(ctx, t, ns, fmt.Sprintf("p%d", i), v4[ns]+"/24", v6[ns]+"/64")
	}
}

// addNS creates ns with its loopback up.
func addNS(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	if _, err := netns.IP(ctx, "netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	ipIn(ctx, t, ns, "link", "set", "lo", "up")
}

// attach connects ns to the switch (its side of the veth is port) as eth0
// with addrs (IPv6 ones without duplicate address detection).
func attach(ctx context.Context, t *testing.T, ns, port string, addrs ...string) {
	t.Helper()
	ipIn(ctx, t, cpSwitch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	ipIn(ctx, t, cpSwitch, "link", "set", port, "master", "br0", "up")
	for _, a := range addrs {
		if !strings.Contains(a, ":") {
			ipIn(ctx, t, ns, "addr", "add", a, "dev", "eth0")
			continue
		}
		if _, err := netns.Run(ctx, ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.eth0.accept_dad=0"); err != nil {
			t.Fatal(err)
		}
		ipIn(ctx, t, ns, "addr", "add", a, "dev", "eth0", "nodad")
	}
	ipIn(ctx, t, ns, "link", "set", "eth0", "up")
}

func startCPLab(t *testing.T) *cpLab {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	l := &cpLab{t: t, dir: t.TempDir()}
	l.bin = filepath.Join(l.dir, "herald-speaker")
	build := exec.CommandContext(ctx, "go", "build", "-o", l.bin, "./cmd/herald-speaker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building herald-speaker: %v\n%s", err, out)
	}
	ctlBin := filepath.Join(l.dir, "herald-controller")
	build = exec.CommandContext(ctx, "go", "build", "-o", ctlBin, "./cmd/herald-controller")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building herald-controller: %v\n%s", err, out)
	}

	v4 := map[string]string{cpEtcd: "203.0.113.10", cpClient: "203.0.113.50"}
	v6 := map[string]string{cpEtcd: "2001:db8:cb::10", cpClient: "2001:db8:cb::50"}
	names := []string{cpEtcd, cpClient}
	serving := []string{cpVIP4.String(), cpVIP6.String()}
	for i := 1; i <= 3; i++ {
		n := &cpNode{name: fmt.Sprintf("cp%d", i), ns: fmt.Sprintf("%scp%d", cpPrefix, i),
			v4: netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", 10+i)), v6: netip.MustParseAddr(fmt.Sprintf("2001:db8:cb::%d", 10+i))}
		v4[n.ns], v6[n.ns] = n.v4.String(), n.v6.String()
		names = append(names, n.ns)
		serving = append(serving, n.v4.String(), n.v6.String())
		l.nodes = append(l.nodes, n)
	}
	upCPNetwork(ctx, t, names, v4, v6)

	c, err := testcluster.Start(ctx, testcluster.Options{
		CRDDir: filepath.Join(root, "config/crd/bases"), NetNS: cpEtcd, Address: v4[cpEtcd], EtcdAddress: v4[cpEtcd],
		ServingIPs: serving, Dial: netns.Dialer(cpEtcd),
	})
	if err != nil {
		t.Fatalf("starting etcd and the bootstrap API server: %v", err)
	}
	l.cluster = c
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	// The bootstrap API server created the CRDs; from here on only the
	// three control-plane ones serve.
	if err := c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}

	// As docs/control-plane.md says to install it: readable by the group
	// of the uid the speakers run as after start, so that they follow a
	// change.
	keyDir, err := os.MkdirTemp("", "hl-cpv-key-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(keyDir) })
	if err := os.Chmod(keyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	l.keyFile = filepath.Join(keyDir, "memberlist.key")
	l.writeKey()

	l.hc = l.clientIn(cpClient)
	l.kubecfg = filepath.Join(l.dir, "kubeconfig-vip")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: vip, cluster: {server: "https://%s", certificate-authority: %q}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: vip, context: {cluster: vip, user: admin}}]
current-context: vip
`, net.JoinHostPort(cpVIP4.String(), fmt.Sprint(cpPort)), c.CAFile(), c.Token())
	if err := os.WriteFile(l.kubecfg, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range l.nodes {
			l.stopSpeaker(n)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range l.nodes {
				l.dumpSpeakerLog(n)
			}
		}
	})
	return l
}

// clientIn is an HTTPS client dialling from ns that trusts the cluster's
// CA and opens a connection per request, as a fresh kubectl would.
func (l *cpLab) clientIn(ns string) *http.Client {
	ca, err := os.ReadFile(l.cluster.CAFile())
	if err != nil {
		l.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Timeout: cpProbeTimeout, Transport: &http.Transport{
		DialContext: netns.Dialer(ns), DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// manifestArgs are the arguments of the static Pod `heraldctl
// control-plane manifest` prints for the lab: the speakers run exactly
// those (each finding its own address among --peers), but for the paths of
// the key and the CA, which are the lab's files rather than mounts.
func (l *cpLab) manifestArgs(extra ...string) []string {
	var peers []string
	for _, o := range l.nodes {
		peers = append(peers, o.v4.String())
	}
	var out, errb bytes.Buffer
	args := []string{"control-plane", "manifest", "--peers", strings.Join(peers, ","), "-o", "json"}
	if extra == nil {
		extra = []string{"--vip", cpVIP4.String() + "," + cpVIP6.String(), "--interface", "eth0"}
	}
	args = append(args, extra...)
	if code := ctl.Main(context.Background(), ctl.Env{Out: &out, Err: &errb}, args); code != 0 {
		l.t.Fatalf("heraldctl %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out.Bytes(), &pod); err != nil {
		l.t.Fatal(err)
	}
	return pod.Spec.Containers[0].Args
}

// writeKey puts a fresh random key into the key file.
func (l *cpLab) writeKey() {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	tmp := l.keyFile + ".new"
	if err := os.WriteFile(tmp, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o440); err != nil {
		l.t.Fatal(err)
	}
	if err := os.Chown(tmp, 0, 65532); err != nil {
		l.t.Fatal(err)
	}
	if err := os.Rename(tmp, l.keyFile); err != nil {
		l.t.Fatal(err)
	}
}

// dumpSpeakerLog prints what n's speaker said about the API server, the
// VIP and its published state: the story of a failed scenario.
func (l *cpLab) dumpSpeakerLog(n *cpNode) {
	raw, err := os.ReadFile(n.log)
	if err != nil {
		return
	}
	var b strings.Builder
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.Contains(line, "VIP") || strings.Contains(line, "kube-apiserver") || strings.Contains(line, "published") || strings.Contains(line, "error") {
			b.WriteString(line + "\n")
		}
	}
	l.t.Logf("--- %s herald-speaker log (the VIP, the API server, state):\n%s", n.name, b.String())
}

// startSpeaker runs herald-speaker control-plane in n's namespace with the
// manifest's arguments. Later flags override earlier ones: the key and CA
// paths, and the node name (a static Pod's default is the host name, which
// the lab's namespaces share).
func (l *cpLab) startSpeaker(n *cpNode) { l.startSpeakerWith(n, l.manifestArgs()) }

// startSpeakerWith runs the speaker with manifest arguments margs.
func (l *cpLab) startSpeakerWith(n *cpNode, margs []string, extra ...string) {
	n.log = filepath.Join(l.dir, n.name+"-speaker.log")
	out, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	args := append([]string{l.bin}, margs...)
	args = append(args, "--node-name="+n.name, "--memberlist-key-file="+l.keyFile, "--apiserver-ca-file="+l.cluster.CAFile())
	args = append(args, extra...)
	cmd := netns.Command(context.Background(), n.ns, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	n.speaker, n.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); _ = out.Close(); close(n.done) }()
}

// stopSpeaker sends SIGTERM (as the kubelet does) and waits.
func (l *cpLab) stopSpeaker(n *cpNode) {
	if n.speaker == nil {
		return
	}
	_ = n.speaker.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		l.t.Errorf("%s: herald-speaker did not stop within 10 s of SIGTERM; killing it", n.name)
		_ = n.speaker.Process.Kill()
		<-n.done
	}
	n.speaker = nil
}

// holders asks every running speaker whether it holds the VIP (its
// herald_control_plane_vip_holding metric), from the client namespace.
func (l *cpLab) holders() []string {
	var out []string
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: netns.Dialer(cpClient), DisableKeepAlives: true}}
	for _, n := range l.nodes {
		if n.speaker == nil {
			continue
		}
		resp, err := hc.Get("http://" + net.JoinHostPort(n.v4.String(), "7475") + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "herald_control_plane_vip_holding 1" {
				out = append(out, n.name)
			}
		}
		_ = resp.Body.Close()
	}
	return out
}

// waitHolder waits until exactly one speaker holds the VIP, one of want
// if given, and returns it.
func (l *cpLab) waitHolder(timeout time.Duration, want ...string) string {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var got []string
	for time.Now().Before(deadline) {
		got = l.holders()
		if len(got) == 1 && (len(want) == 0 || slices.Contains(want, got[0])) {
			return got[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("holders of the VIP = %v after %v; want exactly one of %v", got, timeout, want)
	return ""
}

// get sends one request through the VIP: a real read of an object, so
// that it proves the API server behind the VIP and etcd both serve.
func (l *cpLab) get(ctx context.Context, vip netip.Addr) error { return l.getWith(ctx, l.hc, vip) }

// getWith is get from the client hc dials from.
func (l *cpLab) getWith(ctx context.Context, hc *http.Client, vip netip.Addr) error {
	url := "https://" + net.JoinHostPort(vip.String(), fmt.Sprint(cpPort)) + "/api/v1/namespaces/default"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.cluster.Token())
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

type cpProbe struct {
	start time.Time
	err   error
}

// prober sends a request through the VIP every cpProbeEvery, each on its
// own connection, without waiting for the previous one.
type prober struct {
	mu     sync.Mutex
	probes []cpProbe
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func (l *cpLab) probe(vip netip.Addr) *prober { return l.probeWith(l.hc, vip) }

// probeWith is probe from the client hc dials from.
func (l *cpLab) probeWith(hc *http.Client, vip netip.Addr) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{stop: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(cpProbeEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			p.wg.Add(1)
			go func(start time.Time) {
				defer p.wg.Done()
				rctx, rcancel := context.WithTimeout(context.Background(), cpProbeTimeout)
				err := l.getWith(rctx, hc, vip)
				rcancel()
				p.mu.Lock()
				p.probes = append(p.probes, cpProbe{start, err})
				p.mu.Unlock()
			}(time.Now())
		}
	}()
	return p
}

func (p *prober) finish() []cpProbe {
	p.stop()
	p.wg.Wait()
	sort.Slice(p.probes, func(i, j int) bool { return p.probes[i].start.Before(p.probes[j].start) })
	return p.probes
}

// outage is the time from `from` until requests succeed again: the start
// of the first request after which every later one succeeded, minus from
// (0 when none failed), and how many requests failed.
func outage(probes []cpProbe, from time.Time) (time.Duration, int, string) {
	failed, lastFail, firstErr := 0, -1, ""
	for i, p := range probes {
		if p.err != nil {
			failed++
			lastFail = i
			if firstErr == "" {
				firstErr = p.err.Error()
			}
		}
	}
	if lastFail < 0 {
		return 0, 0, ""
	}
	if lastFail+1 >= len(probes) {
		return -1, failed, firstErr
	}
	return max(probes[lastFail+1].start.Sub(from), 0), failed, firstErr
}

func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("median %v, max %v (of %d: %v)", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s), roundAll(ds))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// TestControlPlaneVIP is the control-plane mode end to end: the VIP comes
// up with the first API server, follows a killed API server's and a cut
// node's successor while a client sends a request every 10 ms, survives
// every API server being down, and stays put when the failed node comes
// back. kubectl and herald-controller talk to the API only through the VIP.
func TestControlPlaneVIP(t *testing.T) {
	l := startCPLab(t)
	ctx := t.Context()

	// Speakers first, as static Pods start before the API server is ready:
	// none announces anything yet.
	for _, n := range l.nodes {
		l.startSpeaker(n)
	}
	time.Sleep(2 * time.Second)
	if h := l.holders(); len(h) != 0 {
		t.Fatalf("the VIP is held by %v before any API server is ready", h)
	}

	// Bootstrap: the first API server ready takes the VIP.
	first := l.nodes[2]
	srv, err := l.cluster.StartAPIServerIn(ctx, "kube-apiserver-"+first.name, first.ns, first.v4.String(), cpPort)
	if err != nil {
		t.Fatal(err)
	}
	first.server = srv
	readyAt := time.Now()
	if err := pollUntil(10*time.Second, func() bool { return l.get(ctx, cpVIP4) == nil }); err != nil {
		t.Fatalf("bootstrap: the VIP never served after %s's API server was ready: %v", first.name, err)
	}
	t.Logf("bootstrap: requests through the VIP succeed %v after %s's API server was ready", time.Since(readyAt).Round(time.Millisecond), first.name)
	l.waitHolder(5*time.Second, first.name)
	for _, n := range l.nodes[:2] {
		if n.server, err = l.cluster.StartAPIServerIn(ctx, "kube-apiserver-"+n.name, n.ns, n.v4.String(), cpPort); err != nil {
			t.Fatal(err)
		}
	}
	// Sticky: the VIP stays with the first node however the others rank.
	l.waitHolder(5*time.Second, first.name)
	if err := l.get(ctx, cpVIP6); err != nil {
		t.Errorf("IPv6 VIP: %v", err)
	}

	// Clients configured with the VIP: kubectl, and herald-controller.
	kubectl := filepath.Join(l.cluster.BinDir, "kubectl")
	if out, err := netns.Run(ctx, cpClient, kubectl, "--kubeconfig", l.kubecfg, "get", "namespace", "default", "-o", "name"); err != nil || strings.TrimSpace(out) != "namespace/default" {
		t.Fatalf("kubectl through the VIP: %v: %s", err, out)
	}
	ctlLog := filepath.Join(l.dir, "controller.log")
	ctlOut, _ := os.Create(ctlLog)
	ctl := netns.Command(context.Background(), cpClient, filepath.Join(l.dir, "herald-controller"), "--kubeconfig", l.kubecfg, "--metrics-addr", "127.0.0.1:7472")
	ctl.Stdout, ctl.Stderr = ctlOut, ctlOut
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Process.Kill(); _ = ctl.Wait(); _ = ctlOut.Close() })
	kubectlApply(ctx, t, l, `apiVersion: herald.dev/v1alpha1
kind: IPPool
metadata: {name: cp-lab}
spec: {addresses: ["198.51.100.0/28"], announce: {layer2: {interfaces: [eth0]}}}
`)
	assigned := func(name string) {
		t.Helper()
		kubectlApply(ctx, t, l, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 80}]}
`, name))
		var out string
		if err := pollUntil(30*time.Second, func() bool {
			out, _ = netns.Run(ctx, cpClient, kubectl, "--kubeconfig", l.kubecfg, "get", "service", name, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
			return strings.HasPrefix(out, "198.51.100.")
		}); err != nil {
			raw, _ := os.ReadFile(ctlLog)
			t.Fatalf("Service %s got no address through the VIP-connected controller (%q): %v\ncontroller log:\n%s", name, out, err, raw)
		}
		t.Logf("herald-controller, connected through the VIP, assigned %s to Service %s", out, name)
	}
	assigned("before-failovers")
	// A worker whose kube-proxy and Service speaker use the VIP too.
	l.startWorker(ctx)
	webAddr := l.serveThroughWorker(ctx, "web")
	t.Logf("Service web, through the worker's kube-proxy and speaker (both on the VIP), answers at %s", webAddr)

	// The owner's kube-apiserver killed, under traffic.
	var kills []time.Duration
	killFailed := 0
	for i := range cpTrials {
		owner := l.node(l.waitHolder(10 * time.Second))
		p := l.probe(cpVIP4)
		time.Sleep(300 * time.Millisecond)
		at := time.Now()
		if err := owner.server.Stop(); err != nil {
			t.Fatal(err)
		}
		next := l.waitHolder(10*time.Second, otherNames(l.nodes, owner.name)...)
		time.Sleep(1500 * time.Millisecond)
		probes := p.finish()
		d, failed, why := outage(probes, at)
		if d < 0 {
			t.Fatalf("trial %d: requests still failing at the end (%d failed; first: %s)", i, failed, why)
		}
		t.Logf("kill trial %d: %s's kube-apiserver killed, VIP to %s: requests succeed again after %v; %d of %d failed (first: %s)",
			i, owner.name, next, d.Round(time.Millisecond), failed, len(probes), why)
		kills = append(kills, d)
		killFailed += failed
		if err := owner.server.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// The restarted node does not take the VIP back.
		time.Sleep(500 * time.Millisecond)
		l.waitHolder(5*time.Second, next)
	}
	t.Logf("FIGURE control-plane VIP, owner's kube-apiserver killed: %s; %d requests failed in all", summary(kills), killFailed)

	// The owner's link cut, under traffic.
	var cuts []time.Duration
	cutFailed := 0
	for i := range cpTrials {
		owner := l.node(l.waitHolder(10 * time.Second))
		p := l.probe(cpVIP4)
		time.Sleep(300 * time.Millisecond)
		at := time.Now()
		ipIn(ctx, t, owner.ns, "link", "set", "eth0", "down")
		next := l.waitHolder(10*time.Second, otherNames(l.nodes, owner.name)...)
		time.Sleep(2 * time.Second)
		probes := p.finish()
		d, failed, why := outage(probes, at)
		if d < 0 {
			t.Fatalf("trial %d: requests still failing at the end (%d failed; first: %s)", i, failed, why)
		}
		t.Logf("cut trial %d: %s's link cut, VIP to %s: requests succeed again after %v; %d of %d failed (first: %s)",
			i, owner.name, next, d.Round(time.Millisecond), failed, len(probes), why)
		cuts = append(cuts, d)
		cutFailed += failed
		// The cut node's API server loses etcd and stops being ready, so
		// it gives the VIP up on its side too; after the link is back the
		// VIP stays where it went.
		time.Sleep(2 * time.Second)
		ipIn(ctx, t, owner.ns, "link", "set", "eth0", "up")
		if err := pollUntil(20*time.Second, func() bool { return l.readyz(owner) == nil }); err != nil {
			t.Fatalf("%s's API server never became ready again after its link came back", owner.name)
		}
		time.Sleep(1500 * time.Millisecond)
		l.waitHolder(5*time.Second, next)
		if err := l.get(ctx, cpVIP4); err != nil {
			t.Fatalf("after %s's link came back: %v", owner.name, err)
		}
	}
	t.Logf("FIGURE control-plane VIP, owner's link cut: %s; %d requests failed in all", summary(cuts), cutFailed)

	// Every API server down: at most one node holds the VIP (a holder whose
	// API server fails keeps it while nobody could take over). Then one
	// comes back that does not hold it: the VIP follows it.
	for _, n := range l.nodes {
		if err := n.server.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	held := l.holders()
	if len(held) > 1 {
		t.Fatalf("the VIP is held by %v with every API server down", held)
	}
	last := ""
	if len(held) == 1 {
		last = held[0]
	}
	t.Logf("every API server down: the VIP held by %v", held)
	back := l.node(otherNames(l.nodes, last)[0])
	// Requests every 10 ms throughout, as in the trials: a single request
	// sent before the takeover would wait for its SYN to be retransmitted.
	p := l.probe(cpVIP4)
	if err := back.server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	readyAt = time.Now()
	if err := pollUntil(10*time.Second, func() bool { return len(l.holders()) == 1 }); err != nil {
		t.Fatalf("nobody took the VIP after %s's API server came back", back.name)
	}
	time.Sleep(time.Second)
	d, _, why := outage(p.finish(), readyAt)
	if d < 0 {
		t.Fatalf("requests through the VIP still failing after %s's API server came back (%s)", back.name, why)
	}
	t.Logf("FIGURE control-plane VIP, whole outage: requests through the VIP succeed again %v after %s, the first API server back, was ready",
		d.Round(time.Millisecond), back.name)
	l.waitHolder(5*time.Second, back.name)
	for _, n := range l.nodes {
		if n != back {
			if err := n.server.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.waitHolder(5*time.Second, back.name)
	// The controller, the worker's kube-proxy and its speaker rode out all
	// of it through the VIP: a new Service is assigned, announced and
	// forwarded.
	assigned("after-failovers")
	t.Logf("Service web2, created after the failovers, answers at %s through the worker", l.serveThroughWorker(ctx, "web2"))
	if got := l.waitServed(ctx, "web"); got != webAddr {
		t.Errorf("Service web moved from %s to %s across the control-plane failovers", webAddr, got)
	}

	// A new key, in place of the old one in every node's key file: the
	// speakers move to it without a restart, without losing each other
	// (the VIP stays where it is) and without a failed request.
	holder := l.waitHolder(10 * time.Second)
	p = l.probe(cpVIP4)
	l.writeKey()
	if err := pollUntil(30*time.Second, func() bool {
		for _, n := range l.nodes {
			raw, _ := os.ReadFile(n.log)
			if !strings.Contains(string(raw), `"msg":"memberlist keys changed in the key file"`) {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal("not every speaker applied the new key file")
	}
	time.Sleep(3 * time.Second) // primary switch and removal of the old key
	_, failed, why := outage(p.finish(), time.Now())
	if failed > 0 {
		t.Errorf("%d requests failed while the key was replaced (first: %s)", failed, why)
	}
	l.waitHolder(5*time.Second, holder)
	t.Logf("key replaced in every key file: applied by every speaker, the VIP stayed on %s, no request failed", holder)

	// A node that cannot join (a key of its own) takes the VIP after 2 s
	// alone; the holder sees its answers and announces again, the intruder
	// sees the holder's and, alone, lets the VIP go for good.
	holderNode := l.node(holder)
	p = l.probe(cpVIP4)
	at := time.Now()
	in := l.intruder(ctx)
	if err := pollUntil(20*time.Second, func() bool {
		raw, _ := os.ReadFile(in.log)
		return strings.Contains(string(raw), `"msg":"holding the VIP"`)
	}); err != nil {
		t.Fatal("the intruder never took the VIP: the scenario tests nothing")
	}
	if err := pollUntil(30*time.Second, func() bool {
		raw, _ := os.ReadFile(in.log)
		return strings.Contains(string(raw), "letting the VIP go") && neighMAC(ctx) == linkMAC(ctx, holderNode.ns)
	}); err != nil {
		t.Fatalf("the intruder kept the VIP, or the client still reaches it (neighbour %s, holder %s's MAC %s)", neighMAC(ctx), holder, linkMAC(ctx, holderNode.ns))
	}
	settledAt := time.Now()
	time.Sleep(5 * time.Second)
	if raw, _ := os.ReadFile(in.log); strings.Count(string(raw), `"msg":"holding the VIP"`) != 1 {
		t.Error("the intruder took the VIP again while still alone")
	}
	if mac := neighMAC(ctx); mac != linkMAC(ctx, holderNode.ns) {
		t.Errorf("the client's neighbour entry for the VIP moved to %s after the conflict settled", mac)
	}
	_, failed, why = outage(p.finish(), at)
	l.waitHolder(5*time.Second, holder)
	t.Logf("FIGURE control-plane VIP, a node that cannot join takes it: settled %v after it started, the VIP back on %s; %d requests failed (first: %s)",
		settledAt.Sub(at).Round(time.Millisecond), holder, failed, why)
	l.stopSpeaker(in)

	// Graceful stop of the holder's speaker (a static Pod removed or
	// updated): another node takes the VIP, with requests flowing.
	owner := l.node(l.waitHolder(10 * time.Second))
	p = l.probe(cpVIP4)
	time.Sleep(300 * time.Millisecond)
	at = time.Now()
	l.stopSpeaker(owner)
	l.waitHolder(10*time.Second, otherNames(l.nodes, owner.name)...)
	time.Sleep(time.Second)
	d, failed, why = outage(p.finish(), at)
	t.Logf("FIGURE control-plane VIP, holder's speaker stopped (SIGTERM): requests succeed again after %v; %d failed (first: %s)", d.Round(time.Millisecond), failed, why)
	if d < 0 {
		t.Fatalf("requests still failing after the holder's speaker stopped")
	}
	if has, _ := vipOn(ctx, owner); has {
		t.Errorf("%s's speaker stopped but left the VIP on its loopback", owner.name)
	}
}

func otherNames(nodes []*cpNode, not string) []string {
	var out []string
	for _, n := range nodes {
		if n.name != not {
			out = append(out, n.name)
		}
	}
	return out
}

// readyz asks n's own API server, from the client.
func (l *cpLab) readyz(n *cpNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(n.v4.String(), fmt.Sprint(cpPort))+"/readyz", nil)
	resp, err := l.hc.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

// vipOn reports whether n has the IPv4 VIP on its loopback.
func vipOn(ctx context.Context, n *cpNode) (bool, error) {
	out, err := netns.IP(ctx, "-n", n.ns, "-o", "addr", "show", "dev", "lo")
	return strings.Contains(out, " "+cpVIP4.String()+"/32 "), err
}

func kubectlApply(ctx context.Context, t *testing.T, l *cpLab, manifest string) {
	t.Helper()
	cmd := netns.Command(ctx, cpClient, filepath.Join(l.cluster.BinDir, "kubectl"), "--kubeconfig", l.kubecfg, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply through the VIP: %v: %s", err, out)
	}
}

func pollUntil(timeout time.Duration, f func() bool) error {
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
