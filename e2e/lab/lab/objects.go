package lab

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
)

// CreatePool creates (or replaces the addresses of) IPPool name, announced
// over layer 2 (the schema's default).
func (l *Lab) CreatePool(ctx context.Context, name string, addresses ...string) error {
	hc, err := versioned.NewForConfig(l.Config)
	if err != nil {
		return err
	}
	pools := hc.HeraldV1alpha1().IPPools()
	pool := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: heraldv1.IPPoolSpec{Addresses: addresses}}
	_, err = pools.Create(ctx, pool, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		old, gerr := pools.Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		old.Spec.Addresses = addresses
		_, err = pools.Update(ctx, old, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("creating IPPool %s: %w", name, err)
	}
	return nil
}

// ServiceSpec says what CreateService makes.
type ServiceSpec struct {
	Namespace, Name string
	App             string // selector app=App (default Name)
	Local           bool   // externalTrafficPolicy Local
	DualStack       bool   // ipFamilyPolicy RequireDualStack
	Port            int32  // default 80; targetPort is always BackendPort
}

// CreateService creates a LoadBalancer Service selecting the lab backends
// registered with app.
func (l *Lab) CreateService(ctx context.Context, s ServiceSpec) error {
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.App == "" {
		s.App = s.Name
	}
	if s.Port == 0 {
		s.Port = 80
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Selector:              map[string]string{"app": s.App},
			Ports:                 []corev1.ServicePort{{Name: "http", Port: s.Port, TargetPort: intstr.FromInt32(BackendPort)}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
		},
	}
	if s.Local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if s.DualStack {
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}
	if _, err := l.Kube.CoreV1().Services(s.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating service %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// DeleteService deletes a Service CreateService made.
func (l *Lab) DeleteService(ctx context.Context, ns, name string) error {
	err := l.Kube.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

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
