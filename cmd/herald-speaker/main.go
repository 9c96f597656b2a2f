// Command herald-speaker runs on every node: it joins the speakers'
// memberlist cluster, decides which Service addresses this node announces,
// and answers ARP/NDP for them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/cli"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/health"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/memberkey"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/metricsserver"
	"github.com/heraldlb/herald/internal/privilege"
	"github.com/heraldlb/herald/internal/speaker"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

type flags struct {
	common       cli.Common
	nodeName     string
	bindAddr     string
	ml           memberlistFlags
	keySecret    string
	kubeProxyURL string
	metricsAddr  string
	class        string
	onlyClass    bool
	profiling    cli.Profiling
	runAs        string
	cacheDir     string
}

// snapshotPath is where this node's speaker keeps its snapshot: named
// after the node, so that speakers sharing a directory (a lab) keep apart.
func (f *flags) snapshotPath() string {
	if f.cacheDir == "" {
		return ""
	}
	return filepath.Join(f.cacheDir, "speaker-"+f.nodeName+".json.gz")
}

func parse(args []string) *flags {
	f := &flags{}
	fs := flag.NewFlagSet("herald-speaker", flag.ExitOnError)
	f.common.Register(fs)
	fs.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME, from the downward API)")
	fs.StringVar(&f.bindAddr, "bind-addr", "", "memberlist address (default: this node's InternalIP from its Node object)")
	f.ml.register(fs, membership.DefaultPort, "memberlist TCP and UDP port",
		"file holding the memberlist keys, base64 of 16, 24 or 32 bytes each, separated by white space or commas, the first encrypting (mounted from a Secret); required unless --memberlist-insecure")
	fs.StringVar(&f.keySecret, "memberlist-key-secret", "herald-memberlist", "Secret in $POD_NAMESPACE whose \"key\" the key file is mounted from: watched, so that a key rotation applies without a restart; empty: the keys read at start stay")
	fs.StringVar(&f.kubeProxyURL, "kube-proxy-health-url", "http://127.0.0.1:10256/healthz", "kube-proxy health endpoint gating this node's announcements; empty disables")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":7473", "address serving /metrics, /healthz and /readyz")
	fs.StringVar(&f.class, "load-balancer-class", "herald.dev/lb", "spec.loadBalancerClass handled by herald")
	fs.BoolVar(&f.onlyClass, "only-class", false, "handle only Services of --load-balancer-class (default: Services with no class too)")
	f.profiling.Register(fs)
	fs.StringVar(&f.runAs, "run-as", "65532:65532", "uid:gid a speaker started as root switches to, keeping only CAP_NET_RAW; empty: stay as started")
	fs.StringVar(&f.cacheDir, "cache-dir", "/var/lib/herald", "directory on the node where the speaker keeps a snapshot of what it decides from, so that it answers for its addresses when it starts while the API server is down; empty: none")
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "Usage: herald-speaker [flags]          announce Service addresses (the DaemonSet)\n"+
			"       herald-speaker control-plane ...  keep the API server's VIP (a static Pod; see herald-speaker control-plane --help)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cli.Parse(fs, &f.common, args, func() error {
		if f.nodeName == "" {
			return errors.New("--node-name (or $NODE_NAME) is required")
		}
		if err := f.ml.validate(); err != nil {
			return err
		}
		if f.class == "" {
			return errors.New("--load-balancer-class must not be empty")
		}
		if _, _, err := parseRunAs(f.runAs); err != nil {
			return err
		}
		if f.bindAddr != "" {
			if _, err := netip.ParseAddr(f.bindAddr); err != nil {
				return fmt.Errorf("--bind-addr %q is not an IP address", f.bindAddr)
			}
		}
		return nil
	})
	return f
}

