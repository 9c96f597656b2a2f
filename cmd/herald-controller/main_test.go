package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/testcluster"

	"github.com/heraldlb/herald/internal/docref"
)

// The test binary doubles as herald-controller: with this variable set it
// runs main's run() instead of the tests, so the tests exercise the real
// command line, signals and exit codes in a separate process whose CPU and
// memory can be read from /proc.
const runMainEnv = "HERALD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

type proc struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	mu   *sync.Mutex
	done chan struct{}
}

func startController(t testing.TB, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	p := &proc{cmd: cmd, out: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	pr, pw := net.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting controller: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("controller output:\n%s", p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "-load-balancer-class"},
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"--log-level=verbose"}, 2, "invalid --log-level"},
		{[]string{"--load-balancer-class="}, 2, "must not be empty"},
		{[]string{"--only-class=maybe"}, 2, "invalid boolean"},
		{[]string{"stray"}, 2, "unexpected argument"},
		{[]string{"--version"}, 0, "herald-controller dev (revision "},
	} {
		cmd := exec.Command(os.Args[0], tc.args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
		out, err := cmd.CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		}
		if code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: exit %d, output %q; want exit %d containing %q", tc.args, code, out, tc.code, tc.want)
		}
	}
	// --help lists every flag of the command-line contract (docs/reference.md) with its default.
	cmd := exec.Command(os.Args[0], "--help")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, _ := cmd.CombinedOutput()
	for _, f := range []string{"-kubeconfig", "-log-level", "-load-balancer-class", "herald.dev/lb", "-only-class", "-metrics-addr", ":7472", "-leader-elect", "-version"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("--help lacks %q:\n%s", f, out)
		}
	}
}

type fixture struct {
	c      *testcluster.Cluster
	kube   kubernetes.Interface
	herald versioned.Interface
}

func newFixture(t testing.TB) *fixture {
	c := testcluster.ForTest(t, testcluster.Options{CRDDir: "../../config/crd/bases"})
	return &fixture{c: c, kube: kubernetes.NewForConfigOrDie(c.Config), herald: versioned.NewForConfigOrDie(c.Config)}
}

func (f *fixture) pool(t testing.TB, name, cidr string) {
	t.Helper()
	_, err := f.herald.HeraldV1alpha1().IPPools().Create(context.Background(), &heraldv1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: heraldv1.IPPoolSpec{Addresses: []string{cidr}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) ns(t testing.TB, name string) {
	t.Helper()
	if _, err := f.kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func svc(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			Ports:                         []corev1.ServicePort{{Port: 80}},
			AllocateLoadBalancerNodePorts: ptr.To(false),
		},
	}
}

func (f *fixture) waitAddr(t testing.TB, ns, name string) string {
	t.Helper()
	var ip string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := f.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
			return false, nil
		}
		ip = s.Status.LoadBalancer.Ingress[0].IP
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s/%s got no address", ns, name)
	}
	return ip
}

func TestServesMetricsAndLeaderElection(t *testing.T) {
	f := newFixture(t)
	f.ns(t, "herald-system")
	f.ns(t, "app")
	f.pool(t, "lan", "198.51.100.0/28")

	metricsA := freeAddr(t)
	a := startControllerEnv(t, "ctrl-a", "--kubeconfig", f.c.Kubeconfig, "--leader-elect", "--metrics-addr", metricsA)
	waitHTTP(t, "http://"+metricsA+"/readyz", 200)
	if _, err := f.kube.CoreV1().Services("app").Create(context.Background(), svc("app", "one"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ip := f.waitAddr(t, "app", "one"); ip != "198.51.100.0" {
		t.Errorf("one got %s", ip)
	}
	// Pool metrics follow the batched pool sync, and the allocation
	// counter the status write the test saw (by a few instructions), so
	// wait for them.
	want := []string{`herald_pool_addresses{family="IPv4",pool="lan",state="allocated"} 1`,
		`herald_pool_addresses{family="IPv4",pool="lan",state="free"} 15`, `herald_allocations_total{pool="lan"} 1`, "process_resident_memory_bytes"}
	var body string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		body = get(t, "http://"+metricsA+"/metrics")
		for _, m := range want {
			if !strings.Contains(body, m) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for _, m := range want {
			if !strings.Contains(body, m) {
				t.Errorf("metrics lack %q", m)
			}
		}
	}
	// A standby waits; the leader's clean exit hands over at once.
	metricsB := freeAddr(t)
	b := startControllerEnv(t, "ctrl-b", "--kubeconfig", f.c.Kubeconfig, "--leader-elect", "--metrics-addr", metricsB)
	waitHTTP(t, "http://"+metricsB+"/readyz", 200) // a standby counts as ready
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("controller did not exit on SIGTERM")
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	var lease *coordinationv1.Lease
	if _, err := f.kube.CoreV1().Services("app").Create(context.Background(), svc("app", "two"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ip := f.waitAddr(t, "app", "two"); ip != "198.51.100.1" {
		t.Errorf("two got %s after failover", ip)
	}
	lease, err = f.kube.CoordinationV1().Leases("herald-system").Get(context.Background(), "herald-controller", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "ctrl-b" {
		t.Errorf("lease holder = %v, %v; want ctrl-b", lease.Spec.HolderIdentity, err)
	}
	_ = b
}

func startControllerEnv(t testing.TB, pod string, args ...string) *proc {
	t.Setenv("POD_NAME", pod)
	t.Setenv("POD_NAMESPACE", "herald-system")
	return startController(t, args...)
}

func waitHTTP(t testing.TB, url string, code int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == code, nil
	})
	if err != nil {
		t.Fatalf("%s never answered %d", url, code)
	}
}

func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		sb.WriteString(sc.Text() + "\n")
	}
	return sb.String()
}

// procStats reads a process's CPU seconds and peak RSS from /proc.
func procStats(pid int) (cpu time.Duration, peakRSS int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the parenthesised command name; utime and stime are 14 and 15.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			peakRSS = kb * 1024
		}
	}
	return cpu, peakRSS, nil
}

