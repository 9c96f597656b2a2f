package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
	"github.com/heraldlb/herald/internal/testcluster"
)

func (l *Lab) startControlPlane(ctx context.Context) error {
	cp := l.Topo.ByRole(topology.RoleControlPlane)[0]
	opts := testcluster.Options{
		CRDDir:            filepath.Join(l.opts.RepoRoot, "config/crd/bases"),
		ControllerManager: true,
		NetNS:             cp.Namespace,
		Address:           cp.Address.String(),
		Dial:              netns.Dialer(cp.Namespace),
	}
	if l.opts.Kubelet {
		kubeletControlPlane(&opts, l.Topo)
		// install.yaml brings the CRDs, as it does on any cluster.
		opts.CRDDir = ""
	}
	c, err := testcluster.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("starting the control plane in %s: %w", cp.Namespace, err)
	}
	l.cluster = c
	l.Config = c.Config
	if l.Kube, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	// A stable path: the cluster's own data dir is random.
	raw, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		return err
	}
	l.Kubeconfig = filepath.Join(l.StateDir, "kubeconfig")
	if err := os.WriteFile(l.Kubeconfig, raw, 0o600); err != nil {
		return err
	}
	l.mu.Lock()
	for name, pid := range c.PIDs() {
		st, _ := procStartTime(pid)
		l.state.Processes = append(l.state.Processes, Proc{Node: cp.Name, Name: name, PID: pid, StartTime: st,
			Log: filepath.Join(c.DataDir, name+".log")})
	}
	l.state.Kubeconfig = l.Kubeconfig
	l.state.APIServer = c.APIServerURL
	l.state.ClusterDir = c.DataDir
	l.mu.Unlock()
	return l.saveState()
}

// Cluster is the control plane (nil in an attached lab), for scenarios
// that stop and start the API server.
func (l *Lab) Cluster() *testcluster.Cluster { return l.cluster }

func nodeAddresses(n *topology.Node) []corev1.NodeAddress {
	out := []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: n.Name}}
	for _, a := range n.Addresses() {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.String()})
	}
	return out
}

// registerNodes creates a Node per node namespace, as a kubelet would.
func (l *Lab) registerNodes(ctx context.Context) error {
	for _, n := range l.Topo.ByRole(topology.RoleNode) {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
			"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux",
		}}}
		created, err := l.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("registering node %s: %w", n.Name, err)
		}
		created.Status = nodeStatus(n, time.Now())
		if _, err := l.Kube.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("setting node %s ready: %w", n.Name, err)
		}
	}
	return l.renewLeases(ctx)
}

func nodeStatus(n *topology.Node, now time.Time) corev1.NodeStatus {
	t := metav1.NewTime(now)
	return corev1.NodeStatus{
		Addresses: nodeAddresses(n),
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "herald lab runner heartbeat (no kubelet)", LastHeartbeatTime: t, LastTransitionTime: t,
		}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: testcluster.KubernetesVersion, OperatingSystem: "linux", Architecture: "amd64"},
	}
}

// heartbeatInterval matches the kubelet's default node status update
// frequency; nothing in the lab watches the node lifecycle closer.
const heartbeatInterval = 10 * time.Second

// heartbeat keeps the Nodes' Ready condition and Leases fresh until ctx
// ends. Errors (an API outage in a scenario) are retried on the next tick.
func (l *Lab) heartbeat(ctx context.Context) {
	tick := time.NewTicker(heartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		for _, n := range l.Topo.ByRole(topology.RoleNode) {
			node, err := l.Kube.CoreV1().Nodes().Get(cctx, n.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			now := metav1.Now()
			for i := range node.Status.Conditions {
				if node.Status.Conditions[i].Type == corev1.NodeReady {
					node.Status.Conditions[i].LastHeartbeatTime = now
				}
			}
			_, _ = l.Kube.CoreV1().Nodes().UpdateStatus(cctx, node, metav1.UpdateOptions{})
		}
		_ = l.renewLeases(cctx)
		cancel()
	}
}

func (l *Lab) renewLeases(ctx context.Context) error {
	leases := l.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	for _, n := range l.Topo.ByRole(topology.RoleNode) {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, n.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: n.Name},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(n.Name), LeaseDurationSeconds: ptr.To[int32](40),
					AcquireTime: &now, RenewTime: &now},
			}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("creating lease of node %s: %w", n.Name, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		lease.Spec.RenewTime = &now
		if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// AddBackend registers the backend already listening on node (every node
// runs one on BackendPort) as a ready host-network Pod "<app>-<node>" in
// namespace ns with label app=<app>, so that the EndpointSlice controller
// lists it behind Services selecting app.
//
// In a kubelet lab it creates instead the Deployment "<app>-<node>" of
// the backend image pinned to node, and returns once its Pod is Ready.
func (l *Lab) AddBackend(ctx context.Context, ns, app, node string) error {
	if l.kubelet() {
		return l.addBackendDeployment(ctx, ns, app, node)
	}
	n := l.Node(node)
	pods := l.Kube.CoreV1().Pods(ns)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: app + "-" + node, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			NodeName: node, HostNetwork: true,
			Containers: []corev1.Container{{
				Name: "backend", Image: "herald/backend:lab",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: BackendPort}},
			}},
		},
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating backend pod on %s: %w", node, err)
	}
	now := metav1.Now()
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	created.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{cond(corev1.PodScheduled), cond(corev1.PodInitialized),
			cond(corev1.ContainersReady), cond(corev1.PodReady)},
		HostIP:    n.Address.String(),
		HostIPs:   []corev1.HostIP{{IP: n.Address.String()}},
		PodIP:     n.Address.String(),
		StartTime: &now,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "backend", Image: "herald/backend:lab", ImageID: "lab", Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
	for _, a := range n.Addresses() {
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: a.String()})
	}
	if n.Address6.IsValid() {
		created.Status.HostIPs = append(created.Status.HostIPs, corev1.HostIP{IP: n.Address6.String()})
	}
	if _, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("marking backend pod on %s ready: %w", node, err)
	}
	return nil
}