// parseRunAs reads --run-as: "uid:gid", or empty.
func parseRunAs(s string) (uid, gid int, err error) {
	if s == "" {
		return -1, -1, nil
	}
	u, g, ok := strings.Cut(s, ":")
	if ok {
		uid, err = strconv.Atoi(u)
		if err == nil {
			gid, err = strconv.Atoi(g)
		}
	}
	if !ok || err != nil || uid <= 0 || gid <= 0 {
		return 0, 0, fmt.Errorf("--run-as %q is not UID:GID of a user other than root", s)
	}
	return uid, gid, nil
}

// dropPrivileges switches a speaker started as root (the container runs
// as uid 0 with NET_RAW, SETUID and SETGID, see docs/security.md) to
// --run-as with only NET_RAW, before it opens any socket or reads any
// secret. Where that cannot happen the speaker still runs, and says why:
// a policy that strips SETUID leaves it root with NET_RAW; one that
// strips NET_RAW leaves it 65532 with nothing, so layer 2 cannot answer
// (BGP needs no capability).
//
// keep are the capabilities kept and why ("layer-2 answers need
// CAP_NET_RAW").
// prepareCacheDir makes the snapshot directory before the speaker gives
// up root, and lets the user it switches to write there through the
// directory's group: the container has no CHOWN capability, but an owner
// may give a file to a group it is in, and SETGID lets this thread join
// that group for the moment.
func prepareCacheDir(f *flags, log *slog.Logger) {
	if f.cacheDir == "" {
		return
	}
	if err := os.MkdirAll(f.cacheDir, 0o700); err != nil {
		log.Warn("no snapshot directory: a restart during an API outage waits for the API server", "dir", f.cacheDir, "err", err)
		return
	}
	uid, gid, _ := parseRunAs(f.runAs)
	if uid < 0 || os.Geteuid() != 0 {
		return
	}
	// The thread that joins the group is locked and never unlocked, so
	// that it ends with its goroutine instead of running others.
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := unix.Setgroups([]int{gid}) // this thread only
		if err == nil {
			err = unix.Chown(f.cacheDir, -1, gid)
		}
		if err == nil {
			err = unix.Chmod(f.cacheDir, 0o770)
		}
		done <- err
	}()
	if err := <-done; err != nil {
		log.Warn("cannot let the speaker's user write its snapshot directory", "dir", f.cacheDir, "err", err)
	}
}

func dropPrivileges(runAs string, keep privilege.Set, why string, log *slog.Logger) {
	uid, gid, _ := parseRunAs(runAs) // validated by parse
	if uid >= 0 {
		if err := privilege.Drop(uid, gid, keep); err != nil {
			log.Warn("cannot drop privileges as configured; "+why, "err", err)
		}
	}
	if st, err := privilege.Current(); err == nil {
		log.Info("privileges", "uid", st.UID, "gid", st.GID, "capabilities", st.Effective.String(), "noNewPrivs", st.NoNewPrivs)
	}
}

// readKeys reads the key file: the keys the speaker starts with, without
// the API server (which may be down while the node boots).
func readKeys(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading memberlist keys: %w", err)
	}
	keys, err := memberkey.Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("reading memberlist keys from %s: %w", path, err)
	}
	return keys, nil
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// $GOMEMLIMIT sets another. A speaker's live heap is small (tens of MB at
// 10 000 Services), but a burst of Service changes makes garbage fast, and
// with the default GOGC alone the heap grows to twice the live size
// between collections: the peak memory would exceed the speaker's budget
// of 150 MB at 10 000 Services. The limit makes the collector run earlier
// when memory nears it (the binary and the runtime's own memory come on
// top); when the live heap itself outgrows it (far more Services), Go caps
// the collector at half the CPU rather than failing.
const defaultMemoryLimit = 80 << 20

