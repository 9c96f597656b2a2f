package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	vnetns "github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/heraldlb/herald/e2e/lab/topology"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
)

// Herald returns a client for herald's own API group.
func (l *Lab) Herald() (versioned.Interface, error) {
	return versioned.NewForConfig(l.Config)
}

// ApplyPool creates IPPool p, or replaces the spec of the existing one.
func (l *Lab) ApplyPool(ctx context.Context, p *heraldv1.IPPool) error {
	hc, err := l.Herald()
	if err != nil {
		return err
	}
	pools := hc.HeraldV1alpha1().IPPools()
	_, err = pools.Create(ctx, p, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		old, gerr := pools.Get(ctx, p.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		old.Spec = p.Spec
		_, err = pools.Update(ctx, old, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("applying IPPool %s: %w", p.Name, err)
	}
	return nil
}

// GetPool reads IPPool name.
func (l *Lab) GetPool(ctx context.Context, name string) (*heraldv1.IPPool, error) {
	hc, err := l.Herald()
	if err != nil {
		return nil, err
	}
	return hc.HeraldV1alpha1().IPPools().Get(ctx, name, metav1.GetOptions{})
}

// DeletePool deletes IPPool name (a missing pool is no error). herald's
// finalizer may keep it Terminating while addresses from it are in use.
func (l *Lab) DeletePool(ctx context.Context, name string) error {
	hc, err := l.Herald()
	if err != nil {
		return err
	}
	err = hc.HeraldV1alpha1().IPPools().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// WaitPoolGone waits up to timeout until IPPool name no longer exists.
func (l *Lab) WaitPoolGone(ctx context.Context, name string, timeout time.Duration) error {
	return poll(ctx, timeout, func() (bool, error) {
		_, err := l.GetPool(ctx, name)
		return apierrors.IsNotFound(err), nil
	})
}

// WaitPool waits up to timeout until f accepts IPPool name.
func (l *Lab) WaitPool(ctx context.Context, name string, timeout time.Duration, f func(*heraldv1.IPPool) bool) (*heraldv1.IPPool, error) {
	var last *heraldv1.IPPool
	err := poll(ctx, timeout, func() (bool, error) {
		p, err := l.GetPool(ctx, name)
		if err != nil {
			return false, nil
		}
		last = p
		return f(p), nil
	})
	return last, err
}

// NewLBService returns a LoadBalancer Service (externalTrafficPolicy
// Cluster) selecting the lab backends registered with app, one TCP port
// per entry of ports, each to BackendPort.
func NewLBService(name, app string, ports ...int32) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Selector:              map[string]string{"app": app},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
		},
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Protocol: corev1.ProtocolTCP,
			Port: p, TargetPort: intstr.FromInt32(BackendPort)})
	}
	return svc
}

