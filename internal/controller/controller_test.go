package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/k8s"
)

func TestAllocateStatusAndRelease(t *testing.T) {
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.240/28")
	e.startController()

	e.createSvc("web", nil)
	s := e.waitIPs("web", "198.51.100.240")
	in := s.Status.LoadBalancer.Ingress[0]
	if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", in.IPMode)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return e.getSvc("web").Annotations[k8s.AnnotationPoolAllocated] == "lan", nil
	})
	if err != nil {
		t.Errorf("annotation %s = %q, want lan", k8s.AnnotationPoolAllocated, e.getSvc("web").Annotations[k8s.AnnotationPoolAllocated])
	}
	e.waitEvent("web", EventIPAllocated, "198.51.100.240", `"lan"`)
	e.waitPool("lan", func(p *heraldv1.IPPool) bool {
		return p.Status.IPv4 != nil && p.Status.IPv4.Allocated == 1 && p.Status.IPv4.Free == "15" && p.Status.IPv4.Total == "16" &&
			p.Status.Summary.Allocated == "v4:1" && p.Status.Summary.Free == "15" && p.Status.IPv6 == nil &&
			meta.IsStatusConditionTrue(p.Status.Conditions, heraldv1.ConditionReady)
	})
	if got := s.ResourceVersion; got == "" {
		t.Fatal("no resource version")
	}

	// Idle: nothing is written again.
	rv := e.getSvc("web").ResourceVersion
	// A check that nothing happens watches a real API server for a while.
	time.Sleep(500 * time.Millisecond)
	if now := e.getSvc("web").ResourceVersion; now != rv {
		t.Errorf("Service rewritten while nothing changed: resourceVersion %s -> %s", rv, now)
	}

	// A second Service gets the next address; turning the first into a
	// ClusterIP Service releases its address, which the third one gets.
	e.createSvc("api", nil)
	e.waitIPs("api", "198.51.100.241")
	e.updateSvc("web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.AllocateLoadBalancerNodePorts = nil
	})
	e.waitIPs("web")
	e.waitEvent("web", EventIPReleased, "198.51.100.240")
	e.createSvc("third", nil)
	e.waitIPs("third", "198.51.100.240")
	e.waitIPs("api", "198.51.100.241")

	// Deleting a Service frees its address and moves nobody.
	if err := e.kube.CoreV1().Services(e.ns).Delete(context.Background(), "third", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitPool("lan", func(p *heraldv1.IPPool) bool { return p.Status.IPv4 != nil && p.Status.IPv4.Allocated == 1 })
	e.createSvc("fourth", nil)
	e.waitIPs("fourth", "198.51.100.240")
	e.waitIPs("api", "198.51.100.241")
}

func (e *env) waitPool(name string, ok func(*heraldv1.IPPool) bool) *heraldv1.IPPool {
	e.t.Helper()
	var last *heraldv1.IPPool
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := e.herald.HeraldV1alpha1().IPPools().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return ok(p), nil
	})
	if err != nil {
		e.t.Fatalf("IPPool %s never reached the expected state; last status: %+v", name, last.Status)
	}
	return last
}

