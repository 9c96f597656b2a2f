package testcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options say what to run besides etcd and kube-apiserver.
type Options struct {
	// CRDDir, if set, names a directory whose *.yaml and *.yml files are
	// CustomResourceDefinitions to install; Start returns once all are
	// Established and served.
	CRDDir string
	// ControllerManager also runs kube-controller-manager with the
	// controllers herald relies on (EndpointSlice, namespace deletion,
	// garbage collection, service accounts). Node lifecycle and pod
	// garbage collection stay off: lab nodes have no kubelet, and those
	// controllers would mark their Pods not ready or delete them.
	ControllerManager bool
	// Log receives every process's output, each line tagged with the
	// process name. Nil writes one file per process into the data dir
	// (which Stop removes; ForTest prints their tails when a test fails).
	Log io.Writer
	// ExtraAPIServerArgs are added to kube-apiserver's flags, in
	// --flag=value form; one with the name of a default flag replaces it.
	// The address and port flags must not be overridden.
	ExtraAPIServerArgs []string
	// APIServer, if set, is the path of a kube-apiserver binary to run
	// instead of BinDir's, such as an older release's
	// ([MinimumAPIServer]); etcd still comes from BinDir. It cannot be
	// combined with ControllerManager, whose version must not be newer
	// than the API server's.
	APIServer string

	// NetNS, if set, names a network namespace (as `ip netns` knows it)
	// in which every process runs, for labs whose nodes live in
	// namespaces. Dial must then reach into it.
	NetNS string
	// Address is the address kube-apiserver binds and advertises (and
	// puts in its serving certificate); default 127.0.0.1. etcd and
	// kube-controller-manager stay on loopback.
	Address string
	// ServingIPs are further addresses in the API servers' serving
	// certificate: a VIP in front of them, the addresses of API servers
	// started with StartAPIServerIn.
	ServingIPs []string
	// EtcdAddress is the address etcd serves clients on; default
	// 127.0.0.1. Set it to an address of NetNS for API servers in other
	// namespaces (StartAPIServerIn).
	EtcdAddress string
	// Dial, if set, opens every connection the Cluster's clients and
	// readiness checks make (Config.Dial too), e.g. from inside NetNS.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)

	// Users are further identities the API server accepts, each with a
	// bearer token of its own (Cluster.KubeconfigFor writes a kubeconfig
	// for one): kubelets as system:node:NAME in group system:nodes, for
	// example.
	Users []User
	// ExtraControllers are kube-controller-manager controllers to run
	// besides the default set (see ControllerManager), for labs whose
	// nodes run a kubelet: "deployment-controller", "daemonset-controller"...
	ExtraControllers []string
}

// User is an identity of Options.Users.
type User struct {
	Name   string
	Groups []string
}

// Cluster is a running control plane. Its exported fields are set by Start
// and must not be changed.
type Cluster struct {
	// Config is an admin (system:masters) client configuration with QPS and
	// Burst raised so that tests are not throttled. Copy it (rest.CopyConfig)
	// before changing it.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file holding the same
	// credentials, for binaries under test (--kubeconfig) and kubectl.
	Kubeconfig string
	// BinDir is where the binaries were found; DataDir holds everything
	// the cluster writes and is removed by Stop.
	BinDir, DataDir string
	// APIServerURL is https://ADDRESS:PORT (Options.Address, default
	// 127.0.0.1). It stays the same across
	// StopAPIServer and StartAPIServer.
	APIServerURL string
	// EtcdURL is etcd's client URL.
	EtcdURL string

	opts          Options
	secrets       *secrets
	apiserverArgs []string
	logMu         sync.Mutex // serialises writes to opts.Log
	logClosers    []io.Closer

	mu        sync.Mutex
	stopped   bool
	etcd      *process
	apiserver *process
	kcm       *process
	more      []*APIServer
}

// Time limits for one process to become healthy. Warm starts take a few
// seconds; the limits are generous because CI machines are shared.
const (
	etcdStartTimeout      = 30 * time.Second
	apiserverStartTimeout = 90 * time.Second
	kcmStartTimeout       = 60 * time.Second
	// portAttempts bounds retries when a port picked as free was taken
	// by someone else before the process bound it.
	portAttempts = 3
)

// The service ranges: addresses that exist only as API objects (e2e/lab/README.md).
// Labs route it towards their nodes so that a ClusterIP is reachable
// before kube-proxy translates it.
const ServiceClusterIPRange = "198.19.0.0/16,2001:db8:ffff::/112"

