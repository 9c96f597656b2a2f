package speaker

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/bgpplan"
	heraldfake "github.com/heraldlb/herald/internal/client/clientset/versioned/fake"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/plan"
)

// oneMember is a membership of one healthy member.
type oneMember struct{ name string }

func (m oneMember) Members() []membership.Member {
	return []membership.Member{{Name: m.name, Healthy: true}}
}

// fakeInformers are caches over fake clients, never started: tests add
// objects to their indexers directly.
func fakeInformers() *Informers {
	return NewInformers(kubefake.NewClientset(), heraldfake.NewSimpleClientset(), "herald-system", false)
}

// newTestReporter is a Reporter of node n1 over fakeInformers, recording
// Events into rec (nil: dropped), writing no Speaker object.
func newTestReporter(rec record.EventRecorder) *Reporter {
	return NewReporter(ReporterConfig{NodeName: "n1", Recorder: rec, Objects: fakeInformers(), Members: oneMember{"n1"}})
}

// addServices puts n Services ns/s0.. into the reporter's cache and returns
// a plan announcing one address for each over layer 2.
func addServices(t *testing.T, r *Reporter, n int) plan.Plan {
	t.Helper()
	services := r.cfg.Objects.(*Informers).kubeFactory.Core().V1().Services().Informer().GetIndexer()
	var p plan.Plan
	for i := range n {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}}
		if err := services.Add(svc); err != nil {
			t.Fatal(err)
		}
		p.L2 = append(p.L2, plan.L2Announcement{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Pool: "p", Services: []string{"ns/" + svc.Name}})
	}
	return p
}

// TestReportListsAtMostMaxReported: a node announcing more than
// maxReported addresses lists the lowest ones, sorted by address, counts
// the rest, and still counts all of them per protocol.
func TestReportListsAtMostMaxReported(t *testing.T) {
	r := newTestReporter(nil)
	// 1 500 layer-2 addresses in descending order, and one BGP address
	// that sorts first.
	var p plan.Plan
	for i := 1499; i >= 0; i-- {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i % 256)})
		p.L2 = append(p.L2, plan.L2Announcement{Addr: a, Pool: "p", Services: []string{"ns/s"}})
	}
	p.BGP = append(p.BGP, plan.BGPAnnouncement{Addr: netip.MustParseAddr("198.18.0.1"), Pool: "b", Policies: []*plan.BGPPolicy{{}}})
	r.Applied(p, Outcome{})
	st := r.status()
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
	clk := clocktesting.NewFakeClock(time.Now())
	r := NewReporter(ReporterConfig{NodeName: "n1", Recorder: rec, Objects: fakeInformers(), Members: oneMember{"n1"}, Clock: clk})
	d := addServices(t, r, 100)
	r.Applied(d, Outcome{})
	if n := len(rec.Events); n != announceEventBurst {
		t.Errorf("100 new announcements recorded %d Events; want the burst of %d", n, announceEventBurst)
	}
	for len(rec.Events) > 0 {
		if e := <-rec.Events; !strings.HasPrefix(e, "Normal Announcing 198.51.100.") {
			t.Errorf("event %q", e)
		}
	}
	r.Applied(d, Outcome{})
	if n := len(rec.Events); n != 0 {
		t.Errorf("a recompute without new announcements recorded %d Events", n)
	}
	if got := len(r.announced); got != 100 {
		t.Errorf("%d announcements tracked, want 100", got)
	}
	// Three seconds later, three new announcements: one Event each.
	clk.Step(3 * time.Second)
	more := addServices(t, r, 103)
	r.Applied(more, Outcome{})
	if n := len(rec.Events); n != 3*announceEventRate {
		t.Errorf("3 new announcements after 3 s recorded %d Events, want %d", n, 3*announceEventRate)
	}
}

// addrErr names the address it failed for, as layer2.AddrError does.
type addrErr struct {
	addr netip.Addr
	msg  string
}

func (e addrErr) Error() string          { return e.msg }
func (e addrErr) FailedAddr() netip.Addr { return e.addr }