func run(args []string) int {
	if len(args) > 0 && args[0] == "control-plane" {
		return runControlPlane(args[1:])
	}
	f := parse(args)
	log := f.common.Logger(os.Stderr, "herald-speaker").With("node", f.nodeName)
	cli.LogStart(log)
	prepareCacheDir(f, log)
	dropPrivileges(f.runAs, privilege.Of(unix.CAP_NET_RAW), "layer-2 answers need CAP_NET_RAW", log)
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, f, log); err != nil {
		log.Error("speaker stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, f *flags, log *slog.Logger) error {
	keys, err := f.ml.keys()
	if err != nil {
		return err
	}
	cfg, err := f.common.RESTConfig("herald-speaker")
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	herald, err := versioned.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var snap *speaker.Snapshot
	if path := f.snapshotPath(); path != "" {
		snap, err = speaker.ReadSnapshot(path)
		switch {
		case errors.Is(err, speaker.ErrNoSnapshot):
		case err != nil:
			log.Warn("ignoring the saved snapshot", "err", err)
		default:
			log.Info("snapshot found: used if the API server does not answer at start", "saved", snap.Saved.Format(time.RFC3339))
		}
	}
	self, offline := ownNode(ctx, kube, f.nodeName, snap, log)
	bind, err := bindAddr(f, self)
	if err != nil {
		return err
	}

	// Membership never depends on the API server once started: the
	// election keeps working through an API outage (fail static).
	members, err := membership.Start(ctx, f.ml.config(f.nodeName, bind, keys, log))
	if err != nil {
		return err
	}
	defer func() { _ = members.Shutdown() }()

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "herald-speaker", Host: f.nodeName})

	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "herald-system"
	}
	if keys != nil && f.keySecret != "" {
		keysCtx, stopKeys := context.WithCancel(ctx)
		keysDone := make(chan struct{})
		go func() {
			defer close(keysDone)
			speaker.WatchKeys(keysCtx, kube, ns, f.keySecret, members, log.With("source", "keys"))
		}()
		defer func() { stopKeys(); <-keysDone }()
	}
	v4, v6, nodeUID, err := nodeAddrs(self, log)
	if err != nil {
		return err
	}
	reg := metricsserver.NewRegistry()
	links := health.NewLinkStates()
	c, err := assemble(assembly{
		node: f.nodeName, nodeUID: nodeUID, port: f.ml.port, class: k8s.Class{Name: f.class, Only: f.onlyClass}, namespace: ns,
		kube: kube, herald: herald, members: members, recorder: recorder, log: log, registry: reg,
		v4: v4, v6: v6, kubeProxyURL: f.kubeProxyURL, linkUp: health.LinkUpFor(bind), interfacesDown: links.Down,
		snapshot: snap, snapshotPath: f.snapshotPath(), offline: offline,
	})
	if err != nil {
		return err
	}

	ready := make(chan struct{})
	go func() {
		if err := metricsserver.Serve(ctx, f.metricsAddr, reg, func() error {
			select {
			case <-ready:
				return nil
			default:
				return errors.New("starting")
			}
		}, bool(f.profiling), log); err != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	// The announcers outlive ctx: they keep answering through the
	// speaker's graceful handover and stop only after it.
	annCtx, annCancel := context.WithCancel(context.Background())
	defer annCancel()
	l2done, bgpDone := make(chan error, 1), make(chan error, 1)
	go func() { l2done <- c.l2.Run(annCtx) }()
	go func() {
		if c.bgp == nil {
			bgpDone <- nil
			return
		}
		bgpDone <- c.bgp.Run(annCtx)
	}()
	if err := links.Subscribe(ctx, c.health.LinkChanged, func(err error) {
		log.Warn("following link changes; the periodic health check covers the gap", "err", err)
	}); err != nil {
		log.Warn("link changes are noticed at the next health check only", "err", err)
	}
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		c.health.Run(ctx, func(ctx context.Context, st health.Status) error {
			return members.SetHealth(ctx, st.Healthy, membership.Interfaces{Down: st.Down, Unlisted: st.Unknown})
		})
	}()
	defer func() { <-healthDone }()
	close(ready)
	log.Info("speaker running", "bind", bind.String(), "port", f.ml.port, "encrypted", keys != nil)
	// sp.Run returns after the graceful handover; only then does the
	// layer-2 announcer stop answering.
	err = c.speaker.Run(ctx)
	annCancel()
	if lerr := <-l2done; lerr != nil {
		log.Error("layer2 announcer stopped", "err", lerr)
	}
	if berr := <-bgpDone; berr != nil {
		log.Error("bgp announcer stopped", "err", berr)
	}
	return err
}