// Start runs etcd, kube-apiserver and, if asked, kube-controller-manager,
// and returns once the API server is ready. On error everything already
// started is stopped again and the data dir removed; the error says which
// process failed and ends with the tail of its output.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	if opts.Address == "" {
		opts.Address = "127.0.0.1"
	}
	if net.ParseIP(opts.Address) == nil {
		return nil, fmt.Errorf("options: address %q is not an IP address", opts.Address)
	}
	if opts.APIServer != "" && opts.ControllerManager {
		return nil, errors.New("options: ControllerManager cannot run with another kube-apiserver than the one in the bin dir")
	}
	dataDir, err := makeDataDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: binDir, DataDir: dataDir, opts: opts}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()

	ips := []net.IP{net.ParseIP(opts.Address)}
	for _, a := range opts.ServingIPs {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, fmt.Errorf("options: serving IP %q is not an IP address", a)
		}
		ips = append(ips, ip)
	}
	if opts.EtcdAddress == "" {
		c.opts.EtcdAddress = "127.0.0.1"
	}
	if c.secrets, err = writeSecrets(dataDir, ips, opts.Users); err != nil {
		return nil, err
	}
	if err := c.startEtcd(ctx); err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	if err := c.startFirstAPIServer(ctx); err != nil {
		return nil, fmt.Errorf("starting kube-apiserver: %w", err)
	}
	if opts.ControllerManager {
		if err := c.startControllerManager(ctx); err != nil {
			return nil, fmt.Errorf("starting kube-controller-manager: %w", err)
		}
	}
	if opts.CRDDir != "" {
		if err := c.InstallCRDs(ctx, opts.CRDDir); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// makeDataDir prefers /dev/shm: etcd's writes dominate start-up and every
// test's API calls, and memory is faster than any disk.
func makeDataDir() (string, error) {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "herald-testcluster-")
	if err != nil && base != "" {
		dir, err = os.MkdirTemp("", "herald-testcluster-")
	}
	if err != nil {
		return "", fmt.Errorf("creating data dir: %w", err)
	}
	return dir, nil
}

func (c *Cluster) spawn(name string, args []string) (*process, error) {
	out, closer, err := openLog(c.opts.Log, &c.logMu, c.DataDir, name)
	if err != nil {
		return nil, err
	}
	c.logClosers = append(c.logClosers, closer)
	bin := filepath.Join(c.BinDir, name)
	if name == binAPIServer && c.opts.APIServer != "" {
		bin = c.opts.APIServer
	}
	if c.opts.NetNS != "" {
		// ip execs the binary, so the pid stays the binary's own.
		args = append([]string{"netns", "exec", c.opts.NetNS, bin}, args...)
		bin = "ip"
	}
	return startProcess(name, bin, args, out)
}

// startWithPorts starts a process on freshly picked ports and waits until
// it is ready, picking new ports when the old ones were taken meanwhile.
func (c *Cluster) startWithPorts(ctx context.Context, name string, nports int, timeout time.Duration,
	args func(ports []int) []string, ready func(ctx context.Context, ports []int) error,
) (*process, []int, error) {
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(nports)
		if err != nil {
			return nil, nil, err
		}
		p, err := c.spawn(name, args(ports))
		if err != nil {
			return nil, nil, err
		}
		err = waitReady(ctx, p, timeout, func(ctx context.Context) error { return ready(ctx, ports) })
		if err == nil {
			return p, ports, nil
		}
		_ = p.stop()
		if attempt < portAttempts && strings.Contains(p.tail.String(), "address already in use") {
			continue
		}
		return nil, nil, err
	}
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	args := func(ports []int) []string {
		client := "http://" + net.JoinHostPort(c.opts.EtcdAddress, strconv.Itoa(ports[0]))
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		return []string{
			"--name=herald",
			"--data-dir=" + filepath.Join(c.DataDir, "etcd"),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=herald=" + peer,
			// The data is thrown away with the cluster, so durability buys
			// nothing and fsync costs milliseconds per write.
			"--unsafe-no-fsync",
			"--log-level=warn",
		}
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: c.opts.Dial}}
	ready := func(ctx context.Context, ports []int) error {
		return httpOK(ctx, hc, "http://"+net.JoinHostPort(c.opts.EtcdAddress, strconv.Itoa(ports[0]))+"/health", "", `"health":"true"`)
	}
	p, ports, err := c.startWithPorts(ctx, binEtcd, 2, etcdStartTimeout, args, ready)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.etcd = p
	c.mu.Unlock()
	c.EtcdURL = "http://" + net.JoinHostPort(c.opts.EtcdAddress, strconv.Itoa(ports[0]))
	return nil
}