func TestRequestsAndBadInput(t *testing.T) {
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.0/28", "2001:db8::/124")
	e.createPool("manual", func(p *heraldv1.IPPool) { p.Spec.AutoAssign = ptr.To(false) }, "203.0.113.0/28")
	e.createPool("prod-only", func(p *heraldv1.IPPool) { p.Spec.Namespaces = []string{"prod"} }, "203.0.113.64/28")
	e.startController()

	e.createSvc("req", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.9" })
	e.waitIPs("req", "198.51.100.9")
	e.createSvc("lbip", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.51.100.10" })
	e.waitIPs("lbip", "198.51.100.10")
	e.createSvc("named", func(s *corev1.Service) { s.Annotations[k8s.AnnotationPool] = "manual" })
	e.waitIPs("named", "203.0.113.0")

	bad := []struct {
		name      string
		mod       func(*corev1.Service)
		fragments []string
	}{
		{"outside", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.200" }, []string{"NotInPool", "198.51.100.200"}},
		{"in-use", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.9" }, []string{"AddressInUse", "198.51.100.9", e.ns + "/req"}},
		{"no-pool", func(s *corev1.Service) { s.Annotations[k8s.AnnotationPool] = "nope" }, []string{"PoolNotFound", "nope"}},
		{"wrong-family", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "2001:db8::5" }, []string{"WrongFamily", "2001:db8::5"}},
		{"garbage", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.x" }, []string{"InvalidRequest", "198.51.100.x"}},
		{"not-allowed", func(s *corev1.Service) { s.Annotations[k8s.AnnotationPool] = "prod-only" }, []string{"PoolNotAllowed", "prod"}},
		{"lbip-mismatch", func(s *corev1.Service) {
			s.Annotations[k8s.AnnotationIPs] = "198.51.100.3"
			s.Spec.LoadBalancerIP = "198.51.100.4"
		}, []string{"InvalidRequest", "loadBalancerIP"}},
	}
	for _, b := range bad {
		e.createSvc(b.name, b.mod)
	}
	for _, b := range bad {
		e.waitEvent(b.name, EventAllocationFailed, b.fragments...)
	}
	for _, b := range bad {
		e.neverIPs(b.name, 100*time.Millisecond)
	}
	// Working Services kept their addresses through all of it.
	e.waitIPs("req", "198.51.100.9")
	e.waitIPs("lbip", "198.51.100.10")

	// A bad edit of a working Service keeps its address and says so.
	e.updateSvc("req", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.10" })
	e.waitEvent("req", EventAllocationFailed, "AddressInUse", "keeping 198.51.100.9")
	e.waitIPs("req", "198.51.100.9")
	// A good edit moves it.
	e.updateSvc("req", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.11" })
	e.waitIPs("req", "198.51.100.11")

	// The Service that waited for 198.51.100.9 gets it once it is free.
	e.waitIPs("in-use", "198.51.100.9")
	// Fixing the bad input lets the Service in.
	e.updateSvc("outside", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.12" })
	e.waitIPs("outside", "198.51.100.12")
}

func TestSharing(t *testing.T) {
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.0/28")
	e.startController()
	share := func(key string, port int32, proto corev1.Protocol) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Annotations[k8s.AnnotationShare] = key
			s.Spec.Ports[0].Port, s.Spec.Ports[0].Protocol = port, proto
		}
	}
	e.createSvc("http", share("front", 80, corev1.ProtocolTCP))
	e.waitIPs("http", "198.51.100.0")
	e.createSvc("dns-udp", share("front", 53, corev1.ProtocolUDP))
	e.waitIPs("dns-udp", "198.51.100.0")
	e.createSvc("dns-tcp", share("front", 53, corev1.ProtocolTCP))
	e.waitIPs("dns-tcp", "198.51.100.0")
	// Colliding port under the same key: a new address, not a collision.
	e.createSvc("http2", share("front", 80, corev1.ProtocolTCP))
	e.waitIPs("http2", "198.51.100.1")
	// Asking for the shared address with a colliding port is refused.
	e.createSvc("http3", func(s *corev1.Service) {
		share("front", 80, corev1.ProtocolTCP)(s)
		s.Annotations[k8s.AnnotationIPs] = "198.51.100.0"
	})
	e.waitEvent("http3", EventAllocationFailed, "PortCollision", "TCP/80")
	// externalTrafficPolicy Local needs the same endpoints.
	e.createSvc("local", func(s *corev1.Service) {
		share("front", 443, corev1.ProtocolTCP)(s)
		s.Annotations[k8s.AnnotationIPs] = "198.51.100.0"
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	e.waitEvent("local", EventAllocationFailed, "SharingIncompatible")
	// The address stays until the last sharer goes.
	for _, n := range []string{"http", "dns-udp"} {
		if err := e.kube.CoreV1().Services(e.ns).Delete(context.Background(), n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.createSvc("other", nil)
	e.waitIPs("other", "198.51.100.2")
	e.waitIPs("dns-tcp", "198.51.100.0")
}

func TestLoadBalancerClass(t *testing.T) {
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.0/28")
	e.class = k8s.Class{Name: "herald.dev/lb", Only: true}
	e.startController()
	e.createSvc("ours", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("herald.dev/lb") })
	e.createSvc("noclass", nil)
	e.createSvc("theirs", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/other") })
	e.waitIPs("ours", "198.51.100.0")
	e.neverIPs("noclass", 300*time.Millisecond)
	e.neverIPs("theirs", 10*time.Millisecond)

	// Without --only-class, Services with no class are ours too.
	e.stop()
	e.class = k8s.Class{Name: "herald.dev/lb"}
	e.startController()
	e.waitIPs("noclass", "198.51.100.1")
	e.neverIPs("theirs", 300*time.Millisecond)
	e.waitIPs("ours", "198.51.100.0")
}

func TestDualStack(t *testing.T) {
	e := newEnv(t)
	e.createPool("v4", nil, "198.51.100.0/28")
	e.createPool("z-dual", nil, "203.0.113.0/28", "2001:db8::/120")
	e.startController()
	e.createSvc("require", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	})
	e.waitIPs("require", "203.0.113.0", "2001:db8::")
	e.createSvc("prefer6", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	})
	e.waitIPs("prefer6", "2001:db8::1", "203.0.113.1")
	e.createSvc("v6only", func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	})
	e.waitIPs("v6only", "2001:db8::2")
	e.createSvc("v4only", nil)
	e.waitIPs("v4only", "198.51.100.0")
	e.waitPool("z-dual", func(p *heraldv1.IPPool) bool {
		return p.Status.IPv4 != nil && p.Status.IPv6 != nil && p.Status.IPv6.Allocated == 3 && p.Status.Summary.Allocated == "v4:2 v6:3" && p.Status.Summary.Free == "14"
	})
}

func TestPoolFinalizerShrinkAndOverlap(t *testing.T) {
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.0/28")
	e.startController()
	e.waitPool("lan", func(p *heraldv1.IPPool) bool { return len(p.Finalizers) == 1 && p.Finalizers[0] == PoolFinalizer })
	for i := range 3 {
		e.createSvc(fmt.Sprintf("s%d", i), nil)
		e.waitIPs(fmt.Sprintf("s%d", i), fmt.Sprintf("198.51.100.%d", i))
	}

	// Shrink: addresses in use stay and are reported.
	e.updatePool("lan", func(p *heraldv1.IPPool) { p.Spec.Addresses = []string{"198.51.100.2/31", "198.51.100.8/29"} })
	e.waitPool("lan", func(p *heraldv1.IPPool) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionInUseOutsideSpec)
		return c != nil && c.Status == metav1.ConditionTrue && p.Status.IPv4.Allocated == 3 && p.Status.IPv4.Total == "10" && p.Status.IPv4.Free == "9" &&
			slices.Equal(p.Status.OutsideSpec, []string{"198.51.100.0/31"}) // what speakers check pool hints against
	})
	e.createSvc("s3", nil)
	e.waitIPs("s3", "198.51.100.3")
	for i := range 3 {
		e.waitIPs(fmt.Sprintf("s%d", i), fmt.Sprintf("198.51.100.%d", i))
	}

	// Overlap: the newer pool is not used, nothing moves.
	e.createPool("late", nil, "198.51.100.0/24")
	p := e.waitPool("late", func(p *heraldv1.IPPool) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == heraldv1.ReasonOverlap
	})
	t.Logf("overlap message: %s", meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionReady).Message)
	e.createSvc("s4", func(s *corev1.Service) { s.Annotations[k8s.AnnotationPool] = "late" })
	e.waitEvent("s4", EventAllocationFailed, "PoolNotReady", "overlaps")

	// Deletion waits for the Services to let go.
	if err := e.herald.HeraldV1alpha1().IPPools().Delete(context.Background(), "lan", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitPool("lan", func(p *heraldv1.IPPool) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionReady)
		return p.DeletionTimestamp != nil && c != nil && c.Reason == ReasonDeleting && p.Status.IPv4.Allocated == 4
	})
	for i := range 4 {
		e.waitIPs(fmt.Sprintf("s%d", i), fmt.Sprintf("198.51.100.%d", i))
		if err := e.kube.CoreV1().Services(e.ns).Delete(context.Background(), fmt.Sprintf("s%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.herald.HeraldV1alpha1().IPPools().Get(ctx, "lan", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("IPPool lan not deleted after its Services were: %v", err)
	}
	// A pool being deleted no longer claims its range, so the late pool
	// takes over; it skips every address still held.
	e.waitPool("late", func(p *heraldv1.IPPool) bool {
		return meta.IsStatusConditionTrue(p.Status.Conditions, heraldv1.ConditionReady)
	})
	e.waitIPs("s4", "198.51.100.4")
}

func TestRestartKeepsAddresses(t *testing.T) {
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.0/26")
	e.startController()
	want := map[string]string{}
	for i := range 20 {
		n := fmt.Sprintf("s%02d", i)
		e.createSvc(n, nil)
	}
	for i := range 20 {
		n := fmt.Sprintf("s%02d", i)
		s := e.waitIPsAny(n)
		want[n] = s
	}
	// Free some low addresses so a naive restart would hand them out again.
	for _, n := range []string{"s00", "s05", "s10"} {
		if err := e.kube.CoreV1().Services(e.ns).Delete(context.Background(), n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		delete(want, n)
	}
	// The releases are done once the pool counts what is left.
	e.waitPool("lan", func(p *heraldv1.IPPool) bool { return p.Status.IPv4 != nil && p.Status.IPv4.Allocated == 17 })
	e.stop()

	// While the controller is down: new Services, one asking for an
	// address another already holds, and an annotation that lost its pool.
	for i := range 5 {
		e.createSvc(fmt.Sprintf("new%d", i), nil)
	}
	e.createSvc("thief", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = want["s03"] })
	e.startController()

	for n, ip := range want {
		e.waitIPs(n, ip)
	}
	seen := map[string]string{}
	for n, ip := range want {
		seen[ip] = n
	}
	for i := range 5 {
		n := fmt.Sprintf("new%d", i)
		ip := e.waitIPsAny(n)
		if other, dup := seen[ip]; dup {
			t.Errorf("%s got %s, already held by %s", n, ip, other)
		}
		seen[ip] = n
	}
	e.waitEvent("thief", EventAllocationFailed, "AddressInUse")
}

// waitIPsAny waits for one address and returns it.
func (e *env) waitIPsAny(name string) string {
	e.t.Helper()
	var ip string
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := e.kube.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
			return false, nil
		}
		ip = s.Status.LoadBalancer.Ingress[0].IP
		return true, nil
	})
	if err != nil {
		e.t.Fatalf("Service %s never got an address", name)
	}
	return ip
}

func TestConcurrentCreatesNoDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1 000 Services; skipped with -short")
	}
	e := newEnv(t)
	e.createPool("big", nil, "198.18.0.0/20")
	e.startController()
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s := lbService(e.ns, fmt.Sprintf("c%04d", i))
			if _, err := e.kube.CoreV1().Services(e.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating: %v", err)
	}
	var list *corev1.ServiceList
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		list = l
		for _, s := range l.Items {
			if len(s.Status.LoadBalancer.Ingress) == 0 {
				return false, nil
			}
		}
		return len(l.Items) == n, nil
	})
	if err != nil {
		t.Fatalf("not every Service got an address: %v", err)
	}
	owners := map[string]string{}
	for _, s := range list.Items {
		ip := s.Status.LoadBalancer.Ingress[0].IP
		if o, dup := owners[ip]; dup {
			t.Errorf("%s assigned to both %s and %s", ip, o, s.Name)
		}
		owners[ip] = s.Name
	}
	e.waitPool("big", func(p *heraldv1.IPPool) bool { return p.Status.IPv4 != nil && p.Status.IPv4.Allocated == n })
}

// TestAPIServerOutage stops the API server for 20 s: nothing the controller
// wrote is lost, and it notices a Service created after the API returns
// within a redial interval instead of client-go's backoff of up to a minute.
func TestAPIServerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s outage; skipped with -short")
	}
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.0/28")
	e.startController()
	e.createSvc("before", nil)
	e.waitIPs("before", "198.51.100.0")

	if err := cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second) // the outage itself, of a real API server
	if err := cluster.StartAPIServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	e.createSvc("after", nil)
	e.waitIPs("after", "198.51.100.1")
	t.Logf("Service created after a 20 s API outage assigned %v after the API server was ready again", time.Since(back).Round(time.Millisecond))
	e.waitIPs("before", "198.51.100.0")
}