// apiWrites sums the API server's mutating requests so far.
func apiWrites(t testing.TB, kube kubernetes.Interface) float64 {
	raw, err := kube.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("reading API server metrics: %v", err)
	}
	total := 0.0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		if !strings.Contains(line, `verb="POST"`) && !strings.Contains(line, `verb="PUT"`) && !strings.Contains(line, `verb="PATCH"`) {
			continue
		}
		v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		total += v
	}
	return total
}

// BenchmarkScale10000 creates 10 000 LoadBalancer Services at once against
// a real API server and reports how long until all have addresses, the
// controller's CPU seconds and peak RSS, and the API server's write rate;
// then restarts the controller and checks that no address changed.
func BenchmarkScale10000(b *testing.B) {
	const n = 10000
	for b.Loop() {
		f := newFixture(b)
		f.ns(b, "scale")
		f.pool(b, "big", "198.18.0.0/16")
		metrics := freeAddr(b)
		ctrl := startController(b, "--kubeconfig", f.c.Kubeconfig, "--metrics-addr", metrics, "--log-level", "warn")
		waitHTTP(b, "http://"+metrics+"/readyz", 200)
		cpu0, _, _ := procStats(ctrl.cmd.Process.Pid)

		var assigned atomic.Int64
		var lastAssigned atomic.Int64
		fac := informers.NewSharedInformerFactoryWithOptions(f.kube, 0, informers.WithNamespace("scale"))
		seen := sync.Map{}
		count := func(obj any) {
			s := obj.(*corev1.Service)
			if len(s.Status.LoadBalancer.Ingress) > 0 {
				if _, loaded := seen.LoadOrStore(s.Name, s.Status.LoadBalancer.Ingress[0].IP); !loaded {
					assigned.Add(1)
					lastAssigned.Store(time.Now().UnixNano())
				}
			}
		}
		_, _ = fac.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: count, UpdateFunc: func(_, o any) { count(o) }})
		stop := make(chan struct{})
		fac.Start(stop)
		fac.WaitForCacheSync(stop)

		writes0 := apiWrites(b, f.kube)
		start := time.Now()
		var wg sync.WaitGroup
		next := atomic.Int64{}
		var createErrs atomic.Int64
		for range 64 {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= n {
						return
					}
					if _, err := f.kube.CoreV1().Services("scale").Create(context.Background(), svc("scale", fmt.Sprintf("s%05d", i)), metav1.CreateOptions{}); err != nil {
						createErrs.Add(1)
					}
				}
			})
		}
		wg.Wait()
		created := time.Since(start)
		if e := createErrs.Load(); e > 0 {
			b.Fatalf("%d creates failed", e)
		}
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Minute, true, func(context.Context) (bool, error) {
			return assigned.Load() == n, nil
		})
		if err != nil {
			b.Fatalf("only %d of %d Services assigned", assigned.Load(), n)
		}
		allAssigned := time.Unix(0, lastAssigned.Load()).Sub(start)
		writes := apiWrites(b, f.kube) - writes0
		cpu1, rss, err := procStats(ctrl.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		close(stop)

		// Restart: nothing may change.
		if err := ctrl.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		<-ctrl.done
		before := map[string]string{}
		dups := map[string]string{}
		seen.Range(func(k, v any) bool {
			before[k.(string)] = v.(string)
			if o, dup := dups[v.(string)]; dup {
				b.Errorf("duplicate %s: %s and %s", v, o, k)
			}
			dups[v.(string)] = k.(string)
			return true
		})
		restart := time.Now()
		metrics2 := freeAddr(b)
		startController(b, "--kubeconfig", f.c.Kubeconfig, "--metrics-addr", metrics2, "--log-level", "warn")
		waitHTTP(b, "http://"+metrics2+"/readyz", 200)
		ready := time.Since(restart)
		time.Sleep(5 * time.Second) // let the restarted binary's workers go through every Service in the API server
		list, err := f.kube.CoreV1().Services("scale").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		changed := 0
		for _, s := range list.Items {
			if len(s.Status.LoadBalancer.Ingress) == 0 || s.Status.LoadBalancer.Ingress[0].IP != before[s.Name] {
				changed++
			}
		}
		if changed > 0 {
			b.Errorf("%d addresses changed across a controller restart", changed)
		}

		b.ReportMetric(created.Seconds(), "s-api-create-all")
		b.ReportMetric(allAssigned.Seconds(), "s-all-assigned")
		b.ReportMetric((cpu1 - cpu0).Seconds(), "s-controller-cpu")
		b.ReportMetric(float64(rss)/1e6, "MB-peak-rss")
		b.ReportMetric(writes/allAssigned.Seconds(), "api-writes/s")
		b.ReportMetric(ready.Seconds(), "s-restart-ready")
		b.ReportMetric(float64(changed), "changed-after-restart")
	}
}

// TestReference keeps the command-line block of docs/reference.md equal
// to --help.
func TestReference(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--help")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, _ := cmd.CombinedOutput()
	docref.Check(t, "herald-controller", string(out))
}
