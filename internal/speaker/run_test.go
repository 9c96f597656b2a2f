package speaker

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	heraldfake "github.com/heraldlb/herald/internal/client/clientset/versioned/fake"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/membership"
)

// fakeMembership is a memberlist cluster whose members the test sets.
type fakeMembership struct {
	mu      sync.Mutex
	members []membership.Member
	left    bool
	changed chan struct{}
}

func (m *fakeMembership) Members() []membership.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members
}
func (m *fakeMembership) Changed() <-chan struct{}  { return m.changed }
func (m *fakeMembership) SetPeers([]netip.AddrPort) {}
func (m *fakeMembership) Leave(time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.left = true
	return nil
}

func (m *fakeMembership) set(names ...string) {
	m.mu.Lock()
	m.members = nil
	for _, n := range names {
		m.members = append(m.members, membership.Member{Name: n, Healthy: true})
	}
	m.mu.Unlock()
	signal(m.changed)
}

func (m *fakeMembership) hasLeft() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.left
}

func node(name, ip string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
	}}
}

// poll waits for cond: the speaker runs on its own goroutine; what it
// waits for is the fake clock.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestRunWaitsToJoinAndHandsOver steps the speaker's clock through its
// waits: a speaker that knows of other nodes decides nothing until it has
// joined them or JoinWait has passed, and a stopping speaker leaves the
// cluster, keeps announcing for HandoverDelay, then withdraws.
func TestRunWaitsToJoinAndHandsOver(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{
			Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.10"}},
		}},
	}
	kube := kubefake.NewClientset(node("n1", "198.51.100.1"), node("n2", "198.51.100.2"), svc)
	herald := heraldfake.NewSimpleClientset(&heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"},
		Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.0/24"}, Announce: heraldv1.Announce{Layer2: &heraldv1.Layer2Announce{}}}})
	clk := clocktesting.NewFakeClock(time.Now())
	members := &fakeMembership{changed: make(chan struct{}, 1)}
	members.set("n1")
	inf := NewInformers(kube, herald, "herald-system", false)
	l2 := &recordingL2{}
	sp := New(Config{
		NodeName: "n1", MemberlistPort: 7946, Informers: inf, Class: k8s.Class{Name: "herald.dev/lb"},
		Membership: members, L2: l2, Clock: clk, JoinWait: 5 * time.Second, HandoverDelay: 2 * time.Second,
		// The reporter's writes keep their own (real) clock: only the
		// speaker's waits are on clk.
		Reporter: NewReporter(ReporterConfig{NodeName: "n1", Objects: inf, Members: members}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()

	// Alone with a known peer: the join wait holds the first decision,
	// looking at the membership every joinPoll until JoinWait has passed.
	for range 5*time.Second/joinPoll - 1 {
		poll(t, "the join wait", func() bool { return clk.Waiters() == 1 })
		clk.Step(joinPoll)
	}
	poll(t, "the join wait", func() bool { return clk.Waiters() == 1 })
	if _, at := l2.Current(); !at.IsZero() {
		t.Fatal("decided before JoinWait passed")
	}
	clk.Step(joinPoll)
	poll(t, "the decision after JoinWait", func() bool { cur, _ := l2.Current(); return len(cur) == 1 })

	// Graceful stop: leave, keep answering for HandoverDelay, withdraw.
	cancel()
	// After Leave the only timer is the handover's (a recompute pause
	// ends with ctx).
	poll(t, "the handover wait", func() bool { return members.hasLeft() && clk.Waiters() == 1 })
	if cur, _ := l2.Current(); len(cur) != 1 {
		t.Fatal("withdrew before HandoverDelay passed")
	}
	clk.Step(2 * time.Second)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if cur, _ := l2.Current(); len(cur) != 0 {
		t.Errorf("still announcing %v after the handover", cur)
	}
}

// TestRunDecidesOnceJoined: the join ends the wait at its next look.
func TestRunDecidesOnceJoined(t *testing.T) {
	kube := kubefake.NewClientset(node("n1", "198.51.100.1"), node("n2", "198.51.100.2"))
	clk := clocktesting.NewFakeClock(time.Now())
	members := &fakeMembership{changed: make(chan struct{}, 1)}
	members.set("n1")
	inf := NewInformers(kube, heraldfake.NewSimpleClientset(), "herald-system", false)
	l2 := &recordingL2{}
	sp := New(Config{
		NodeName: "n1", MemberlistPort: 7946, Informers: inf, Membership: members, L2: l2, Clock: clk,
		HandoverDelay: time.Second, Reporter: NewReporter(ReporterConfig{NodeName: "n1", Objects: inf, Members: members}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	poll(t, "the join wait", func() bool { return clk.Waiters() == 1 })
	members.set("n1", "n2")
	clk.Step(joinPoll)
	poll(t, "the first decision", func() bool { _, at := l2.Current(); return !at.IsZero() })
	cancel()
	poll(t, "the handover wait", func() bool { return members.hasLeft() && clk.Waiters() == 1 })
	clk.Step(time.Second)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
