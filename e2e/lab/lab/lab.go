package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
	"github.com/heraldlb/herald/internal/testcluster"
)

// Options configure Up.
type Options struct {
	// Topology is the path of a *.clab.yml file.
	Topology string
	// RepoRoot is herald's source tree (default: found from the working
	// directory); herald's binaries are built from it.
	RepoRoot string
	// Instance names this lab's namespaces (hl-lab-INSTANCE-NODE) and its
	// default state dir; default: the topology's name. Tests pick their
	// own so that they never collide with a demo left running.
	Instance string
	// StateDir defaults to StateDir(Instance).
	StateDir string
	// Log receives progress lines (nil: discard).
	Log *slog.Logger
	// SpeakerArgs are added to every herald-speaker's flags.
	SpeakerArgs []string
	// SkipDeps skips hack/lab-deps.sh.
	SkipDeps bool
	// BinDir, if set, holds prebuilt herald-controller, herald-speaker,
	// backend and pause binaries, and nothing is built (default:
	// $HERALD_LAB_BINDIR, else they are built from RepoRoot into
	// StateDir/bin).
	BinDir string
	// BesideMetalLB moves herald's speakers to the ports the migration
	// guide gives them so that they run beside MetalLB's (memberlist 7947,
	// metrics 7474): through the kustomize component
	// config/components/beside-metallb in a kubelet lab, by flags
	// otherwise.
	BesideMetalLB bool
	// Kubelet runs a real node on every node namespace: containerd, runc
	// and a kubelet that registers the node, with Pods networked by the
	// CNI bridge plugin, and kube-scheduler beside the API server.
	// Backends are then Deployments of the lab's backend image. Without
	// it the runner writes Node objects itself and backends are
	// host-network processes registered as Pods.
	Kubelet bool
}

// BinDirEnv names prebuilt binaries for Options.BinDir.
const BinDirEnv = "HERALD_LAB_BINDIR"

// ModeEnv chooses the nodes of the labs that scenarios, benches and the
// demo bring up: "process" for hand-written nodes with herald's binaries
// as processes, anything else (the default) for kubelet nodes
// (Options.Kubelet).
const ModeEnv = "HERALD_LAB_MODE"

// KubeletFromEnv reports whether ModeEnv asks for kubelet nodes.
func KubeletFromEnv() bool { return os.Getenv(ModeEnv) != "process" }

// BackendPort is where every node's backend listens (host network).
const BackendPort = 8080

// Lab is a running lab, built by Up (which owns its processes) or opened
// by Attach.
type Lab struct {
	Topo     *topology.Topology
	StateDir string
	BinDir   string
	// Kube is an admin client; Config its configuration (it dials into the
	// control-plane namespace, so it works from the host).
	Kube   kubernetes.Interface
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for processes inside the lab's
	// namespaces (kubectl, herald binaries).
	Kubeconfig string

	log     *slog.Logger
	owned   bool
	opts    Options
	cluster *testcluster.Cluster
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// imageArchives are the OCI archives every kubelet node imports.
	imageArchives []string

	// instanceLock is held while this process owns the lab: a second Up
	// of the same instance (its namespaces have the same names) fails at
	// once instead of deleting the live lab's namespaces as leftovers.
	instanceLock *os.File

	mu    sync.Mutex
	state *State
	cmds  map[int]*exec.Cmd // owned processes by pid
	done  map[int]chan struct{}
}

