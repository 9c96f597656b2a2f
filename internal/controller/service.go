package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/k8s"
)

// syncService brings one Service's assignment, status and annotation in
// line with its spec.
func (c *Controller) syncService(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.svcs.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key)
		c.mu.Lock()
		if len(c.alloc.ExternalIPs(key)) > 0 {
			c.alloc.ReleaseExternalIPs(key)
			c.allPoolsChanged()
		}
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	c.syncExternalIPs(svc)
	log := c.log.With("service", key)
	if !c.cfg.Class.Handles(svc) {
		released := c.release(key)
		if len(svc.Status.LoadBalancer.Ingress) > 0 && released != nil {
			// We wrote that status; it is no longer ours to keep.
			if err := c.writeStatus(ctx, svc, nil); err != nil {
				return err
			}
		}
		if released != nil {
			log.Info("released addresses", "ip", released.Addrs, "pool", released.Pool)
			c.cfg.Recorder.Eventf(svc, corev1.EventTypeNormal, EventIPReleased, "Released %s: the Service is no longer a LoadBalancer of class %q", joinAddrs(released.Addrs), c.cfg.Class.Name)
		}
		return c.writePoolAnnotation(ctx, svc, "")
	}

	before, had, as, err := c.allocate(svc)
	if err != nil {
		reason := allocator.Reason(err)
		c.m.allocErrors.WithLabelValues(reason).Inc()
		log.Warn("allocation failed", "reason", reason, "err", err)
		msg := fmt.Sprintf("%s: %v", reason, err)
		if had {
			msg += fmt.Sprintf("; keeping %s", joinAddrs(before.Addrs))
		}
		c.cfg.Recorder.Event(svc, corev1.EventTypeWarning, EventAllocationFailed, msg)
		// The status must show what the Service really holds: an earlier
		// status write may have failed after the allocator moved it.
		if had && !slices.Equal(statusAddrs(svc), before.Addrs) {
			return c.writeStatus(ctx, svc, before.Addrs)
		}
		// No retry now: the inputs are bad until the Service or the pools
		// change, or an address is released, and each of those enqueues
		// it again.
		return nil
	}
	changed := !had || !slices.Equal(before.Addrs, as.Addrs) || before.Pool != as.Pool
	if changed {
		c.poolChanged(before.Pool, as.Pool)
		if had {
			c.mu.Lock()
			c.retryPendingLocked() // an address may have been freed
			c.mu.Unlock()
		}
	}
	if !slices.Equal(statusAddrs(svc), as.Addrs) || !sameIngress(svc.Status.LoadBalancer.Ingress, ingressFor(as.Addrs)) {
		if err := c.writeStatus(ctx, svc, as.Addrs); err != nil {
			return err
		}
		if !slices.Equal(statusAddrs(svc), as.Addrs) {
			c.m.allocations.WithLabelValues(as.Pool).Inc()
			log.Info("assigned addresses", "ip", as.Addrs, "pool", as.Pool)
			c.cfg.Recorder.Eventf(svc, corev1.EventTypeNormal, EventIPAllocated, "Assigned %s from IPPool %q", joinAddrs(as.Addrs), as.Pool)
		}
	}
	return c.writePoolAnnotation(ctx, svc, as.Pool)
}

// allocate runs the allocator for svc under the lock, remembering failed
// Services as pending, whether or not they hold an address: one waiting
// for a specific address or pool must be retried when that frees up.
func (c *Controller) allocate(svc *corev1.Service) (before allocator.Assignment, had bool, as allocator.Assignment, err error) {
	key := svc.Namespace + "/" + svc.Name
	c.mu.Lock()
	defer c.mu.Unlock()
	before, had = c.alloc.Assigned(key)
	req, err := serviceRequest(svc, c.nsLabels(svc.Namespace))
	if err == nil {
		as, err = c.alloc.Allocate(req)
	}
	if err != nil {
		c.pending[key] = struct{}{}
	} else {
		delete(c.pending, key)
	}
	return before, had, as, err
}

// release drops key's assignment; it returns what was released, nil if nothing.
func (c *Controller) release(key string) *allocator.Assignment {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, key)
	as, ok := c.alloc.Assigned(key)
	if !ok {
		return nil
	}
	c.alloc.Release(key)
	c.m.releases.Inc()
	c.poolChanged(as.Pool)
	c.retryPendingLocked()
	return &as
}

func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, addrs []netip.Addr) error {
	cp := svc.DeepCopy()
	cp.Status.LoadBalancer.Ingress = ingressFor(addrs)
	if len(addrs) == 0 {
		cp.Status.LoadBalancer.Ingress = nil
	}
	if _, err := c.cfg.Kube.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing status of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// writePoolAnnotation sets (or, with pool "", removes) the output
// annotation naming the pool the address came from.
func (c *Controller) writePoolAnnotation(ctx context.Context, svc *corev1.Service, pool string) error {
	cur, has := svc.Annotations[k8s.AnnotationPoolAllocated]
	if cur == pool && (has || pool == "") {
		return nil
	}
	var val any = pool
	if pool == "" {
		val = nil // JSON null deletes the key in a merge patch
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{k8s.AnnotationPoolAllocated: val}}})
	if _, err := c.cfg.Kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("annotating %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

func joinAddrs(addrs []netip.Addr) string {
	s := ""
	for i, a := range addrs {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s
}

// externalIPsOf returns the spec.externalIPs herald may account for: those
// of every Service except LoadBalancers of another class, whose addresses
// are another implementation's business.
func (c *Controller) externalIPsOf(svc *corev1.Service) []netip.Addr {
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && !c.cfg.Class.Handles(svc) {
		return nil
	}
	var out []netip.Addr
	for _, s := range svc.Spec.ExternalIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// syncExternalIPs records the Service's externalIPs that lie in opt-in
// pools, so no load balancer is ever given them, and tells the user about
// every one herald refuses to announce.
func (c *Controller) syncExternalIPs(svc *corev1.Service) {
	key := svc.Namespace + "/" + svc.Name
	want := c.externalIPsOf(svc)
	c.mu.Lock()
	before := c.alloc.ExternalIPs(key)
	if len(want) == 0 && len(before) == 0 {
		c.mu.Unlock()
		return
	}
	accepted, err := c.alloc.UseExternalIPs(key, want)
	if err != nil {
		c.pending[key] = struct{}{}
	}
	if !slices.Equal(before, accepted) {
		c.allPoolsChanged()
		if len(accepted) < len(before) {
			c.retryPendingLocked()
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("externalIPs refused", "service", key, "err", err)
		c.cfg.Recorder.Eventf(svc, corev1.EventTypeWarning, EventExternalIPRefused, "not announced: %v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
}

// allPoolsChanged schedules a status refresh of every pool.
func (c *Controller) allPoolsChanged() {
	pools, _ := c.pools.List(labels.Everything())
	for _, p := range pools {
		c.poolChanged(p.Name)
	}
}