func TestAnnounceFailedGoesToTheFailingAddressOnce(t *testing.T) {
	rec := record.NewFakeRecorder(100)
	r := newTestReporter(rec)
	d := addServices(t, r, 3)
	r.Applied(d, Outcome{}) // the Announcing Events
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

	refused := errors.Join(addrErr{d.L2[1].Addr, "announcing 198.51.100.1 (ns/s1): no usable interface"})
	r.Applied(d, Outcome{L2: refused})
	if got := warnings(); len(got) != 1 || !strings.Contains(got[0], "198.51.100.1") {
		t.Errorf("one address refused: Events %q, want one AnnounceFailed for 198.51.100.1", got)
	}
	r.Applied(d, Outcome{L2: refused})
	if got := warnings(); len(got) != 0 {
		t.Errorf("the same refusal at the next recompute: Events %q, want none", got)
	}
	r.Applied(d, Outcome{})
	r.Applied(d, Outcome{L2: refused})
	if got := warnings(); len(got) != 1 {
		t.Errorf("the refusal again after it cleared: Events %q, want one", got)
	}
	r.Applied(d, Outcome{L2: errors.New("layer2 announcer not running")})
	if got := warnings(); len(got) != 3 {
		t.Errorf("a refusal that names no address: Events %q, want one per Service (3)", got)
	}
}

// TestPeerProblemsAndSessions: a BGPPeer problem is one Event on the
// BGPPeer (with its UID) while it lasts, again when it comes back; session
// changes are Events and show in the status, listed for the plan's peers.
func TestPeerProblemsAndSessions(t *testing.T) {
	events := &refRecorder{Events: make(chan string, 10)}
	inf := fakeInformers()
	peers := inf.heraldFactory.Herald().V1alpha1().BGPPeers().Informer().GetIndexer()
	inf.live.peers = inf.heraldFactory.Herald().V1alpha1().BGPPeers().Lister()
	if err := peers.Add(&heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "uid-a"}}); err != nil {
		t.Fatal(err)
	}
	r := NewReporter(ReporterConfig{NodeName: "n1", Recorder: events, Objects: inf, Members: oneMember{"n1"}})
	drain := func() (out []string) {
		for len(events.Events) > 0 {
			out = append(out, <-events.Events)
		}
		return out
	}
	bad := plan.Plan{BGPPeers: []bgpplan.Peer{{Name: "b"}}, Problems: []plan.Problem{{Peer: "a", Message: "routerID \"x\" is not an IPv4 address"}}}
	r.Applied(bad, Outcome{})
	r.Applied(bad, Outcome{})
	want := `Warning PeerConfigProblem node n1: routerID "x" is not an IPv4 address on BGPPeer a uid uid-a`
	if got := drain(); len(got) != 1 || got[0] != want {
		t.Errorf("events %q, want once %q", got, want)
	}
	r.Applied(plan.Plan{}, Outcome{})
	r.Applied(bad, Outcome{})
	if got := drain(); len(got) != 1 {
		t.Errorf("the problem coming back: events %q, want one", got)
	}

	r.SessionChanged("b", true)
	if got := drain(); len(got) != 1 || !strings.HasPrefix(got[0], "Normal SessionUp BGP session from node n1 established on BGPPeer b") {
		t.Errorf("session up: events %q", got)
	}
	if got := r.status().BGPSessions; len(got) != 1 || got[0].Peer != "b" || !got[0].Up {
		t.Errorf("status sessions %+v, want b up", got)
	}
	r.SessionChanged("b", false)
	if got := r.status().BGPSessions; len(got) != 1 || got[0].Up || got[0].Reason != "" {
		t.Errorf("status sessions %+v, want b down, no reason known", got)
	}
	// The announcer's reason shows while the session is down, never
	// while it is up.
	r.cfg.SessionReasons = func() map[string]string { return map[string]string{"b": "no IPv6 link-local neighbour on eth1 yet"} }
	if got := r.status().BGPSessions; len(got) != 1 || got[0].Reason != "no IPv6 link-local neighbour on eth1 yet" {
		t.Errorf("status sessions %+v, want b down with the announcer's reason", got)
	}
	r.SessionChanged("b", true)
	if got := r.status().BGPSessions; len(got) != 1 || got[0].Reason != "" {
		t.Errorf("status sessions %+v, want b up without a reason", got)
	}
	r.SessionChanged("b", false)
	r.cfg.SessionReasons = nil
	drain()

	r.PeerRefused("b", "router 198.51.100.1 is in AS 64501, an external peer")
	if got := drain(); len(got) != 1 || !strings.HasPrefix(got[0], "Warning PeerConfigProblem node n1: router 198.51.100.1 is in AS 64501, an external peer on BGPPeer b") {
		t.Errorf("refused router: events %q", got)
	}
}