func TestExternalIPs(t *testing.T) {
	e := newEnv(t)
	e.createPool("ext", func(p *heraldv1.IPPool) { p.Spec.ExternalIPs = true }, "203.0.113.0/30")
	e.createPool("lan", nil, "198.51.100.0/28")
	e.startController()
	nodePort := func(ips ...string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.AllocateLoadBalancerNodePorts = nil
			s.Spec.ExternalIPs = ips
		}
	}
	e.createSvc("np", nodePort("203.0.113.0", "198.51.100.7", "198.18.0.9"))
	e.waitEvent("np", EventExternalIPRefused, "198.51.100.7", "does not set externalIPs: true")
	e.waitEvent("np", EventExternalIPRefused, "198.18.0.9", "no ready IPPool")
	e.waitPool("ext", func(p *heraldv1.IPPool) bool {
		return p.Status.IPv4 != nil && p.Status.IPv4.Allocated == 1 && p.Status.IPv4.Free == "3"
	})

	// A load balancer from the same pool skips it, and cannot ask for it.
	e.createSvc("lb", func(s *corev1.Service) { s.Annotations[k8s.AnnotationPool] = "ext" })
	e.waitIPs("lb", "203.0.113.1")
	e.createSvc("thief", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "203.0.113.0" })
	e.waitEvent("thief", EventAllocationFailed, "AddressInUse", "externalIP")
	// An externalIP that is a load balancer's address is refused.
	e.createSvc("clash", nodePort("203.0.113.1"))
	e.waitEvent("clash", EventExternalIPRefused, "203.0.113.1", "load-balancer address")

	// Dropping the externalIP releases it; the waiting Service gets it.
	e.updateSvc("np", func(s *corev1.Service) { s.Spec.ExternalIPs = nil })
	e.waitIPs("thief", "203.0.113.0")
}