// apiserverFlags are kube-apiserver's flags for port; see Options for how
// ExtraAPIServerArgs combine with them.
func (c *Cluster) apiserverFlags(port int) []string {
	s := c.secrets
	defaults := []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=" + c.opts.Address,
		"--advertise-address=" + c.opts.Address,
		// The lease reconciler would publish the advertise address as the
		// "kubernetes" Service's endpoint and refuses a loopback one.
		// Nothing here reaches the API through that Service.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(c.DataDir, "apiserver-certs"),
		"--tls-cert-file=" + s.certFile,
		"--tls-private-key-file=" + s.keyFile,
		"--client-ca-file=" + s.caFile,
		"--token-auth-file=" + s.tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-key-file=" + s.saPubFile,
		"--service-account-signing-key-file=" + s.saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + ServiceClusterIPRange,
		// The ServiceAccount plugin rejects Pods in a namespace whose
		// "default" ServiceAccount the controller manager has not created
		// yet (or ever, without it). Nothing here runs containers that
		// would mount a token, so the plugin only adds flaky failures.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
	return mergeFlags(defaults, c.opts.ExtraAPIServerArgs)
}

// mergeFlags appends extra to defaults, except that an extra --name=value
// replaces the default of the same name (repeating a list flag would add
// to it instead, and scalar flags would depend on parse order).
func mergeFlags(defaults, extra []string) []string {
	name := func(a string) string {
		if !strings.HasPrefix(a, "--") {
			return ""
		}
		n, _, _ := strings.Cut(a, "=")
		return n
	}
	override := map[string]bool{}
	for _, a := range extra {
		if n := name(a); n != "" {
			override[n] = true
		}
	}
	var out []string
	for _, a := range defaults {
		if !override[name(a)] {
			out = append(out, a)
		}
	}
	return append(out, extra...)
}

func (c *Cluster) startFirstAPIServer(ctx context.Context) error {
	ready := func(ctx context.Context, ports []int) error {
		c.setAPIServerPort(ports[0])
		return c.apiserverReady(ctx)
	}
	p, ports, err := c.startWithPorts(ctx, binAPIServer, 1, apiserverStartTimeout, c.apiserverFlagsFor, ready)
	if err != nil {
		return err
	}
	c.apiserverArgs = c.apiserverFlags(ports[0])
	c.mu.Lock()
	c.apiserver = p
	c.mu.Unlock()
	return c.writeKubeconfig()
}

func (c *Cluster) apiserverFlagsFor(ports []int) []string { return c.apiserverFlags(ports[0]) }

func (c *Cluster) setAPIServerPort(port int) {
	c.APIServerURL = "https://" + net.JoinHostPort(c.opts.Address, strconv.Itoa(port))
	c.Config = &rest.Config{
		Host:            c.APIServerURL,
		BearerToken:     c.secrets.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.secrets.caPEM},
		// Tests create objects in bursts (10 000-Service benchmarks);
		// client-go's defaults of 5/10 would make them measure the limiter.
		QPS:   1000,
		Burst: 2000,
		Dial:  c.opts.Dial,
	}
}

// apiserverReady waits for /readyz, which covers etcd, the informers and
// the RBAC bootstrap, and then for the default namespace, which a separate
// controller creates shortly after and every test expects.
func (c *Cluster) apiserverReady(ctx context.Context) error {
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return fmt.Errorf("building HTTP client: %w", err)
	}
	hc.Timeout = 2 * time.Second
	tok := c.secrets.adminToken
	if err := httpOK(ctx, hc, c.APIServerURL+"/readyz", tok, ""); err != nil {
		return err
	}
	return httpOK(ctx, hc, c.APIServerURL+"/api/v1/namespaces/default", tok, "")
}

func (c *Cluster) writeKubeconfig() error {
	path := filepath.Join(c.DataDir, "kubeconfig")
	if err := c.writeKubeconfigFor(path, "admin", c.secrets.adminToken); err != nil {
		return err
	}
	c.Kubeconfig = path
	return nil
}

func (c *Cluster) writeKubeconfigFor(path, user, token string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["herald-test"] = &clientcmdapi.Cluster{
		Server:                   c.APIServerURL,
		CertificateAuthorityData: c.secrets.caPEM,
	}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["herald-test"] = &clientcmdapi.Context{Cluster: "herald-test", AuthInfo: user}
	kc.CurrentContext = "herald-test"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig for %s: %w", user, err)
	}
	return nil
}

// KubeconfigFor writes a kubeconfig for user, one of Options.Users, to
// path.
func (c *Cluster) KubeconfigFor(path, user string) error {
	tok, ok := c.secrets.userTokens[user]
	if !ok {
		return fmt.Errorf("writing kubeconfig for %s: not one of the cluster's users", user)
	}
	return c.writeKubeconfigFor(path, user, tok)
}

