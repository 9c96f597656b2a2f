package speaker

import (
	"io"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
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
		if got := poolInfo(tc.p, nil, log).OutsideSpecUnknown; got != tc.want {
			t.Errorf("%s: OutsideSpecUnknown %v, want %v", tc.name, got, tc.want)
		}
	}
}

// An IPPool's BGP advertisements reach the plan in order, the pool's own
// fields first, with peerSelectors resolved into the names of the peers
// they select; one that selects no peer advertises to none (it is left
// out), never to every peer.
func TestPoolInfoAdvertisements(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	peer := func(name, site string) *heraldv1.BGPPeer {
		return &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"site": site}}}
	}
	peers := []*heraldv1.BGPPeer{peer("r3", "dc2"), peer("r1", "dc1"), peer("r2", "dc2")}
	sel := func(site string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"site": site}}
	}
	agg := int32(24)
	p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"198.51.100.0/24"},
		Announce: heraldv1.Announce{BGP: &heraldv1.BGPAnnounce{
			BGPAdvertisement: heraldv1.BGPAdvertisement{Peers: []string{"r1"}, Communities: []string{"64512:1"}},
			Advertisements: []heraldv1.NamedBGPAdvertisement{
				{Name: "dc2", BGPAdvertisement: heraldv1.BGPAdvertisement{PeerSelector: sel("dc2"), AggregationLength: &agg}},
				{Name: "nowhere", BGPAdvertisement: heraldv1.BGPAdvertisement{PeerSelector: sel("dc9")}},
				{Name: "all"},
			},
		}},
	}}
	got := poolInfo(p, peers, log).BGP
	type row struct {
		name  string
		peers []string
		agg   int
	}
	var rows []row
	for _, pol := range got {
		rows = append(rows, row{pol.Name, pol.Peers, pol.AggregationLength})
	}
	want := []row{{"", []string{"r1"}, 32}, {"dc2", []string{"r2", "r3"}, 24}, {"all", nil, 32}}
	if d := cmp.Diff(want, rows, cmp.AllowUnexported(row{})); d != "" {
		t.Errorf("advertisements (-want +got):\n%s", d)
	}
}