// Up builds the lab described by opts.Topology and returns once every
// component is ready. On error everything already built is torn down.
func Up(ctx context.Context, opts Options) (_ *Lab, err error) {
	start := time.Now()
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces, veths, nftables)")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	topo, err := topology.Load(opts.Topology)
	if err != nil {
		return nil, err
	}
	if opts.RepoRoot == "" {
		if opts.RepoRoot, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	if opts.Instance == "" {
		opts.Instance = topo.Name
	}
	topo.SetInstance(opts.Instance)
	if opts.StateDir == "" {
		opts.StateDir = StateDir(opts.Instance)
	}
	if opts.BinDir == "" {
		opts.BinDir = os.Getenv(BinDirEnv)
	}
	binDir := opts.BinDir
	if binDir == "" {
		binDir = filepath.Join(opts.StateDir, "bin")
	}
	l := &Lab{
		Topo: topo, StateDir: opts.StateDir, BinDir: binDir,
		log: opts.Log, owned: true, opts: opts,
		cmds: map[int]*exec.Cmd{}, done: map[int]chan struct{}{},
	}
	if l.instanceLock, err = lockInstance(opts.Instance); err != nil {
		return nil, err
	}
	if err := l.claimStateDir(); err != nil {
		_ = l.instanceLock.Close()
		return nil, err
	}
	abs, _ := filepath.Abs(opts.Topology)
	l.state = &State{Name: topo.Name, Instance: opts.Instance, File: abs, SupervisorPID: os.Getpid(), Started: start,
		Kubelet: opts.Kubelet}
	if err := l.saveState(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.log.Error("lab bring-up failed; tearing down", "err", err)
			_ = l.Down()
		}
	}()
	if !opts.SkipDeps {
		if out, err := netns.Run(ctx, "", filepath.Join(opts.RepoRoot, "hack/lab-deps.sh")); err != nil {
			return nil, fmt.Errorf("installing lab dependencies: %w (%s)", err, out)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel

	// Compiling takes longest; it overlaps the network and etcd start.
	buildErr := make(chan error, 1)
	go func() { buildErr <- l.build(ctx) }()

	t := time.Now()
	if err := l.buildNetwork(ctx); err != nil {
		return nil, errors.Join(err, <-buildErr)
	}
	l.log.Info("network built", "took", since(t))
	t = time.Now()
	if err := l.startControlPlane(ctx); err != nil {
		return nil, errors.Join(err, <-buildErr)
	}
	l.log.Info("control plane ready", "apiserver", l.cluster.APIServerURL, "took", since(t))
	if err := <-buildErr; err != nil {
		return nil, err
	}
	t = time.Now()
	if opts.Kubelet {
		if err := l.startKubeletNodes(ctx); err != nil {
			return nil, err
		}
	} else {
		if err := l.registerNodes(ctx); err != nil {
			return nil, err
		}
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.heartbeat(runCtx) }()
	}
	if err := l.startNodes(ctx); err != nil {
		return nil, err
	}
	if err := l.startRouters(ctx); err != nil {
		return nil, err
	}
	if err := l.waitReady(ctx); err != nil {
		return nil, err
	}
	l.log.Info("nodes ready", "took", since(t))
	l.mu.Lock()
	l.state.Ready = true
	l.state.UpSeconds = time.Since(start).Seconds()
	l.mu.Unlock()
	if err := l.saveState(); err != nil {
		return nil, err
	}
	l.log.Info("lab up", "topology", topo.Name, "took", since(start), "kubeconfig", l.Kubeconfig)
	return l, nil
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// UpTime is how long bring-up took.
func (l *Lab) UpTime() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Duration(l.state.UpSeconds * float64(time.Second))
}

// lockInstance takes the lock of instance for this process's lifetime or
// until Down: an exclusive flock on a file under StateRoot.
func lockInstance(instance string) (*os.File, error) {
	if err := os.MkdirAll(StateRoot, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(StateRoot, instance+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lab instance %q is in use by another process (namespaces %slab-%s-*): wait for it, or take the team lock before running labs: %w",
			instance, topology.NamespacePrefix, instance, err)
	}
	return f, nil
}

// claimStateDir refuses a lab that is still running and clears a stale one.
func (l *Lab) claimStateDir() error {
	if st, err := LoadState(l.StateDir); err == nil {
		if sup := (Proc{PID: st.SupervisorPID}); sup.PID != os.Getpid() && processExists(sup.PID) {
			return fmt.Errorf("lab %s is already up (supervisor pid %d); run `down %s` first", st.Name, sup.PID, st.Name)
		}
		l.log.Info("removing the remains of an earlier lab", "dir", l.StateDir)
		if err := DownDir(l.StateDir, l.log); err != nil {
			return err
		}
	}
	// Namespaces of this topology left without state (a crash before the
	// first save) would make `ip netns add` fail.
	for _, ns := range netns.List(topology.NamespacePrefix + "lab-" + l.opts.Instance + "-") {
		l.log.Info("deleting a leftover namespace", "ns", ns)
		if _, err := netns.IP(context.Background(), "netns", "del", ns); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(l.StateDir, "logs"), 0o755)
}

func processExists(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.save(l.StateDir)
}

// State returns a copy of the lab's recorded state.
func (l *Lab) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := *l.state
	s.Processes = append([]Proc(nil), s.Processes...)
	return s
}

// RepoRoot finds herald's source tree from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(raw), "module github.com/heraldlb/herald\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside herald's source tree (no go.mod of github.com/heraldlb/herald above the working directory)")
		}
		dir = parent
	}
}

// build compiles herald's binaries and the backend into BinDir.
func (l *Lab) build(ctx context.Context) error {
	if l.opts.BinDir != "" {
		l.log.Info("using prebuilt binaries", "dir", l.BinDir)
		return l.buildImages()
	}
	t := time.Now()
	if err := os.MkdirAll(l.BinDir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", l.BinDir+"/",
		"./cmd/herald-controller", "./cmd/herald-speaker", "./e2e/lab/backend", "./e2e/lab/pause")
	cmd.Dir = l.opts.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building herald binaries: %w\n%s", err, out)
	}
	l.log.Info("binaries built", "dir", l.BinDir, "took", since(t))
	return l.buildImages()
}