// CAFile is the cluster CA's certificate, which signed the API server's
// serving certificate.
func (c *Cluster) CAFile() string { return c.secrets.caFile }

// kcmControllers are the controllers herald's tests and lab depend on; see
// Options.ControllerManager for the ones deliberately left out.
var kcmControllers = []string{
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"namespace-controller",
	"garbage-collector-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"clusterrole-aggregation-controller",
}

func (c *Cluster) startControllerManager(ctx context.Context) error {
	s := c.secrets
	args := func(ports []int) []string {
		return []string{
			"--kubeconfig=" + c.Kubeconfig,
			// Without these it looks for in-cluster config to check who
			// calls /healthz and logs warnings on every start.
			"--authentication-kubeconfig=" + c.Kubeconfig,
			"--authorization-kubeconfig=" + c.Kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + filepath.Join(c.DataDir, "kcm-certs"),
			"--leader-elect=false",
			"--controllers=" + strings.Join(append(slices.Clone(kcmControllers), c.opts.ExtraControllers...), ","),
			"--service-account-private-key-file=" + s.saKeyFile,
			"--root-ca-file=" + s.caFile,
			"--use-service-account-credentials=false",
			"--v=1",
		}
	}
	// Its serving certificate is self-signed at start-up; /healthz is only
	// probed here, on loopback, so verifying it would prove nothing.
	hc := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
			DialContext:     c.opts.Dial,
		},
	}
	ready := func(ctx context.Context, ports []int) error {
		return httpOK(ctx, hc, "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz", "", "")
	}
	p, _, err := c.startWithPorts(ctx, binControllerManager, 1, kcmStartTimeout, args, ready)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.kcm = p
	c.mu.Unlock()
	return nil
}

// StopAPIServer kills kube-apiserver, as a crash would, and leaves etcd
// and the controller manager running, so tests can watch clients ride out
// an API outage.
func (c *Cluster) StopAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("stopping kube-apiserver: cluster is stopped")
	}
	p := c.apiserver
	c.apiserver = nil
	if err := p.stop(); err != nil {
		return fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same address and with the same credentials, so existing clients
// reconnect without being rebuilt. It returns once the server is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("starting kube-apiserver: cluster is stopped")
	}
	if c.apiserver != nil {
		return errors.New("starting kube-apiserver: already running")
	}
	p, err := c.spawn(binAPIServer, c.apiserverArgs)
	if err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	if err := waitReady(ctx, p, apiserverStartTimeout, c.apiserverReady); err != nil {
		_ = p.stop()
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	c.apiserver = p
	return nil
}

// Stop kills every process of the cluster and removes its data dir.
// Calling Stop again does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	for _, a := range c.more {
		errs = append(errs, a.proc.stop())
	}
	for _, p := range []*process{c.kcm, c.apiserver, c.etcd} {
		errs = append(errs, p.stop())
	}
	for _, cl := range c.logClosers {
		errs = append(errs, cl.Close())
	}
	if c.DataDir != "" {
		errs = append(errs, os.RemoveAll(c.DataDir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stopping test cluster: %w", err)
	}
	return nil
}

// PIDs returns the process ids of the running control-plane processes by
// binary name, for labs that record them so another process can clean up.
func (c *Cluster) PIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := map[string]int{}
	for _, p := range []*process{c.etcd, c.apiserver, c.kcm} {
		if p != nil {
			pids[p.name] = p.cmd.Process.Pid
		}
	}
	return pids
}

// logTails returns the last lines each process printed, for failing tests.
func (c *Cluster) logTails(lines int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	procs := []*process{c.etcd, c.apiserver, c.kcm}
	for _, a := range c.more {
		procs = append(procs, a.proc)
	}
	for _, p := range procs {
		if p != nil {
			fmt.Fprintf(&b, "--- last output of %s:\n%s\n", p.name, p.tail.lastLines(lines))
		}
	}
	return b.String()
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners are held until all ports are picked, so no two are equal.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady polls check until it succeeds, p exits, timeout passes or ctx
// ends, whichever is first.
func waitReady(ctx context.Context, p *process, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if exited, err := p.exited(); exited {
			return err
		}
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			// The process may have died while check was blocked.
			if exited, exitErr := p.exited(); exited {
				return exitErr
			}
			return fmt.Errorf("%s not ready: %w (last check: %v); last output:\n%s",
				p.name, ctx.Err(), err, p.tail.lastLines(30))
		case <-p.done:
		case <-tick.C:
		}
	}
}

// httpOK GETs url and succeeds on 200 with a body containing want.
func httpOK(ctx context.Context, hc *http.Client, url, token, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if want != "" && !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: body %q lacks %q", url, body, want)
	}
	return nil
}