// ownNode reads this node's Node object. While the API server does not
// answer it keeps trying, unless the snapshot holds the Node: a speaker
// starting during an API outage then goes on with what it saw last, and
// says so (fromSnapshot). With a snapshot to fall back on, an attempt
// gets half a second: the speaker is to answer within a second or two of
// starting, not to wait out a connect timeout.
func ownNode(ctx context.Context, kube kubernetes.Interface, name string, snap *speaker.Snapshot, log *slog.Logger) (n *corev1.Node, fromSnapshot bool) {
	timeout := 2 * time.Second
	if snap != nil {
		timeout = 500 * time.Millisecond
	}
	for {
		attempt, cancel := context.WithTimeout(ctx, timeout)
		n, err := kube.CoreV1().Nodes().Get(attempt, name, metav1.GetOptions{})
		cancel()
		if err == nil {
			return n, false
		}
		if snap != nil {
			if n, ok := snap.Node(name); ok {
				log.Warn("API server not reached: using this node's Node object from the snapshot", "err", err, "saved", snap.Saved.Format(time.RFC3339))
				return n, true
			}
		}
		log.Warn("reading this node's Node object", "err", err)
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(2 * time.Second):
		}
	}
}

// bindAddr is --bind-addr, else this node's InternalIP: speakers run with
// hostNetwork, so peers find each other from the Node objects alone.
func bindAddr(f *flags, self *corev1.Node) (netip.Addr, error) {
	if f.bindAddr != "" {
		return netip.MustParseAddr(f.bindAddr), nil
	}
	if self == nil {
		return netip.Addr{}, fmt.Errorf("reading node %s: stopped before the API server answered", f.nodeName)
	}
	if ips := k8s.NodeInternalIPs(self); len(ips) > 0 {
		return ips[0], nil
	}
	return netip.Addr{}, fmt.Errorf("node %s has no InternalIP; set --bind-addr", f.nodeName)
}

// nodeAddrs are this node's first IPv4 and IPv6 InternalIPs: the BGP
// router ID and next hops. A node with IPv6 only runs BGP for IPv6 (its
// router ID derived, bgpplan.DerivedRouterID); one with neither runs none.
// uid is
// the Node's, the owner of this node's Speaker object.
func nodeAddrs(self *corev1.Node, log *slog.Logger) (v4, v6 netip.Addr, uid types.UID, err error) {
	if self == nil {
		return netip.Addr{}, netip.Addr{}, "", errors.New("reading this node's Node object: stopped before the API server answered")
	}
	for _, ip := range k8s.NodeInternalIPs(self) {
		if ip.Is4() && !v4.IsValid() {
			v4 = ip
		}
		if ip.Is6() && !v6.IsValid() {
			v6 = ip
		}
	}
	switch {
	case !v4.IsValid() && !v6.IsValid():
		log.Warn("node has no InternalIP to use as BGP next hop: BGP is off on this node")
	case !v4.IsValid():
		log.Info("node has no IPv4 InternalIP: BGP announces IPv6 addresses only, with a router ID derived from the IPv6 InternalIP unless a BGPPeer sets routerID",
			"derivedRouterID", bgpplan.DerivedRouterID(v6, self.Name))
	case !v6.IsValid():
		log.Info("node has no IPv6 InternalIP: BGP announces IPv4 addresses only")
	}
	return v4, v6, self.UID, nil
}
