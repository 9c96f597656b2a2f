package k8s

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

func TestOutsideSpec(t *testing.T) {
	pool := func(gen, observed int64, status metav1.ConditionStatus, list ...string) *heraldv1.IPPool {
		p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen}}
		if observed > 0 {
			p.Status.Conditions = []metav1.Condition{{Type: heraldv1.ConditionInUseOutsideSpec, Status: status, ObservedGeneration: observed}}
		}
		p.Status.OutsideSpec = list
		return p
	}
	for _, tc := range []struct {
		name  string
		p     *heraldv1.IPPool
		held  string
		known bool
	}{
		{"new pool, no condition yet", pool(1, 0, ""), "[]", true},
		{"judged, nothing outside", pool(2, 2, metav1.ConditionFalse), "[]", true},
		{"judged, addresses listed", pool(2, 2, metav1.ConditionTrue, "198.51.100.1/32", "198.51.100.4-198.51.100.6"), "[198.51.100.1/32 198.51.100.4-198.51.100.6]", true},
		{"judged, kept but not listed", pool(2, 2, metav1.ConditionTrue), "[]", false},
		{"spec changed, not judged yet", pool(3, 2, metav1.ConditionFalse), "[]", false},
		{"a list that does not parse", pool(2, 2, metav1.ConditionTrue, "nonsense"), "[]", false},
	} {
		held, known := OutsideSpec(tc.p)
		if got := fmt.Sprint(held); got != tc.held || known != tc.known {
			t.Errorf("%s: held %v known %v, want %s %v", tc.name, held, known, tc.held, tc.known)
		}
	}
}
