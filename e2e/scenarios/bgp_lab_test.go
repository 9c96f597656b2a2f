//go:build privileged

package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab/lab"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
)

// The BGP scenarios run in their own lab (e2e/topologies/bgp.clab.yml),
// brought up by the first of them and torn down by TestMain.
const (
	bgpPassword  = "herald-lab-md5" // BIRD's password in bgp/bird.conf
	bgpCommunity = "64512:100"
	bgpLarge     = "64512:1:2"
)

var (
	bgpOnce sync.Once
	bgpL    *lab.Lab
	bgpDir  string
	bgpErr  error
)

// bgpLab returns the BGP lab, bringing it up (with its BGPPeers, the MD5
// Secret and the pool) on first use.
func bgpLab(t *testing.T) *lab.Lab {
	t.Helper()
	bgpOnce.Do(func() { bgpErr = upBGPLab() })
	if bgpErr != nil {
		t.Fatalf("bringing up the bgp lab: %v", bgpErr)
	}
	if bgpL == nil {
		t.Fatal("the bgp lab is already down: TestBGPLabTeardown (bgp_test.go) ran before this scenario; a BGP scenario's file must sort before bgp_test.go")
	}
	return bgpL
}

func upBGPLab() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "herald-e2e-bgp-")
	if err != nil {
		return err
	}
	bgpDir = dir
	// FRR's daemons drop to user frr and read their config from here.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	l, err := lab.Up(ctx, lab.Options{
		Topology: filepath.Join("..", "topologies", "bgp.clab.yml"),
		Instance: "e2ebgp", StateDir: dir, Log: log, Kubelet: lab.KubeletFromEnv(),
	})
	if err != nil {
		return err
	}
	bgpL = l
	fmt.Fprintf(os.Stderr, "bgp lab up in %v (state %s)\n", time.Since(start).Round(time.Millisecond), dir)
	return configureBGP(ctx, l)
}

// downBGPLab tears the BGP lab down if a scenario brought it up and
// returns the exit code to use.
func downBGPLab(code int) int {
	if bgpL == nil {
		return code
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "bgp lab logs were in %s/logs\n", bgpDir)
		dumpLogs(bgpDir)
	}
	if err := bgpL.Down(); err != nil {
		fmt.Fprintf(os.Stderr, "tearing down the bgp lab: %v\n", err)
		return 1
	}
	bgpL = nil
	return code
}

