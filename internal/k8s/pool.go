package k8s

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// OutsideSpec reads what an IPPool keeps outside its spec from its status:
// the listed addresses, and whether that list is the whole truth. It is
// not while the controller has not judged the current spec (a shrunk spec
// arrives before the condition that keeps addresses outside it), nor when
// the condition says addresses are kept but lists none (a controller that
// predates the list, or more ranges than fit): then a Service's pool
// annotation is to be trusted as it always was. A pool with no condition
// yet, or with InUseOutsideSpec False, keeps nothing outside.
func OutsideSpec(p *heraldv1.IPPool) (held []allocator.Range, known bool) {
	c := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionInUseOutsideSpec)
	switch {
	case c == nil:
		return nil, true
	case c.ObservedGeneration < p.Generation:
		return nil, false
	case c.Status != metav1.ConditionTrue:
		return nil, true
	case len(p.Status.OutsideSpec) == 0:
		return nil, false
	}
	for _, s := range p.Status.OutsideSpec {
		r, err := allocator.ParseRange(s)
		if err != nil {
			return nil, false // written by someone else: fall back to the hint
		}
		held = append(held, r)
	}
	return held, true
}