func TestAddressCount(t *testing.T) {
	e := newEnv(t)
	e.createPool("lan", nil, "198.51.100.0/29", "2001:db8::/126")
	e.startController()

	count := func(n string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Annotations[k8s.AnnotationAddressCount] = n }
	}
	s := e.createSvc("three", count("3"))
	s = e.waitIPs(s.Name, "198.51.100.0", "198.51.100.1", "198.51.100.2")
	for _, in := range s.Status.LoadBalancer.Ingress {
		if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			t.Errorf("%s: ipMode = %v, want VIP", in.IP, in.IPMode)
		}
	}
	e.waitEvent("three", EventIPAllocated, "198.51.100.0, 198.51.100.1, 198.51.100.2")
	e.createSvc("dual", func(s *corev1.Service) {
		count("2")(s)
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Annotations[k8s.AnnotationIPs] = "198.51.100.6,2001:db8::3"
	})
	e.waitIPs("dual", "198.51.100.6", "2001:db8::3", "198.51.100.3", "2001:db8::")

	// Four IPv4 addresses asked for, three left: none is taken, and an Event says why.
	e.createSvc("four", count("4"))
	e.waitEvent("four", EventAllocationFailed, "PoolExhausted", "after 3 of the 4")
	e.neverIPs("four", 300*time.Millisecond)
	// A bad count is an Event and costs nothing already held.
	e.updateSvc("three", count("17"))
	e.waitEvent("three", EventAllocationFailed, "InvalidRequest", k8s.AnnotationAddressCount, "17")
	e.updateSvc("three", count("two"))
	e.waitEvent("three", EventAllocationFailed, "InvalidRequest", `"two"`)
	e.waitIPs("three", "198.51.100.0", "198.51.100.1", "198.51.100.2")
	// Several requested addresses of one family need a count.
	e.createSvc("norcount", func(s *corev1.Service) { s.Annotations[k8s.AnnotationIPs] = "198.51.100.4,198.51.100.5" })
	e.waitEvent("norcount", EventAllocationFailed, "InvalidRequest", "more than one IPv4")
	e.updateSvc("norcount", count("2"))
	e.waitIPs("norcount", "198.51.100.4", "198.51.100.5")

	// A controller restart keeps every address of every Service.
	e.stop()
	e.createSvc("late", nil)
	e.startController()
	e.waitIPs("dual", "198.51.100.6", "2001:db8::3", "198.51.100.3", "2001:db8::")
	e.waitIPs("norcount", "198.51.100.4", "198.51.100.5")
	e.waitIPs("three", "198.51.100.0", "198.51.100.1", "198.51.100.2")
	e.waitIPs("late", "198.51.100.7")

	// Fewer addresses: the last goes, the rest stay. Deleting a Service
	// releases all of its addresses together.
	e.updateSvc("three", count("2"))
	e.waitIPs("three", "198.51.100.0", "198.51.100.1")
	if err := e.kube.CoreV1().Services(e.ns).Delete(context.Background(), "norcount", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.updateSvc("four", count("3"))
	e.waitIPs("four", "198.51.100.2", "198.51.100.4", "198.51.100.5")
	e.waitPool("lan", func(p *heraldv1.IPPool) bool {
		return p.Status.IPv4 != nil && p.Status.IPv4.Allocated == 8 && p.Status.IPv6 != nil && p.Status.IPv6.Allocated == 2
	})
}
