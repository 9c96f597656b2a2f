package lab

import (
	"context"
	"fmt"

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
