package controller

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/testcluster"
)

// One control plane serves the whole package; tests run one after another
// and each removes its pools and namespace, because pools are
// cluster-scoped and every controller sees all of them.
var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	c, err := testcluster.Start(ctx, testcluster.Options{CRDDir: "../../config/crd/bases"})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "*** FAIL: cannot start the test control plane: %v\n*** Build the Kubernetes test binaries with `make k8sbin`.\n", err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
	}
	if code == 0 {
		// Every controller a test started must have stopped with it.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

type env struct {
	t      *testing.T
	kube   kubernetes.Interface
	herald versioned.Interface
	ns     string
	class  k8s.Class
	stop   func()
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// newEnv gives t a namespace and cleans up after it; startController runs
// a controller.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		t:      t,
		kube:   kubernetes.NewForConfigOrDie(cluster.Config),
		herald: versioned.NewForConfigOrDie(cluster.Config),
		ns:     strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-"),
		class:  k8s.Class{Name: "herald.dev/lb"},
		logs:   &syncBuffer{},
	}
	if len(e.ns) > 50 {
		e.ns = e.ns[:50]
	}
	ctx := context.Background()
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
		if t.Failed() {
			t.Logf("controller log:\n%s", e.logs.String())
		}
		e.cleanup()
	})
	return e
}

// cleanup removes every Service of the namespace and every IPPool; there is
// no kube-controller-manager, so the namespace itself stays.
func (e *env) cleanup() {
	ctx := context.Background()
	if svcs, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range svcs.Items {
			_ = e.kube.CoreV1().Services(e.ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
		}
	}
	pools, _ := e.herald.HeraldV1alpha1().IPPools().List(ctx, metav1.ListOptions{})
	for _, p := range pools.Items {
		if len(p.Finalizers) > 0 {
			p.Finalizers = nil
			_, _ = e.herald.HeraldV1alpha1().IPPools().Update(ctx, &p, metav1.UpdateOptions{})
		}
		_ = e.herald.HeraldV1alpha1().IPPools().Delete(ctx, p.Name, metav1.DeleteOptions{})
	}
	_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := e.herald.HeraldV1alpha1().IPPools().List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0, nil
	})
}

// startController runs a controller until the test ends or stop is called.
func (e *env) startController() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kubernetes.NewForConfigOrDie(cluster.Config).CoreV1().Events("")})
	// The controller gets its own clients, patient with an unreachable API
	// server as the binaries are; the test's own clients fail fast.
	cfg := rest.CopyConfig(cluster.Config)
	k8s.PatientDial(cfg)
	kube, herald := kubernetes.NewForConfigOrDie(cfg), versioned.NewForConfigOrDie(cfg)
	ctrl := New(Config{
		Kube: kube, Herald: herald, Class: e.class,
		Recorder:        bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "herald-controller"}),
		Log:             slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PoolStatusDelay: 50 * time.Millisecond,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ctrl.Run(ctx); err != nil {
			_, _ = fmt.Fprintf(e.logs, "controller stopped: %v\n", err)
		}
	}()
	e.stop = func() {
		cancel()
		<-done
		bc.Shutdown()
		e.stop = nil
	}
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return ctrl.Ready() == nil, nil
	}); err != nil {
		e.t.Fatalf("controller not ready: %v", err)
	}
}

func (e *env) createPool(name string, mod func(*heraldv1.IPPool), addresses ...string) *heraldv1.IPPool {
	e.t.Helper()
	p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: heraldv1.IPPoolSpec{Addresses: addresses}}
	if mod != nil {
		mod(p)
	}
	out, err := e.herald.HeraldV1alpha1().IPPools().Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("creating IPPool %s: %v", name, err)
	}
	return out
}

func (e *env) getPool(name string) *heraldv1.IPPool {
	e.t.Helper()
	p, err := e.herald.HeraldV1alpha1().IPPools().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("getting IPPool %s: %v", name, err)
	}
	return p
}

func (e *env) updatePool(name string, mod func(*heraldv1.IPPool)) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		p := e.getPool(name)
		mod(p)
		_, err := e.herald.HeraldV1alpha1().IPPools().Update(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		e.t.Fatalf("updating IPPool %s: %v", name, err)
	}
}

func lbService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
			// Node ports are irrelevant here, and the default range holds
			// only 2 768 Services.
			AllocateLoadBalancerNodePorts: ptr.To(false),
		},
	}
}

func (e *env) createSvc(name string, mod func(*corev1.Service)) *corev1.Service {
	e.t.Helper()
	s := lbService(e.ns, name)
	if mod != nil {
		mod(s)
	}
	out, err := e.kube.CoreV1().Services(e.ns).Create(context.Background(), s, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("creating Service %s: %v", name, err)
	}
	return out
}

func (e *env) getSvc(name string) *corev1.Service {
	e.t.Helper()
	s, err := e.kube.CoreV1().Services(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("getting Service %s: %v", name, err)
	}
	return s
}

func (e *env) updateSvc(name string, mod func(*corev1.Service)) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		s := e.getSvc(name)
		mod(s)
		_, err := e.kube.CoreV1().Services(e.ns).Update(ctx, s, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		e.t.Fatalf("updating Service %s: %v", name, err)
	}
}

func ingressIPs(s *corev1.Service) []string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// waitIPs waits until the Service's status lists exactly want.
func (e *env) waitIPs(name string, want ...string) *corev1.Service {
	e.t.Helper()
	var last *corev1.Service
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := e.kube.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = s
		return strings.Join(ingressIPs(s), ",") == strings.Join(want, ","), nil
	})
	if err != nil {
		got := []string(nil)
		if last != nil {
			got = ingressIPs(last)
		}
		e.t.Fatalf("Service %s: status ingress %v, want %v", name, got, want)
	}
	return last
}

// waitEvent waits for an Event on the Service with reason and a message
// containing every fragment.
func (e *env) waitEvent(name, reason string, fragments ...string) corev1.Event {
	e.t.Helper()
	var found corev1.Event
	var seen []string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, nil
		}
		seen = seen[:0]
	next:
		for _, ev := range evs.Items {
			seen = append(seen, ev.Reason+": "+ev.Message)
			if ev.Reason != reason {
				continue
			}
			for _, f := range fragments {
				if !strings.Contains(ev.Message, f) {
					continue next
				}
			}
			found = ev
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		e.t.Fatalf("no %s event on %s containing %q; events: %q", reason, name, fragments, seen)
	}
	return found
}

// never checks that cond stays false for d: the status is left untouched.
func (e *env) neverIPs(name string, d time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ips := ingressIPs(e.getSvc(name)); len(ips) > 0 {
			e.t.Fatalf("Service %s got %v, want no address", name, ips)
		}
		time.Sleep(50 * time.Millisecond) // polls a real API server
	}
}
