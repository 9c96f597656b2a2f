package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
	"github.com/heraldlb/herald/internal/testcluster"
)

// The kubelet lab runs, in every node namespace, containerd (with runc
// and the CNI bridge plugin) and a kubelet that registers the node
// itself; Pods are real containers. Everything a node writes lives in
// nodeDir, its processes in its cgroup (see labCgroup).

// runcBinary and cniBinDir are where Debian's runc and
// containernetworking-plugins packages install (hack/lab-deps.sh).
const (
	runcBinary = "/usr/sbin/runc"
	cniBinDir  = "/usr/lib/cni"
)

// Pod address ranges of a kubelet lab: node i (in name order) gets the
// i-th /27 of podRange4 and the i-th /64 of podRange6. They lie outside
// every address the topologies use (the BGP topology's client links are
// 203.0.113.0/30 and .4/30, its pools 203.0.113.64/26).
var (
	podRange4 = netip.MustParsePrefix("203.0.113.128/25")
	podRange6 = netip.MustParsePrefix("2001:db8:244::/48")
)

// maxKubeletNodes is how many /27s podRange4 holds.
const maxKubeletNodes = 4

// podCIDRs returns the Pod ranges of the i-th node.
func podCIDRs(i int) (netip.Prefix, netip.Prefix, error) {
	if i < 0 || i >= maxKubeletNodes {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("a kubelet lab has Pod ranges for %d nodes, not %d", maxKubeletNodes, i+1)
	}
	b4 := podRange4.Addr().As4()
	b4[3] += byte(32 * i)
	b6 := podRange6.Addr().As16()
	b6[7] = byte(i + 1)
	return netip.PrefixFrom(netip.AddrFrom4(b4), 27), netip.PrefixFrom(netip.AddrFrom16(b6), 64), nil
}

// nodeDir is where node keeps its runtime state (containerd's store,
// kubelet's root, CNI configuration and leases).
func (l *Lab) nodeDir(node string) string { return filepath.Join(l.StateDir, "nodes", node) }

// containerdSocket is node's containerd address.
func (l *Lab) containerdSocket(node string) string {
	return filepath.Join(l.nodeDir(node), "containerd.sock")
}

// kubeletNodes returns the Kubernetes nodes with their index for
// podCIDRs.
func (l *Lab) kubeletNodes() []*topology.Node { return l.Topo.ByRole(topology.RoleNode) }

// kubeletUsers are the identities the API server accepts for the nodes'
// kubelets: system:node:NAME in group system:nodes, which the Node
// authorizer and the NodeRestriction admission plugin expect.
func kubeletUsers(t *topology.Topology) []string {
	var out []string
	for _, n := range t.ByRole(topology.RoleNode) {
		out = append(out, "system:node:"+n.Name)
	}
	return out
}