// TestConflictGoesToTheServicesOfTheAddress: another host answering for an
// announced address is a Warning on the Services using it, and only those.
func TestConflictGoesToTheServicesOfTheAddress(t *testing.T) {
	rec := record.NewFakeRecorder(10)
	r := newTestReporter(rec)
	d := addServices(t, r, 3)
	r.Applied(d, Outcome{})
	for len(rec.Events) > 0 {
		<-rec.Events
	}
	r.Conflict(d.L2[2].Addr, "eth0", net.HardwareAddr{2, 0, 0, 0, 0, 9})
	if n := len(rec.Events); n != 1 {
		t.Fatalf("%d Events, want 1", n)
	}
	if e := <-rec.Events; !strings.HasPrefix(e, "Warning AddressConflict 198.51.100.2 is owned by node n1 but 02:00:00:00:00:09 also answers for it on eth0") {
		t.Errorf("event %q", e)
	}
	r.Conflict(netip.MustParseAddr("198.51.100.99"), "eth0", net.HardwareAddr{2, 0, 0, 0, 0, 9})
	if n := len(rec.Events); n != 0 {
		t.Errorf("a conflict on an address not announced recorded %d Events", n)
	}
}

type fixedKeyring membership.Keyring

func (k fixedKeyring) Keyring() membership.Keyring { return membership.Keyring(k) }

// TestStatusReportsKeyFingerprints: the Speaker status names the
// memberlist keys by fingerprint only, and none without encryption.
func TestStatusReportsKeyFingerprints(t *testing.T) {
	r := NewReporter(ReporterConfig{NodeName: "n1", Objects: fakeInformers(), Members: oneMember{"n1"},
		Keys: fixedKeyring{Primary: "bbbbbbbbbbbbbbbb", Keys: []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"}}})
	st := r.status()
	if st.MemberlistPrimaryKey != "bbbbbbbbbbbbbbbb" || !slices.Equal(st.MemberlistKeys, []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"}) {
		t.Errorf("status keys = %q, primary %q", st.MemberlistKeys, st.MemberlistPrimaryKey)
	}
	if st := newTestReporter(nil).status(); st.MemberlistKeys != nil || st.MemberlistPrimaryKey != "" {
		t.Errorf("without encryption the status reports keys %q, primary %q", st.MemberlistKeys, st.MemberlistPrimaryKey)
	}
}

// fixedMembers is a membership that says what it is given.
type fixedMembers []membership.Member

func (m fixedMembers) Members() []membership.Member { return m }

// TestStatusReportsInterfacesDown: the Speaker status lists the
// interfaces this node published as unusable, and "*" when it had more
// than it could publish.
func TestStatusReportsInterfacesDown(t *testing.T) {
	for _, tc := range []struct {
		down membership.Interfaces
		want []string
	}{
		{membership.Interfaces{}, nil},
		{membership.Interfaces{Down: []string{"lan2", "vlan20"}}, []string{"lan2", "vlan20"}},
		{membership.Interfaces{Unlisted: true}, []string{"*"}},
	} {
		members := fixedMembers{{Name: "n0", Healthy: true, Interfaces: membership.Interfaces{Down: []string{"other"}}}, {Name: "n1", Healthy: true, Interfaces: tc.down}}
		r := NewReporter(ReporterConfig{NodeName: "n1", Objects: fakeInformers(), Members: members})
		if got := r.status().InterfacesDown; !slices.Equal(got, tc.want) {
			t.Errorf("with %+v published, status.interfacesDown = %q; want %q", tc.down, got, tc.want)
		}
	}
}
