package controller

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/k8s"
)

// PoolFinalizer holds an IPPool's deletion while addresses from it are in use.
const PoolFinalizer = "herald.dev/pool-protection"

// ReasonDeleting is the Ready reason of a pool waiting for its addresses
// to be released before it goes.
const ReasonDeleting = "Deleting"

// ReasonInvalidSelector is the Ready reason of a pool whose selector does not parse.
const ReasonInvalidSelector = "InvalidSelector"

// serviceRequest translates a Service into what the allocator needs. The
// error (wrapping allocator.ErrInvalidRequest) is for malformed annotations.
func serviceRequest(svc *corev1.Service, nsLabels map[string]string) (*allocator.Service, error) {
	req := &allocator.Service{
		Key:             svc.Namespace + "/" + svc.Name,
		Namespace:       svc.Namespace,
		Labels:          svc.Labels,
		NamespaceLabels: nsLabels,
		Pool:            svc.Annotations[k8s.AnnotationPool],
		SharingKey:      svc.Annotations[k8s.AnnotationShare],
		Local:           svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		BackendKey:      labels.Set(svc.Spec.Selector).String(),
	}
	if len(svc.Spec.Selector) == 0 {
		// Without a selector the endpoints are managed by hand: no two
		// such Services can be shown to select the same endpoints.
		req.BackendKey = "manual:" + req.Key
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			req.Families = append(req.Families, allocator.IPv4)
		case corev1.IPv6Protocol:
			req.Families = append(req.Families, allocator.IPv6)
		}
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			req.Policy = allocator.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			req.Policy = allocator.RequireDualStack
		}
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		req.Ports = append(req.Ports, allocator.Port{Protocol: proto, Port: p.Port})
	}
	if s, ok := svc.Annotations[k8s.AnnotationAddressCount]; ok {
		n, err := allocator.ParseCount(s)
		if err != nil {
			return req, fmt.Errorf("annotation %s: %w", k8s.AnnotationAddressCount, err)
		}
		req.Count = n
	}
	if s, ok := svc.Annotations[k8s.AnnotationIPs]; ok {
		addrs, err := allocator.ParseAddressList(s, req.Count)
		if err != nil {
			return req, fmt.Errorf("annotation %s: %w", k8s.AnnotationIPs, err)
		}
		req.Requested = addrs
	}
	if s := svc.Spec.LoadBalancerIP; s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return req, fmt.Errorf("%w: spec.loadBalancerIP %q is not an IP address", allocator.ErrInvalidRequest, s)
		}
		switch {
		case req.Requested == nil:
			req.Requested = []netip.Addr{a}
		case !slices.Contains(req.Requested, a):
			return req, fmt.Errorf("%w: spec.loadBalancerIP %s is not among annotation %s %q", allocator.ErrInvalidRequest, a, k8s.AnnotationIPs, svc.Annotations[k8s.AnnotationIPs])
		}
	}
	return req, nil
}

func statusAddrs(svc *corev1.Service) []netip.Addr { return k8s.StatusAddrs(svc) }

// ingressFor is the load-balancer status herald writes for addrs. ipMode
// VIP tells kube-proxy the address is delivered to the node with its
// destination unchanged, so it must handle it locally.
func ingressFor(addrs []netip.Addr) []corev1.LoadBalancerIngress {
	out := make([]corev1.LoadBalancerIngress, len(addrs))
	vip := corev1.LoadBalancerIPModeVIP
	for i, a := range addrs {
		out[i] = corev1.LoadBalancerIngress{IP: a.String(), IPMode: &vip}
	}
	return out
}

func sameIngress(a, b []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname && (x.IPMode == nil) == (y.IPMode == nil) &&
			(x.IPMode == nil || *x.IPMode == *y.IPMode) && len(x.Ports) == 0 && len(y.Ports) == 0
	})
}

// poolConfig translates an IPPool for the allocator.
func poolConfig(p *heraldv1.IPPool) allocator.PoolConfig {
	c := allocator.PoolConfig{
		Name:          p.Name,
		Addresses:     p.Spec.Addresses,
		AutoAssign:    p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
		AvoidBuggyIPs: p.Spec.AvoidBuggyIPs,
		Priority:      p.Spec.Priority,
		Namespaces:    p.Spec.Namespaces,
		ExternalIPs:   p.Spec.ExternalIPs,
		Created:       p.CreationTimestamp.Time,
	}
	c.HeldOutsideSpec, c.OutsideSpecKnown = k8s.OutsideSpec(p)
	var bad []string
	for _, sel := range []struct {
		name string
		in   *metav1.LabelSelector
		out  *labels.Selector
	}{
		{"serviceSelector", p.Spec.ServiceSelector, &c.ServiceSelector},
		{"namespaceSelector", p.Spec.NamespaceSelector, &c.NamespaceSelector},
	} {
		if sel.in == nil {
			continue
		}
		s, err := metav1.LabelSelectorAsSelector(sel.in)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", sel.name, err))
			continue
		}
		*sel.out = s
	}
	switch {
	case p.DeletionTimestamp != nil:
		c.Unusable = &allocator.PoolState{Reason: ReasonDeleting, Message: "the IPPool is being deleted; it waits until no Service holds its addresses"}
	case len(bad) > 0:
		c.Unusable = &allocator.PoolState{Reason: ReasonInvalidSelector, Message: strings.Join(bad, "; ")}
	}
	return c
}