// nodeLabels are the labels node's kubelet registers it with: the
// topology's labels that are valid Kubernetes labels (an IPv6 address is
// not a valid label value).
func nodeLabels(n *topology.Node) string {
	var out []string
	for k, v := range n.Labels {
		if len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0 {
			out = append(out, k+"="+v)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// kernelTunables are the host-wide sysctls kubelet insists on: it sets
// them itself at start unless protectKernelDefaults is on, and then it
// refuses to start while they differ. They are not per network
// namespace, so the lab sets them knowingly, records the old values and
// puts them back when it goes down.
var kernelTunables = map[string]string{
	"vm/overcommit_memory": "1",
	"vm/panic_on_oom":      "0",
	"kernel/panic":         "10",
	"kernel/panic_on_oops": "1",
}

// setKernelTunables sets kernelTunables and returns the values they had.
func setKernelTunables() (map[string]string, error) {
	old := map[string]string{}
	for k, want := range kernelTunables {
		p := filepath.Join("/proc/sys", k)
		raw, err := os.ReadFile(p)
		if err != nil {
			return old, fmt.Errorf("reading %s: %w", p, err)
		}
		if cur := strings.TrimSpace(string(raw)); cur != want {
			old[k] = cur
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				return old, fmt.Errorf("setting %s to %s (kubelet needs it): %w", p, want, err)
			}
		}
	}
	return old, nil
}

// restoreKernelTunables puts back what setKernelTunables changed.
func restoreKernelTunables(old map[string]string) error {
	var errs []error
	for k, v := range old {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// containerdConfig is node's containerd configuration: its own root,
// state, socket and runc root; the CRI plugin with the local pause image
// as sandbox, netns mounts under its state dir, the CNI configuration of
// the node; and none of the plugins that would share host-wide paths
// (NRI's socket) or need what the lab does not have. OOM score
// adjustments are kept no lower than containerd's own: a negative one
// needs CAP_SYS_RESOURCE, which a sandboxed machine may withhold (runc
// then fails with "failed to update /proc/self/oom_score_adj").
func (l *Lab) containerdConfig(node string) string {
	dir := l.nodeDir(node)
	q := strconv.Quote
	return `version = 3
root = ` + q(filepath.Join(dir, "containerd", "root")) + `
state = ` + q(filepath.Join(dir, "containerd", "state")) + `
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = ` + q(l.containerdSocket(node)) + `

[ttrpc]
  address = ` + q(l.containerdSocket(node)+".ttrpc") + `

[plugins."io.containerd.internal.v1.opt"]
  path = ` + q(filepath.Join(dir, "containerd", "opt")) + `

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = ` + q(PauseImage) + `

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = ` + q(runcBinary) + `
        Root = ` + q(filepath.Join(dir, "runc")) + `
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [` + q(cniBinDir) + `]
    conf_dir = ` + q(filepath.Join(dir, "cni", "net.d")) + `
    max_conf_num = 1
    use_internal_loopback = true

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`
}

// cniConfig is node's CNI network: a bridge whose address is each Pod's
// gateway, with addresses from the node's Pod ranges. No masquerading:
// Pods reach other nodes, the control plane and clients with their own
// addresses, routed by the lab (routePods), so backends see a client's
// address wherever kube-proxy leaves it.
func (l *Lab) cniConfig(node string, v4, v6 netip.Prefix) ([]byte, error) {
	ranges := [][]map[string]string{{{"subnet": v4.String()}}}
	routes := []map[string]string{{"dst": "0.0.0.0/0"}}
	if v6.IsValid() {
		ranges = append(ranges, []map[string]string{{"subnet": v6.String()}})
		routes = append(routes, map[string]string{"dst": "::/0"})
	}
	return json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "herald-lab",
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      "pods0",
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(l.nodeDir(node), "cni", "ipam"),
				"ranges":  ranges,
				"routes":  routes,
			},
		}},
	}, "", "  ")
}

// kubeletConfig is node's KubeletConfiguration. What is not the default
// and why:
//   - failCgroupV1 false: this kubelet refuses cgroup v1 by default, and
//     labs run on machines that still have it.
//   - cgroupfs driver under the node's own cgroup root: no systemd here,
//     and three kubelets must not share /kubepods.
//   - everything the kubelet writes outside its root dir (Pod logs,
//     volume plugins) moved into the node's directory, so that one
//     kubelet's garbage collection never sees another's files.
//   - eviction thresholds low and image GC off: the disk is shared with
//     the rest of the machine, and an image removed by GC can never be
//     pulled again.
//   - anonymous read access to the kubelet API: the API server reaches
//     it for logs without a client certificate.
func (l *Lab) kubeletConfig(n *topology.Node) ([]byte, error) {
	dir := l.nodeDir(n.Name)
	cfg := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"failCgroupV1":             false,
		"cgroupDriver":             "cgroupfs",
		"cgroupRoot":               labCgroup(l.opts.Instance) + "/" + n.Name,
		"cgroupsPerQOS":            true,
		"enforceNodeAllocatable":   []string{"pods"},
		"containerRuntimeEndpoint": "unix://" + l.containerdSocket(n.Name),
		"address":                  n.Address.String(),
		"port":                     10250,
		"readOnlyPort":             0,
		"healthzBindAddress":       "127.0.0.1",
		"healthzPort":              10248,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization":                 map[string]any{"mode": "AlwaysAllow"},
		"podLogsDir":                    filepath.Join(dir, "pod-logs"),
		"volumePluginDir":               filepath.Join(dir, "volume-plugins"),
		"resolvConf":                    filepath.Join(dir, "resolv.conf"),
		"failSwapOn":                    false,
		"protectKernelDefaults":         true,
		"imageGCHighThresholdPercent":   100,
		"imageGCLowThresholdPercent":    99,
		"evictionHard":                  map[string]string{"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
		"serializeImagePulls":           false,
		"shutdownGracePeriod":           "0s",
		"localStorageCapacityIsolation": true,
		"nodeStatusUpdateFrequency":     "10s",
		"maxPods":                       30,
		// Its default of -999 needs CAP_SYS_RESOURCE (see
		// containerdConfig).
		"oomScoreAdj": 0,
	}
	return yaml.Marshal(cfg)
}

