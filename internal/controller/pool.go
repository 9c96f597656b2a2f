package controller

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// syncPool hands the pools to the allocator, then keeps one IPPool's
// finalizer and status right.
func (c *Controller) syncPool(ctx context.Context, name string) error {
	// Read the pool before handing the pools to the allocator, both under
	// the lock: if this copy is being deleted, so is the one the allocator
	// sees, so nothing can be allocated from it after usage is counted
	// and the finalizer decision below is safe.
	c.mu.Lock()
	p, err := c.pools.Get(name)
	c.setPoolsLocked()
	usage, known := c.alloc.PoolUsage(name)
	// Any pool change may let a waiting Service in. Services that hold an
	// address keep it whatever the pools do, so they are not revisited.
	c.retryPendingLocked()
	c.mu.Unlock()

	if apierrors.IsNotFound(err) {
		c.m.poolAddresses.DeletePartialMatch(map[string]string{"pool": name})
		return nil
	}
	if err != nil {
		return err
	}
	if !known {
		return fmt.Errorf("pool %s not yet known to the allocator", name)
	}
	allocated := usage.Families[allocator.IPv4].Allocated + usage.Families[allocator.IPv6].Allocated

	if p.DeletionTimestamp != nil {
		if allocated == 0 && slices.Contains(p.Finalizers, PoolFinalizer) {
			cp := p.DeepCopy()
			cp.Finalizers = slices.DeleteFunc(cp.Finalizers, func(f string) bool { return f == PoolFinalizer })
			if _, err := c.cfg.Herald.HeraldV1alpha1().IPPools().Update(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("removing finalizer of IPPool %s: %w", name, err)
			}
			c.log.Info("IPPool released, deletion proceeds", "pool", name)
			return nil
		}
	} else if !slices.Contains(p.Finalizers, PoolFinalizer) {
		cp := p.DeepCopy()
		cp.Finalizers = append(cp.Finalizers, PoolFinalizer)
		updated, err := c.cfg.Herald.HeraldV1alpha1().IPPools().Update(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("adding finalizer to IPPool %s: %w", name, err)
		}
		p = updated
	}
	c.exportUsage(name, usage)
	st := poolStatus(p, usage)
	if equality.Semantic.DeepEqual(st, p.Status) {
		return nil
	}
	cp := p.DeepCopy()
	cp.Status = st
	if _, err := c.cfg.Herald.HeraldV1alpha1().IPPools().UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing status of IPPool %s: %w", name, err)
	}
	return nil
}

func (c *Controller) exportUsage(name string, u allocator.Usage) {
	for f, fu := range u.Families {
		if !u.Has(allocator.Family(f)) {
			continue
		}
		fam := allocator.Family(f).String()
		total, _ := new(big.Float).SetInt(fu.Total).Float64()
		free, _ := new(big.Float).SetInt(fu.Free).Float64()
		c.m.poolAddresses.WithLabelValues(name, fam, "total").Set(total)
		c.m.poolAddresses.WithLabelValues(name, fam, "free").Set(free)
		c.m.poolAddresses.WithLabelValues(name, fam, "allocated").Set(float64(fu.Allocated))
	}
}

// maxOutsideSpecRanges is the schema's bound on status.outsideSpec.
const maxOutsideSpecRanges = 4096

// poolStatus renders usage as IPPool status, keeping condition transition
// times of conditions that did not change.
func poolStatus(p *heraldv1.IPPool, u allocator.Usage) heraldv1.IPPoolStatus {
	st := heraldv1.IPPoolStatus{Conditions: slices.Clone(p.Status.Conditions)}
	fam := func(f allocator.Family) *heraldv1.FamilyUsage {
		if !u.Has(f) {
			return nil
		}
		fu := u.Families[f]
		return &heraldv1.FamilyUsage{Total: fu.Total.String(), Allocated: int64(fu.Allocated), Free: fu.Free.String()}
	}
	st.IPv4, st.IPv6 = fam(allocator.IPv4), fam(allocator.IPv6)
	var parts []string
	if st.IPv4 != nil {
		parts = append(parts, fmt.Sprintf("v4:%d", st.IPv4.Allocated))
		st.Summary.Free = st.IPv4.Free
	}
	if st.IPv6 != nil {
		parts = append(parts, fmt.Sprintf("v6:%d", st.IPv6.Allocated))
		if st.IPv4 == nil {
			st.Summary.Free = st.IPv6.Free
		}
	}
	st.Summary.Allocated = strings.Join(parts, " ")

	ready := metav1.Condition{Type: heraldv1.ConditionReady, Status: metav1.ConditionTrue, Reason: heraldv1.ReasonValid, Message: "addresses are valid and do not overlap another pool", ObservedGeneration: p.Generation}
	if !u.State.Ready {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, u.State.Reason, u.State.Message
		if u.State.Reason == ReasonDeleting {
			n := u.Families[0].Allocated + u.Families[1].Allocated
			ready.Message = fmt.Sprintf("deletion waits until %d address(es) in use are released", n)
		}
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	outside := metav1.Condition{Type: heraldv1.ConditionInUseOutsideSpec, Status: metav1.ConditionFalse, Reason: heraldv1.ReasonNoneOutsideSpec, Message: "every address in use lies in spec.addresses", ObservedGeneration: p.Generation}
	if n := len(u.OutsideSpec); n > 0 {
		// The list speakers check a Service's pool annotation against;
		// past the schema's bound it is left out, and speakers trust the
		// annotation as they did before the list existed.
		if ranges := allocator.Compact(u.OutsideSpec); len(ranges) <= maxOutsideSpecRanges {
			for _, r := range ranges {
				st.OutsideSpec = append(st.OutsideSpec, r.String())
			}
		}
		shown := u.OutsideSpec[:min(n, 10)]
		outside.Status, outside.Reason = metav1.ConditionTrue, heraldv1.ReasonAddressesInUse
		outside.Message = fmt.Sprintf("%d address(es) in use lie outside spec.addresses and stay with their Services until released: %s", n, joinAddrs(shown))
		if n > len(shown) {
			outside.Message += ", ..."
		}
	}
	meta.SetStatusCondition(&st.Conditions, outside)
	return st
}
