package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	heraldfake "github.com/heraldlb/herald/internal/client/clientset/versioned/fake"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/plan"
)

type oneMember struct{ name string }

func (m oneMember) Members() []membership.Member {
	return []membership.Member{{Name: m.name, Healthy: true}}
}
func (oneMember) Changed() <-chan struct{}  { return nil }
func (oneMember) SetPeers([]netip.AddrPort) {}
func (oneMember) Leave(time.Duration) error { return nil }

// fakeInformers are caches over fake clients, never started: tests add
// objects to their indexers directly.
func fakeInformers() *Informers {
	return NewInformers(kubefake.NewClientset(), heraldfake.NewSimpleClientset(), "herald-system", false)
}

// TestReportListsAtMostMaxReported: a node announcing more than
// maxReported addresses lists the lowest ones, sorted by address, counts
// the rest, and still counts all of them per protocol.
func TestReportListsAtMostMaxReported(t *testing.T) {
	s := New(Config{NodeName: "n1", Membership: oneMember{"n1"}, Informers: fakeInformers()})
	// 1 500 layer-2 addresses in descending order, and one BGP address
	// that sorts first.
	for i := 1499; i >= 0; i-- {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i % 256)})
		s.last.L2 = append(s.last.L2, plan.L2Announcement{Addr: a, Pool: "p", Services: []string{"ns/s"}})
	}
	s.last.BGP = append(s.last.BGP, plan.BGPAnnouncement{Addr: netip.MustParseAddr("198.18.0.1"), Pool: "b", Policy: &plan.BGPPolicy{}})
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

// TestAnnouncingEventsAreRateLimited: a node that starts announcing 100
// addresses at once records the burst of Events only, and a continuing
// announcement records none, whatever the number of recomputes.
func TestAnnouncingEventsAreRateLimited(t *testing.T) {
	rec := record.NewFakeRecorder(1000)
	s := New(Config{NodeName: "n1", Membership: oneMember{"n1"}, Recorder: rec, Informers: fakeInformers()})
	services := s.inf.kubeFactory.Core().V1().Services().Informer().GetIndexer()
	var d plan.Plan
	for i := range 100 {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}}
		if err := services.Add(svc); err != nil {
			t.Fatal(err)
		}
		d.L2 = append(d.L2, plan.L2Announcement{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Pool: "p", Services: []string{"ns/" + svc.Name}})
	}
	start := time.Now()
	s.apply(context.Background(), d)
	first := len(rec.Events)
	// The limiter refills one a second; the test may take that long.
	if limit := announceEventBurst + int(time.Since(start).Seconds())*announceEventRate; first < announceEventBurst || first > limit {
		t.Errorf("100 new announcements recorded %d Events; want the burst of %d", first, announceEventBurst)
	}
	for range first {
		if e := <-rec.Events; !strings.HasPrefix(e, "Normal Announcing 198.51.100.") {
			t.Errorf("event %q", e)
		}
	}
	s.apply(context.Background(), d)
	if n := len(rec.Events); n != 0 {
		t.Errorf("a recompute without new announcements recorded %d Events", n)
	}
	if got := len(s.announced); got != 100 {
		t.Errorf("%d announcements tracked, want 100", got)
	}
}

// failingL2 is a layer-2 announcer that refuses what err says.
type failingL2 struct{ err error }

func (f *failingL2) Set(context.Context, []plan.L2Announcement) error { return f.err }

// addrErr names the address it failed for, as layer2.AddrError does.
type addrErr struct {
	addr netip.Addr
	msg  string
}

func (e addrErr) Error() string          { return e.msg }
func (e addrErr) FailedAddr() netip.Addr { return e.addr }

func TestAnnounceFailedGoesToTheFailingAddressOnce(t *testing.T) {
	rec := record.NewFakeRecorder(100)
	l2 := &failingL2{}
	s := New(Config{NodeName: "n1", Membership: oneMember{"n1"}, Recorder: rec, L2: l2, Informers: fakeInformers()})
	services := s.inf.kubeFactory.Core().V1().Services().Informer().GetIndexer()
	var d plan.Plan
	for i := range 3 {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}}
		if err := services.Add(svc); err != nil {
			t.Fatal(err)
		}
		d.L2 = append(d.L2, plan.L2Announcement{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Pool: "p", Services: []string{"ns/" + svc.Name}})
	}
	ctx := context.Background()
	s.apply(ctx, d) // the Announcing Events
	for len(rec.Events) > 0 {
		<-rec.Events
	}
	warnings := func() []string {
		var out []string
		for len(rec.Events) > 0 {
			e := <-rec.Events
			if strings.HasPrefix(e, "Warning AnnounceFailed") {
				out = append(out, e)
			}
		}
		return out
	}

	l2.err = errors.Join(addrErr{d.L2[1].Addr, "announcing 198.51.100.1 (ns/s1): no usable interface"})
	s.apply(ctx, d)
	if got := warnings(); len(got) != 1 || !strings.Contains(got[0], "198.51.100.1") {
		t.Errorf("one address refused: Events %q, want one AnnounceFailed for 198.51.100.1", got)
	}
	s.apply(ctx, d)
	if got := warnings(); len(got) != 0 {
		t.Errorf("the same refusal at the next recompute: Events %q, want none", got)
	}
	l2.err = nil
	s.apply(ctx, d)
	l2.err = errors.Join(addrErr{d.L2[1].Addr, "announcing 198.51.100.1 (ns/s1): no usable interface"})
	s.apply(ctx, d)
	if got := warnings(); len(got) != 1 {
		t.Errorf("the refusal again after it cleared: Events %q, want one", got)
	}
	l2.err = errors.New("layer2 announcer not running")
	s.apply(ctx, d)
	if got := warnings(); len(got) != 3 {
		t.Errorf("a refusal that names no address: Events %q, want one per Service (3)", got)
	}
}
