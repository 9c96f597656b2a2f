package k8s

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
)

// Annotations herald reads and writes on Services.
const (
	AnnotationPool  = "herald.dev/pool"
	AnnotationIPs   = "herald.dev/ips"
	AnnotationShare = "herald.dev/share"
	// AnnotationAddressCount asks for several addresses per family, each
	// announced from a different node in layer 2.
	AnnotationAddressCount  = "herald.dev/address-count"
	AnnotationPoolAllocated = "herald.dev/pool-allocated"
)

// LabelExcludeFromLB marks nodes that must never attract load-balancer traffic.
const LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"

// Class says which Services herald handles.
type Class struct {
	Name string
	// Only: handle only Services of class Name, not those with no class.
	Only bool
}

// Handles reports whether svc is a LoadBalancer Service of ours.
func (c Class) Handles(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return !c.Only
	}
	return *svc.Spec.LoadBalancerClass == c.Name
}

// StatusAddrs returns the IP addresses in a Service's load-balancer status.
func StatusAddrs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// NodeInternalIPs returns a Node's InternalIP addresses, IPv4 first.
func NodeInternalIPs(n *corev1.Node) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		if ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	return append(v4, v6...)
}

// Syncer is an informer factory (client-go's or herald's generated one).
type Syncer interface {
	WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool
}

// WaitForSync waits until every informer of every factory has synced.
func WaitForSync(ctx context.Context, factories ...Syncer) error {
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("waiting for %v informer to sync: %w", typ, ctx.Err())
			}
		}
	}
	return nil
}