// ApplyService creates svc (deleting an older Service of that name first).
func (l *Lab) ApplyService(ctx context.Context, svc *corev1.Service) error {
	if svc.Namespace == "" {
		svc.Namespace = "default"
	}
	svcs := l.Kube.CoreV1().Services(svc.Namespace)
	_, err := svcs.Create(ctx, svc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		if err := l.DeleteService(ctx, svc.Namespace, svc.Name); err != nil {
			return err
		}
		err = poll(ctx, 30*time.Second, func() (bool, error) {
			_, err := svcs.Create(ctx, svc, metav1.CreateOptions{})
			return err == nil, nil
		})
	}
	if err != nil {
		return fmt.Errorf("creating service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// ServiceEvents lists the Events about Service ns/name with reason
// (every reason when empty).
func (l *Lab) ServiceEvents(ctx context.Context, ns, name, reason string) ([]corev1.Event, error) {
	sel := "involvedObject.kind=Service,involvedObject.name=" + name
	if reason != "" {
		sel += ",reason=" + reason
	}
	evs, err := l.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	return evs.Items, nil
}

// WaitServiceEvent waits up to timeout for an Event about Service ns/name
// with reason whose message contains every one of words.
func (l *Lab) WaitServiceEvent(ctx context.Context, ns, name, reason string, timeout time.Duration, words ...string) (corev1.Event, error) {
	var found corev1.Event
	var seen []string
	err := poll(ctx, timeout, func() (bool, error) {
		evs, err := l.ServiceEvents(ctx, ns, name, reason)
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
		for _, e := range evs {
			seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
			ok := true
			for _, w := range words {
				ok = ok && strings.Contains(e.Message, w)
			}
			if ok {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return found, fmt.Errorf("no %s Event on service %s/%s containing %q (seen: %q): %w", reason, ns, name, words, seen, err)
	}
	return found, nil
}

// RestartSpeaker restarts node's speaker as a rolling upgrade does: SIGTERM,
// wait until it has exited and the other speakers report it gone, start it
// again, and wait until it is ready and every speaker reports all nodes
// as members again.
//
// In a kubelet lab it deletes node's speaker Pod, which the kubelet stops
// with SIGTERM and the DaemonSet replaces.
func (l *Lab) RestartSpeaker(ctx context.Context, node string) error {
	if l.kubelet() {
		if err := l.deleteSpeakerPod(ctx, node); err != nil {
			return err
		}
		if err := l.WaitMembers(ctx, l.Nodes(), l.Nodes(), 30*time.Second); err != nil {
			return fmt.Errorf("after restarting the speaker on %s: %w", node, err)
		}
		return nil
	}
	p, ok := l.Proc(node, "herald-speaker")
	if !ok {
		return fmt.Errorf("no speaker on %s", node)
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if !p.waitGone(20 * time.Second) {
		return fmt.Errorf("speaker on %s (pid %d) still running 20 s after SIGTERM", node, p.PID)
	}
	others := slices.DeleteFunc(l.Nodes(), func(n string) bool { return n == node })
	if err := l.WaitMembers(ctx, others, others, 30*time.Second); err != nil {
		return fmt.Errorf("after stopping the speaker on %s: %w", node, err)
	}
	if err := l.StartSpeaker(node); err != nil {
		return err
	}
	if err := l.WaitSpeakerReady(ctx, node); err != nil {
		return err
	}
	if err := l.WaitMembers(ctx, l.Nodes(), l.Nodes(), 30*time.Second); err != nil {
		return fmt.Errorf("after restarting the speaker on %s: %w", node, err)
	}
	return nil
}

// WaitMembers waits until the Speaker object of every node in reporters
// lists exactly members as its live memberlist members.
func (l *Lab) WaitMembers(ctx context.Context, reporters, members []string, timeout time.Duration) error {
	hc, err := l.Herald()
	if err != nil {
		return err
	}
	want := slices.Sorted(slices.Values(members))
	var last string
	err = poll(ctx, timeout, func() (bool, error) {
		for _, n := range reporters {
			sp, err := hc.HeraldV1alpha1().Speakers().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			got := slices.Sorted(slices.Values(sp.Status.LiveMembers))
			if !slices.Equal(got, want) {
				last = fmt.Sprintf("%s sees %v", n, got)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("speakers %v never all saw members %v (last: %s): %w", reporters, want, last, err)
	}
	return nil
}

// inNamespace runs f on a thread switched into network namespace ns;
// sockets f opens stay in ns.
func inNamespace(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := vnetns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := vnetns.Set(orig); err != nil {
			// The thread stays locked and is retired with this goroutine.
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ARPSeen is one ARP packet a watcher saw claiming its address.
type ARPSeen struct {
	At  time.Time
	MAC string // sender hardware address, lower case
	Op  arp.Operation
}

// ARPWatcher sends ARP requests for one address from a node's switch
// interface at a fixed interval and records, with receive times, every ARP
// packet (reply or gratuitous) whose sender claims that address.
type ARPWatcher struct {
	c    *arp.Client
	addr netip.Addr
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu   sync.Mutex
	seen []ARPSeen
}

// WatchARP starts an ARPWatcher in node's namespace; interval 0 only
// listens. Stop it when done.
func (l *Lab) WatchARP(node string, addr netip.Addr, interval time.Duration) (*ARPWatcher, error) {
	iface := l.Topo.Iface(node, topology.RoleSwitch)
	w := &ARPWatcher{addr: addr}
	err := inNamespace(l.Node(node).Namespace, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		w.c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP watcher on %s: %w", node, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			_ = w.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			p, _, err := w.c.Read()
			now := time.Now()
			if err != nil || p.SenderIP != addr {
				continue
			}
			w.mu.Lock()
			w.seen = append(w.seen, ARPSeen{At: now, MAC: strings.ToLower(p.SenderHardwareAddr.String()), Op: p.Operation})
			w.mu.Unlock()
		}
	}()
	if interval > 0 {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				_ = w.c.Request(addr)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return w, nil
}

// Seen returns what the watcher saw so far.
func (w *ARPWatcher) Seen() []ARPSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// FirstFrom returns when mac first claimed the address after t.
func (w *ARPWatcher) FirstFrom(mac string, after time.Time) (time.Time, bool) {
	for _, s := range w.Seen() {
		if s.MAC == strings.ToLower(mac) && s.At.After(after) {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// LastFrom returns when mac last claimed the address.
func (w *ARPWatcher) LastFrom(mac string) (time.Time, bool) {
	seen := w.Seen()
	for i := len(seen) - 1; i >= 0; i-- {
		if seen[i].MAC == strings.ToLower(mac) {
			return seen[i].At, true
		}
	}
	return time.Time{}, false
}

// Stop ends the watcher and closes its socket.
func (w *ARPWatcher) Stop() {
	w.stop()
	w.wg.Wait()
	_ = w.c.Close()
}