// RemoveBackend deletes the Pod (or Deployment) AddBackend created.
func (l *Lab) RemoveBackend(ctx context.Context, ns, app, node string) error {
	if l.kubelet() {
		return l.removeBackendDeployment(ctx, ns, app, node)
	}
	err := l.Kube.CoreV1().Pods(ns).Delete(ctx, app+"-"+node, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// WaitEndpoints waits until the EndpointSlices of Service ns/name list
// exactly want ready endpoints per address family present.
func (l *Lab) WaitEndpoints(ctx context.Context, ns, name string, want int) error {
	return poll(ctx, 30*time.Second, func() (bool, error) {
		slices, err := l.Kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		if err != nil {
			return false, nil
		}
		count := map[string]int{}
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					count[string(s.AddressType)]++
				}
			}
		}
		if len(count) == 0 {
			return want == 0, nil
		}
		for _, c := range count {
			if c != want {
				return false, nil
			}
		}
		return true, nil
	})
}

// WaitIngress waits until Service ns/name has an ingress address per
// family and returns them.
func (l *Lab) WaitIngress(ctx context.Context, ns, name string, families int) ([]netip.Addr, error) {
	var out []netip.Addr
	err := poll(ctx, 30*time.Second, func() (bool, error) {
		svc, err := l.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		out = out[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				out = append(out, a)
			}
		}
		return len(out) >= families, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for an address for service %s/%s: %w", ns, name, err)
	}
	return out, nil
}

// WaitServing waits like WaitIngress, then until every node's kube-proxy
// has programmed the addresses (WaitProxied). Scenarios that send traffic
// start with it: herald announces an address about a second before
// kube-proxy's next sync programs it, and a SYN that reaches the owner in
// that gap is forwarded without DNAT. The owner's conntrack then keeps
// that un-NATed flow (SYN_SENT, 120 s, renewed by every SYN), so each later
// connection from the same client port fails too: a client that cycles
// through its ports as fast as the lab's prober sees one request in a few
// thousand time out, long after the Service settled.
func (l *Lab) WaitServing(ctx context.Context, ns, name string, families int) ([]netip.Addr, error) {
	addrs, err := l.WaitIngress(ctx, ns, name, families)
	if err != nil {
		return nil, err
	}
	return addrs, l.WaitProxied(ctx, addrs...)
}

// WaitProxied waits until kube-proxy on every node has each address in its
// table (in service-ips, or in no-endpoint-services for a Service without
// endpoints).
func (l *Lab) WaitProxied(ctx context.Context, addrs ...netip.Addr) error {
	for _, n := range l.Topo.ByRole(topology.RoleNode) {
		for family, want := range map[string][]netip.Addr{
			"ip":  slices.DeleteFunc(slices.Clone(addrs), netip.Addr.Is6),
			"ip6": slices.DeleteFunc(slices.Clone(addrs), netip.Addr.Is4),
		} {
			if len(want) == 0 {
				continue
			}
			var last string
			missing := want
			err := poll(ctx, 30*time.Second, func() (bool, error) {
				out, err := l.Exec(ctx, n.Name, "nft", "list", "table", family, "kube-proxy")
				last = out
				missing = slices.DeleteFunc(slices.Clone(want), func(a netip.Addr) bool {
					return err == nil && strings.Contains(out, " "+a.String()+" . ")
				})
				return len(missing) == 0, nil
			})
			if err != nil {
				return fmt.Errorf("kube-proxy on %s has not programmed %v: %w\n%s", n.Name, missing, err, strings.TrimSpace(last))
			}
		}
	}
	return nil
}

// poll calls f every 50 ms until it says done, errs, or timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		done, err := f()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StopAPIServer kills kube-apiserver (a crash); etcd, the controller
// manager and everything on the nodes keep running.
func (l *Lab) StopAPIServer() error {
	if l.cluster == nil {
		return fmt.Errorf("stopping the API server: only the process that brought the lab up can")
	}
	return l.cluster.StopAPIServer()
}

// StartAPIServer starts kube-apiserver again at the same address and
// records its new pid.
func (l *Lab) StartAPIServer(ctx context.Context) error {
	if l.cluster == nil {
		return fmt.Errorf("starting the API server: only the process that brought the lab up can")
	}
	if err := l.cluster.StartAPIServer(ctx); err != nil {
		return err
	}
	cp := l.Topo.ByRole(topology.RoleControlPlane)[0]
	pid := l.cluster.PIDs()["kube-apiserver"]
	st, _ := procStartTime(pid)
	l.mu.Lock()
	l.state.Processes = append(l.state.Processes, Proc{Node: cp.Name, Name: "kube-apiserver", PID: pid, StartTime: st})
	l.mu.Unlock()
	return l.saveState()
}