// startRuntimes starts containerd and kubelet on every node.
func (l *Lab) startRuntimes(ctx context.Context) error {
	old, err := setKernelTunables()
	l.mu.Lock()
	l.state.KernelTunables = old
	l.mu.Unlock()
	if serr := l.saveState(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if err := makeCgroup(labCgroup(l.opts.Instance)); err != nil {
		return err
	}
	for i, n := range l.kubeletNodes() {
		if err := l.startNodeRuntime(ctx, n, i); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

// startNodeRuntime prepares node n (the i-th) and starts its containerd,
// imports the lab's images and starts its kubelet.
func (l *Lab) startNodeRuntime(ctx context.Context, n *topology.Node, i int) error {
	dir := l.nodeDir(n.Name)
	v4, v6, err := podCIDRs(i)
	if err != nil {
		return err
	}
	if !n.Address6.IsValid() {
		v6 = netip.Prefix{}
	}
	for _, d := range []string{"containerd", "runc", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	cni, err := l.cniConfig(n.Name, v4, v6)
	if err != nil {
		return err
	}
	kcfg, err := l.kubeletConfig(n)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"containerd/config.toml":           []byte(l.containerdConfig(n.Name)),
		"cni/net.d/10-herald-lab.conflist": cni,
		"kubelet.yaml":                     kcfg,
		// Pods get no name servers: nothing in the lab resolves names,
		// and the machine's resolver is outside the lab.
		"resolv.conf": []byte("# herald lab: no DNS\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	if err := l.cluster.KubeconfigFor(filepath.Join(dir, "kubeconfig"), "system:node:"+n.Name); err != nil {
		return err
	}
	runtimeCgroup := labCgroup(l.opts.Instance) + "/" + n.Name + "/runtime"
	if err := makeCgroup(runtimeCgroup); err != nil {
		return err
	}
	if err := l.startContainerd(ctx, n.Name); err != nil {
		return err
	}
	t := time.Now()
	for _, archive := range l.imageArchives {
		if out, err := l.ctr(ctx, n.Name, "images", "import", "--snapshotter", "overlayfs", archive); err != nil {
			return fmt.Errorf("importing image archive %s: %w (%s)", archive, err, out)
		}
	}
	l.log.Info("images imported", "node", n.Name, "took", since(t))
	return l.startKubelet(n)
}

// startContainerd starts node's containerd in the node's runtime cgroup
// and waits until it answers.
func (l *Lab) startContainerd(ctx context.Context, node string) error {
	dir := l.nodeDir(node)
	if _, err := l.startInCgroup(node, "containerd", labCgroup(l.opts.Instance)+"/"+node+"/runtime",
		filepath.Join(l.k8sBinDir(), "containerd"), "--config", filepath.Join(dir, "containerd", "config.toml"),
		"--log-level", "warn"); err != nil {
		return err
	}
	var last error
	if err := poll(ctx, 30*time.Second, func() (bool, error) {
		_, last = l.ctr(ctx, node, "version")
		return last == nil, nil
	}); err != nil {
		return fmt.Errorf("containerd on %s never answered: %w (last: %v)", node, err, last)
	}
	return nil
}

// startKubelet starts node's kubelet.
func (l *Lab) startKubelet(n *topology.Node) error {
	dir := l.nodeDir(n.Name)
	var ips []string
	for _, a := range n.Addresses() {
		ips = append(ips, a.String())
	}
	_, err := l.startInCgroup(n.Name, "kubelet", labCgroup(l.opts.Instance)+"/"+n.Name+"/runtime",
		filepath.Join(l.k8sBinDir(), "kubelet"),
		"--config="+filepath.Join(dir, "kubelet.yaml"),
		"--kubeconfig="+filepath.Join(dir, "kubeconfig"),
		"--root-dir="+filepath.Join(dir, "kubelet"),
		"--cert-dir="+filepath.Join(dir, "kubelet", "pki"),
		"--hostname-override="+n.Name,
		"--node-ip="+strings.Join(ips, ","),
		"--node-labels="+nodeLabels(n),
		"--v=1")
	return err
}

// ctr runs containerd's client against node's containerd, in the
// namespace the CRI plugin keeps Kubernetes' images and containers in.
func (l *Lab) ctr(ctx context.Context, node string, args ...string) (string, error) {
	argv := append([]string{filepath.Join(l.k8sBinDir(), "ctr"), "--address", l.containerdSocket(node), "--namespace", "k8s.io"}, args...)
	return netns.Run(ctx, "", argv...)
}

// waitNodesReady waits until every node's kubelet has registered it and
// reports it Ready.
func (l *Lab) waitNodesReady(ctx context.Context, nodes []string) error {
	var last string
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		for _, name := range nodes {
			node, err := l.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			if !nodeReady(node) {
				last = "node " + name + " not Ready"
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the kubelets to register nodes %v Ready: %w (last: %s)", nodes, err, last)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// routePods adds, in the control-plane namespace and every node's, a
// route to each other node's Pod ranges through that node, as a cluster's
// network fabric would; and on the nodes a route for the Service ranges,
// which would otherwise be unreachable (no default route) before
// kube-proxy's rules translate them: host-network Pods (the speakers)
// reach the API server through the "kubernetes" Service.
func (l *Lab) routePods(ctx context.Context) error {
	targets := append(l.Topo.ByRole(topology.RoleControlPlane), l.kubeletNodes()...)
	for _, t := range targets {
		if err := l.routeFrom(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// routeFrom adds the routes of routePods in t's namespace. They go with
// the link: LinkUp adds them again.
func (l *Lab) routeFrom(ctx context.Context, t *topology.Node) error {
	if t.Role == topology.RoleNode {
		iface := l.Topo.Iface(t.Name, topology.RoleSwitch)
		for _, r := range strings.Split(testcluster.ServiceClusterIPRange, ",") {
			if strings.Contains(r, ":") && !t.Address6.IsValid() {
				continue
			}
			if _, err := netns.IP(ctx, "-n", t.Namespace, "route", "replace", r, "dev", iface); err != nil {
				return err
			}
		}
	}
	for i, n := range l.kubeletNodes() {
		if t.Name == n.Name {
			continue
		}
		v4, v6, err := podCIDRs(i)
		if err != nil {
			return err
		}
		if _, err := netns.IP(ctx, "-n", t.Namespace, "route", "replace", v4.String(), "via", n.Address.String()); err != nil {
			return err
		}
		if n.Address6.IsValid() && t.Address6.IsValid() {
			if _, err := netns.IP(ctx, "-n", t.Namespace, "-6", "route", "replace", v6.String(), "via", n.Address6.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

// clusterCIDRs are every node's Pod ranges, for kube-proxy's
// --cluster-cidr.
func (l *Lab) clusterCIDRs() string {
	out := []string{podRange4.String()}
	for _, n := range l.kubeletNodes() {
		if n.Address6.IsValid() {
			return strings.Join(append(out, podRange6.String()), ",")
		}
	}
	return out[0]
}

// startScheduler runs kube-scheduler beside the API server.
func (l *Lab) startScheduler(ctx context.Context) error {
	cp := l.Topo.ByRole(topology.RoleControlPlane)[0]
	if _, err := l.start(cp.Name, "kube-scheduler", filepath.Join(l.k8sBinDir(), "kube-scheduler"),
		"--kubeconfig="+l.Kubeconfig,
		"--authentication-kubeconfig="+l.Kubeconfig,
		"--authorization-kubeconfig="+l.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=10259",
		"--leader-elect=false",
		"--v=1"); err != nil {
		return err
	}
	return l.waitHTTP(ctx, cp.Namespace, "https://127.0.0.1:10259/healthz", "kube-scheduler")
}

// StopNode makes node fail as a machine does: its switch link goes down
// and every process of the node (kubelet, containerd, its shims and all
// its containers) is SIGKILLed.
func (l *Lab) StopNode(ctx context.Context, node string) error {
	if err := l.LinkDown(ctx, node); err != nil {
		return err
	}
	return killCgroup(labCgroup(l.state.Instance) + "/" + node)
}

// StartNode brings a node stopped by StopNode back, as after a reboot:
// link up, containerd and kubelet started (the kubelet starts the node's
// Pods again), and waits until the node is Ready.
func (l *Lab) StartNode(ctx context.Context, node string) error {
	if err := l.LinkUp(ctx, node); err != nil {
		return err
	}
	// The killed shims left their tasks' state behind; containerd
	// cleans it up itself at start.
	if err := l.startContainerd(ctx, node); err != nil {
		return err
	}
	if err := l.startKubelet(l.Node(node)); err != nil {
		return err
	}
	return l.waitNodesReady(ctx, []string{node})
}

// downRuntimes is the kubelet lab's part of teardown: every process in
// the lab's cgroups killed, the mounts under the nodes' directories
// detached, the cgroups removed and the kernel tunables restored.
func downRuntimes(st *State, dir string) error {
	if !st.Kubelet {
		return nil
	}
	var errs []error
	errs = append(errs, killCgroup(labCgroup(st.Instance)))
	errs = append(errs, unmountUnder(filepath.Join(dir, "nodes")))
	errs = append(errs, removeCgroup(labCgroup(st.Instance)))
	errs = append(errs, restoreKernelTunables(st.KernelTunables))
	return errors.Join(errs...)
}

// startInCgroup starts a node's runtime process (containerd, kubelet) in
// node's network namespace and in cgroup (of the pids hierarchy), which
// it joins before it execs argv, so that everything it forks is found
// there too. It enters only the network namespace (nsenter), not the
// mount namespace of its own that `ip netns exec` sets up: there /sys is
// remounted without the cgroup hierarchies, and the kubelet's volume
// mounts would be invisible to containerd and runc.
func (l *Lab) startInCgroup(node, name, cgroup string, argv ...string) (Proc, error) {
	procs, err := cgroupProcsFile(cgroup)
	if err != nil {
		return Proc{}, err
	}
	argv = append([]string{"nsenter", "--net=" + filepath.Join(netns.Dir, l.Node(node).Namespace), "--",
		"sh", "-c", `echo $$ > "$0" && shift && exec "$@"`, procs, "--"}, argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// containerd finds its shim next to itself through PATH.
	cmd.Env = append(os.Environ(), "PATH="+l.k8sBinDir()+":/usr/sbin:/usr/bin:/sbin:/bin")
	return l.startCmd(node, name, cmd)
}

// k8sBinDir is where the Kubernetes and containerd binaries are.
func (l *Lab) k8sBinDir() string {
	if l.cluster != nil {
		return l.cluster.BinDir
	}
	dir, _ := testcluster.BinDir() // the directory is named even when a binary is missing
	return dir
}

// kubeletControlPlane adds to opts what a cluster with kubelets needs and
// a cluster of hand-written nodes must not have: identities for the
// kubelets, the controllers behind Deployments, DaemonSets and node
// health, the ServiceAccount admission plugin (Pods get their tokens),
// the API server's address published as the "kubernetes" Service's
// endpoint, which Pods reach it through, and kubelets reached by address
// (a node's name resolves nowhere in the lab).
func kubeletControlPlane(opts *testcluster.Options, t *topology.Topology) {
	for _, u := range kubeletUsers(t) {
		opts.Users = append(opts.Users, testcluster.User{Name: u, Groups: []string{"system:nodes"}})
	}
	opts.ExtraControllers = append(opts.ExtraControllers,
		"deployment-controller", "replicaset-controller", "daemonset-controller",
		"node-lifecycle-controller", "taint-eviction-controller", "pod-garbage-collector-controller",
		"root-ca-certificate-publisher-controller")
	opts.ExtraAPIServerArgs = append(opts.ExtraAPIServerArgs,
		"--disable-admission-plugins=",
		"--endpoint-reconciler-type=lease",
		"--kubelet-preferred-address-types=InternalIP")
}

// startKubeletNodes brings up the kubelet lab's nodes: Pod routes,
// kube-scheduler, every node's containerd and kubelet, and waits for all
// nodes Ready.
func (l *Lab) startKubeletNodes(ctx context.Context) error {
	if n := len(l.kubeletNodes()); n > maxKubeletNodes {
		return fmt.Errorf("a kubelet lab runs at most %d nodes, the topology has %d", maxKubeletNodes, n)
	}
	if err := l.routePods(ctx); err != nil {
		return err
	}
	if err := l.startScheduler(ctx); err != nil {
		return err
	}
	if err := l.startRuntimes(ctx); err != nil {
		return err
	}
	return l.waitNodesReady(ctx, l.Nodes())
}
