package speaker

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/internal/election"
)

type oneMember struct{ name string }

func (m oneMember) Members() []election.Member {
	return []election.Member{{Name: m.name, Healthy: true}}
}
func (oneMember) Changed() <-chan struct{}               { return nil }
func (oneMember) SetPeers([]netip.AddrPort)              {}
func (oneMember) SetHealthy(context.Context, bool) error { return nil }
func (oneMember) Leave(time.Duration) error              { return nil }

// TestReportListsAtMostMaxReported: a node announcing more than
// maxReported addresses lists the lowest ones, sorted by address, counts
// the rest, and still counts all of them per protocol.
func TestReportListsAtMostMaxReported(t *testing.T) {
	s := New(Config{NodeName: "n1", Membership: oneMember{"n1"}})
	// 1 500 layer-2 addresses in descending order, and one BGP address
	// that sorts first.
	for i := 1499; i >= 0; i-- {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i % 256)})
		s.last.L2 = append(s.last.L2, L2Announcement{Addr: a, Pool: "p", Services: []string{"ns/s"}})
	}
	s.last.BGP = append(s.last.BGP, BGPAnnouncement{Addr: netip.MustParseAddr("198.18.0.1"), Pool: "b", Policy: &BGPPolicy{}})
	st := s.report()
	if len(st.Announcements) != maxReported || st.AnnouncementsOmitted != 501 {
		t.Fatalf("listed %d, omitted %d; want %d and 501", len(st.Announcements), st.AnnouncementsOmitted, maxReported)
	}
	if st.Layer2Count != 1500 || st.BGPCount != 1 {
		t.Errorf("counts layer2 %d bgp %d, want 1500 and 1", st.Layer2Count, st.BGPCount)
	}
	if got := st.Announcements[0]; got.Address != "198.18.0.1" || got.Protocol != "bgp" {
		t.Errorf("first listed %s/%s, want the lowest address 198.18.0.1/bgp", got.Address, got.Protocol)
	}
	if got := st.Announcements[maxReported-1].Address; got != "198.19.3.230" {
		t.Errorf("last listed %s, want 198.19.3.230 (the 999th lowest layer-2 address)", got)
	}
}

// TestNodeMatters: a heartbeat does not change what the speaker reads of a
// Node; labels, addresses and NetworkUnavailable do.
func TestNodeMatters(t *testing.T) {
	base := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"a": "1"}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.11"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	heartbeat := base.DeepCopy()
	heartbeat.Status.Conditions[0].LastHeartbeatTime = metav1.Now()
	heartbeat.ResourceVersion = "2"
	if nodeMatters(base) != nodeMatters(heartbeat) {
		t.Error("a heartbeat counts as a change")
	}
	for name, change := range map[string]func(*corev1.Node){
		"label":   func(n *corev1.Node) { n.Labels["b"] = "2" },
		"address": func(n *corev1.Node) { n.Status.Addresses[0].Address = "198.51.100.12" },
		"network": func(n *corev1.Node) {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue})
		},
	} {
		n := base.DeepCopy()
		change(n)
		if nodeMatters(base) == nodeMatters(n) {
			t.Errorf("a %s change does not count", name)
		}
	}
}