// buildImages writes the kubelet lab's image archive from the binaries.
func (l *Lab) buildImages() error {
	if !l.opts.Kubelet {
		return nil
	}
	t := time.Now()
	archives, err := buildImageArchives(l.StateDir, l.BinDir)
	if err != nil {
		return err
	}
	l.imageArchives = archives
	l.log.Info("images built", "took", since(t))
	return nil
}

// Attach opens the running lab whose state is in dir.
func Attach(dir string) (*Lab, error) {
	st, err := LoadState(dir)
	if err != nil {
		return nil, err
	}
	if !st.Ready {
		return nil, fmt.Errorf("lab %s in %s is not ready", st.Name, dir)
	}
	topo, err := topology.Load(st.File)
	if err != nil {
		return nil, err
	}
	if st.Instance != "" {
		topo.SetInstance(st.Instance)
	}
	l := &Lab{Topo: topo, StateDir: dir, BinDir: filepath.Join(dir, "bin"), state: st,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), Kubeconfig: st.Kubeconfig}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading the lab's kubeconfig: %w", err)
	}
	cfg.Dial = netns.Dialer(l.Topo.ByRole(topology.RoleControlPlane)[0].Namespace)
	cfg.QPS, cfg.Burst = 1000, 2000
	l.Config = cfg
	if l.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// Down tears the lab down: stops its processes, deletes its namespaces
// and its state. It can be called more than once.
func (l *Lab) Down() error {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	var errs []error
	if l.cluster != nil {
		errs = append(errs, l.cluster.Stop())
	}
	if !l.owned {
		return DownDir(l.StateDir, l.log)
	}
	errs = append(errs, DownDir(l.StateDir, l.log))
	if l.instanceLock != nil {
		_ = l.instanceLock.Close()
		l.instanceLock = nil
	}
	return errors.Join(errs...)
}

// DownDir tears down the lab recorded in dir from any process: asks a
// live supervisor to stop, kills every recorded process that is still
// the one started, deletes the namespaces and removes dir.
func DownDir(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st, err := LoadState(dir)
	if errors.Is(err, ErrNoLab) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.SupervisorPID != os.Getpid() && processExists(st.SupervisorPID) && isLabSupervisor(st.SupervisorPID) {
		// The supervisor tears down itself on SIGTERM; give it the time
		// its processes take to stop, then clean up whatever is left.
		_ = syscall.Kill(st.SupervisorPID, syscall.SIGTERM)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && processExists(st.SupervisorPID) {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := os.Stat(filepath.Join(dir, "state.json")); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	var errs []error
	for _, p := range st.Processes {
		_ = p.signal(syscall.SIGTERM)
	}
	for _, p := range st.Processes {
		if !p.waitGone(3 * time.Second) {
			errs = append(errs, p.signal(syscall.SIGKILL))
			p.waitGone(5 * time.Second)
		}
	}
	errs = append(errs, downRuntimes(st, dir))
	for _, ns := range st.Namespaces {
		if !strings.HasPrefix(ns, topology.NamespacePrefix) || !netns.Exists(ns) {
			continue
		}
		if _, err := netns.IP(context.Background(), "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if st.ClusterDir != "" && strings.Contains(st.ClusterDir, "herald-testcluster-") {
		errs = append(errs, os.RemoveAll(st.ClusterDir))
	}
	// FRR keeps its sockets per pathspace, named after the namespace.
	for _, ns := range st.Namespaces {
		_ = os.RemoveAll(filepath.Join("/var/run/frr", ns))
	}
	if err := errors.Join(errs...); err != nil {
		log.Error("teardown incomplete; state kept", "dir", dir, "err", err)
		return err
	}
	log.Info("lab down", "name", st.Name)
	return os.RemoveAll(dir)
}

// isLabSupervisor checks that pid runs a lab binary, so that a reused pid
// of an unrelated process is never signalled.
func isLabSupervisor(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(raw), "\x00")
	return strings.Contains(string(raw), "\x00up") || (len(args) > 0 && strings.Contains(args[0], "lab"))
}

// Node returns the topology node called name or panics: callers name
// nodes of the topology they brought up.
func (l *Lab) Node(name string) *topology.Node {
	n := l.Topo.Node(name)
	if n == nil {
		panic("lab: no node " + name)
	}
	return n
}

// Nodes returns the Kubernetes nodes' names.
func (l *Lab) Nodes() []string {
	var out []string
	for _, n := range l.Topo.ByRole(topology.RoleNode) {
		out = append(out, n.Name)
	}
	return out
}

// NodeByAddr returns the node holding addr, or "".
func (l *Lab) NodeByAddr(a netip.Addr) string {
	for _, n := range l.Topo.Nodes {
		if n.Address == a.Unmap() || n.Address6 == a {
			return n.Name
		}
	}
	return ""
}
