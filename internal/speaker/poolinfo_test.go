package speaker

import (
	"io"
	"log/slog"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// A shrunk spec reaches the speaker before the controller's
// InUseOutsideSpec condition for it: until the condition has caught up
// with the generation, the pool keeps holding its Services' addresses
// (otherwise they are withdrawn for that moment).
func TestPoolInfoKeepsOutsideSpecUntilJudged(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool := func(gen, observed int64, status metav1.ConditionStatus) *heraldv1.IPPool {
		p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen},
			Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.214/31"}}}
		if observed > 0 {
			p.Status.Conditions = []metav1.Condition{{Type: heraldv1.ConditionInUseOutsideSpec, Status: status, ObservedGeneration: observed}}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		p    *heraldv1.IPPool
		want bool
	}{
		{"new pool, no condition yet", pool(1, 0, ""), false},
		{"judged, nothing outside", pool(2, 2, metav1.ConditionFalse), false},
		{"judged, addresses outside but not listed (an older controller)", pool(2, 2, metav1.ConditionTrue), true},
		{"spec changed, not judged yet", pool(3, 2, metav1.ConditionFalse), true},
	} {
		if got := poolInfo(tc.p, log).OutsideSpecUnknown; got != tc.want {
			t.Errorf("%s: OutsideSpecUnknown %v, want %v", tc.name, got, tc.want)
		}
	}
}