// configureBGP creates the MD5 Secret, a BGPPeer per router (eBGP: nodes
// AS 64512, FRR 64513, BIRD 64514 with TCP-MD5) and the pool "bgp"
// announced over BGP only, then waits for all six sessions.
func configureBGP(ctx context.Context, l *lab.Lab) error {
	core := l.Kube.CoreV1()
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "herald-system"}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := core.Secrets("herald-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bird-md5"},
		StringData: map[string]string{"password": bgpPassword},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	hc, err := versioned.NewForConfig(l.Config)
	if err != nil {
		return err
	}
	fast := func(s string) *metav1.Duration {
		d, _ := time.ParseDuration(s)
		return &metav1.Duration{Duration: d}
	}
	peers := []heraldv1.BGPPeer{
		{ObjectMeta: metav1.ObjectMeta{Name: "frr"}, Spec: heraldv1.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64513, PeerAddress: l.Node("frr").Address.String(),
			HoldTime: fast("3s"), KeepaliveTime: fast("1s"), ConnectTime: fast("1s"),
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "bird"}, Spec: heraldv1.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64514, PeerAddress: l.Node("bird").Address.String(),
			HoldTime: fast("3s"), KeepaliveTime: fast("1s"), ConnectTime: fast("1s"),
			PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "bird-md5", Key: "password"},
		}},
	}
	for i := range peers {
		if _, err := hc.HeraldV1alpha1().BGPPeers().Create(ctx, &peers[i], metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating BGPPeer %s: %w", peers[i].Name, err)
		}
	}
	pool := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"203.0.113.64/27", "2001:db8:113:64::/120"},
		Announce: heraldv1.Announce{BGP: &heraldv1.BGPAnnounce{BGPAdvertisement: heraldv1.BGPAdvertisement{
			Communities: []string{bgpCommunity}, LargeCommunities: []string{bgpLarge},
		}}},
	}}
	if _, err := hc.HeraldV1alpha1().IPPools().Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating IPPool bgp: %w", err)
	}
	start := time.Now()
	var frr, bird []string
	var ferr, berr error
	for {
		frr, ferr = frrEstablished(ctx, l)
		bird, berr = birdEstablished(ctx, l)
		if len(frr) == 3 && len(bird) == 3 {
			fmt.Fprintf(os.Stderr, "bgp sessions up %v after the BGPPeers: FRR %v, BIRD %v\n",
				time.Since(start).Round(time.Millisecond), frr, bird)
			return nil
		}
		if time.Since(start) > time.Minute {
			return fmt.Errorf("BGP sessions not up after 1m: FRR established with %v (%v), BIRD with %v (%v)", frr, ferr, bird, berr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// frrJSON runs an FRR command that prints JSON and decodes it; vtysh may
// print a complaint about its own config (the lab has none) first.
func frrJSON(ctx context.Context, l *lab.Lab, v any, cmd string) error {
	out, err := l.RouterQuery(ctx, "frr", cmd)
	if err != nil {
		return err
	}
	if i := strings.Index(out, "{"); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("parsing the output of FRR's %q: %w\n%s", cmd, err, out)
	}
	return nil
}

// frrEstablished lists the neighbours whose session with FRR is up.
func frrEstablished(ctx context.Context, l *lab.Lab) ([]string, error) {
	var nbrs map[string]struct {
		State string `json:"bgpState"`
	}
	if err := frrJSON(ctx, l, &nbrs, "show bgp neighbors json"); err != nil {
		return nil, fmt.Errorf("parsing FRR neighbours: %w", err)
	}
	var up []string
	for a, n := range nbrs {
		if n.State == "Established" {
			up = append(up, a)
		}
	}
	sort.Strings(up)
	return up, nil
}

// birdEstablished lists BIRD's eBGP protocols with the nodes (node1..)
// that are Established.
func birdEstablished(ctx context.Context, l *lab.Lab) ([]string, error) {
	return birdUp(ctx, l, "node")
}

// birdUp lists BIRD's BGP protocols named prefix* that are Established.
func birdUp(ctx context.Context, l *lab.Lab, prefix string) ([]string, error) {
	out, err := l.RouterQuery(ctx, "bird", "show", "protocols")
	if err != nil {
		return nil, err
	}
	var up []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "BGP" && f[3] == "up" && f[len(f)-1] == "Established" && strings.HasPrefix(f[0], prefix) {
			up = append(up, f[0])
		}
	}
	return up, nil
}

// bgpService registers backends and a LoadBalancer Service in the BGP
// lab and returns its addresses (IPv4 first).
func bgpService(t *testing.T, l *lab.Lab, name string, local, dual bool, backends ...string) []netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range backends {
		if err := l.AddBackend(ctx, "default", name, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.CreateService(ctx, lab.ServiceSpec{Name: name, Local: local, DualStack: dual}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = l.DeleteService(ctx, "default", name)
		for _, n := range l.Nodes() {
			_ = l.RemoveBackend(ctx, "default", name, n)
		}
	})
	if err := l.WaitEndpoints(ctx, "default", name, len(backends)); err != nil {
		t.Fatalf("endpoints of %s: %v", name, err)
	}
	families := 1
	if dual {
		families = 2
	}
	addrs, err := l.WaitServing(ctx, "default", name, families)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Is4() && !addrs[j].Is4() })
	t.Logf("service %s: %v", name, addrs)
	return addrs
}

// nodeAddrs are the given nodes' addresses of addr's family, sorted.
func nodeAddrs(l *lab.Lab, v6 bool, nodes ...string) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		if v6 {
			out = append(out, l.Node(n).Address6)
		} else {
			out = append(out, l.Node(n).Address)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// waitKernelRoute waits until router's kernel route to addr has exactly
// the gateways want and returns when it first saw them.
func waitKernelRoute(t *testing.T, l *lab.Lab, router string, addr netip.Addr, want []netip.Addr, d time.Duration) time.Time {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	var got []netip.Addr
	var err error
	for {
		got, err = l.KernelRoute(ctx, router, host(addr))
		now := time.Now()
		if err == nil && slices.Equal(got, want) {
			return now
		}
		if now.After(deadline) {
			t.Fatalf("%s's kernel route to %s: gateways %v (err %v), want %v", router, addr, got, err, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// kernelRouteSeen is when firstKernelRoute saw the route it waited for.
type kernelRouteSeen struct {
	at  time.Time
	err error
}

// firstKernelRoute polls router's kernel route to addr until its gateways
// are want, like waitKernelRoute, but reports instead of failing the
// test, so that it can run beside the change it times. It gives up when
// ctx ends.
func firstKernelRoute(ctx context.Context, l *lab.Lab, router string, addr netip.Addr, want []netip.Addr) kernelRouteSeen {
	var got []netip.Addr
	var err error
	for {
		got, err = l.KernelRoute(ctx, router, host(addr))
		now := time.Now()
		if err == nil && slices.Equal(got, want) {
			return kernelRouteSeen{at: now}
		}
		select {
		case <-ctx.Done():
			return kernelRouteSeen{err: fmt.Errorf("last seen gateways %v (err %v): %w", got, err, ctx.Err())}
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// frrPath is one path of `show bgp <afi> unicast <prefix> json`.
type frrPath struct {
	Community struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	Nexthops []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

func frrPaths(t *testing.T, l *lab.Lab, addr netip.Addr) []frrPath {
	t.Helper()
	afi := "ipv4"
	if addr.Is6() {
		afi = "ipv6"
	}
	var r struct {
		Paths []frrPath `json:"paths"`
	}
	if err := frrJSON(context.Background(), l, &r, "show bgp "+afi+" unicast "+host(addr).String()+" json"); err != nil {
		t.Fatal(err)
	}
	return r.Paths
}

// birdGateways lists the next hops of BIRD's routes to addr, sorted.
func birdGateways(t *testing.T, l *lab.Lab, addr netip.Addr) ([]netip.Addr, string) {
	t.Helper()
	out, err := l.RouterQuery(context.Background(), "bird", "show", "route", host(addr).String(), "all")
	if err != nil {
		t.Fatal(err)
	}
	var gws []netip.Addr
	for _, m := range birdVia.FindAllStringSubmatch(out, -1) {
		if a, err := netip.ParseAddr(m[1]); err == nil {
			gws = append(gws, a)
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	return slices.Compact(gws), out
}

// bgpReach requests addr from the lab's client until it answers.
func bgpReach(t *testing.T, l *lab.Lab, addr netip.Addr) lab.Reply {
	t.Helper()
	hc := l.HTTPClient(l.Client(), time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := lab.Get(context.Background(), hc, addr, 80)
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("client cannot reach %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// saveProfiles writes node1's speaker heap profile and a 30 s CPU profile
// taken while nothing changes into dir (go tool pprof reads them with the
// speaker binary), to see where its memory and idle CPU go.
func saveProfiles(t *testing.T, l *lab.Lab, dir string) {
	t.Helper()
	node := l.Nodes()[0]
	for _, p := range []struct{ file, path string }{
		{"heap.pb.gz", "/debug/pprof/heap?gc=1"},
		{"cpu-idle.pb.gz", "/debug/pprof/profile?seconds=30"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		raw, err := l.SpeakerGet(ctx, node, p.path)
		cancel()
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, p.file), raw, 0o644)
		}
		if err != nil {
			t.Errorf("speaker profile %s: %v", p.path, err)
			continue
		}
		t.Logf("speaker on %s: %s saved in %s", node, p.path, filepath.Join(dir, p.file))
	}
}

// procCPU is the user+system CPU time process pid has used (clock ticks
// of 10 ms, as /proc reports them).
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields start after its ')'.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
