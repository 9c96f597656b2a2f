package speaker

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	heraldfake "github.com/heraldlb/herald/internal/client/clientset/versioned/fake"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/plan"
)

// TestRunFromSnapshot: a speaker saves what it decides from on the node;
// one started while no API server answers decides from that snapshot
// after SnapshotWait and announces the addresses the last one saw.
func TestRunFromSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "speaker-n1.json.gz")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{
			Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.10"}},
		}},
	}
	pending := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "pending"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	pool := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"},
		Spec: heraldv1.IPPoolSpec{Addresses: []string{"198.51.100.0/24"}, Announce: heraldv1.Announce{Layer2: &heraldv1.Layer2Announce{}}}}
	run := func(kube kubernetes.Interface, herald versioned.Interface, snap *Snapshot) (*recordingL2, func()) {
		members := &fakeMembership{changed: make(chan struct{}, 1)}
		members.set("n1")
		inf := NewInformers(kube, herald, "herald-system", false)
		l2 := &recordingL2{}
		sp := New(Config{
			NodeName: "n1", MemberlistPort: 7946, Informers: inf, Class: k8s.Class{Name: "herald.dev/lb"},
			Membership: members, L2: l2, JoinWait: 10 * time.Millisecond, HandoverDelay: time.Millisecond,
			Reporter:     NewReporter(ReporterConfig{NodeName: "n1", Objects: inf, Members: members}),
			SnapshotPath: path, SnapshotInterval: 20 * time.Millisecond, Snapshot: snap, SnapshotWait: 100 * time.Millisecond,
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sp.Run(ctx) }()
		return l2, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("speaker stopped with %v", err)
			}
		}
	}

	// With the API: the decision, and a snapshot of what it came from.
	l2, stop := run(kubefake.NewClientset(node("n1", "198.51.100.1"), node("n2", "198.51.100.2"), svc, pending), heraldfake.NewSimpleClientset(pool), nil)
	poll(t, "the announcement", func() bool { cur, _ := l2.Current(); return len(cur) == 1 })
	var snap *Snapshot
	poll(t, "a saved snapshot", func() bool {
		s, err := ReadSnapshot(path)
		snap = s
		return err == nil && len(s.Services) == 1
	})
	stop()
	if len(snap.Nodes) != 2 || len(snap.Pools) != 1 || snap.Services[0].Name != "web" || snap.Saved.IsZero() {
		t.Errorf("snapshot holds %d nodes, %d pools, Services %v, saved %v; want 2, 1, [web] (the pending one has nothing to announce), a time",
			len(snap.Nodes), len(snap.Pools), snap.Services, snap.Saved)
	}

	// No API server: the informers never sync; the snapshot stands in.
	down := &rest.Config{Host: "http://127.0.0.1:1", Timeout: 100 * time.Millisecond}
	kube, herald := kubernetes.NewForConfigOrDie(down), versioned.NewForConfigOrDie(down)
	l2, stop = run(kube, herald, snap)
	start := time.Now()
	poll(t, "the announcement from the snapshot", func() bool {
		cur, _ := l2.Current()
		return len(cur) == 1 && cur[0].Addr.String() == "198.51.100.10"
	})
	t.Logf("announced from the snapshot %v after start", time.Since(start).Round(time.Millisecond))
	stop()
	// It never overwrote the snapshot with what it did not see.
	if s, err := ReadSnapshot(path); err != nil {
		t.Errorf("reading the snapshot after a run without the API: %v", err)
	} else if !s.Saved.Equal(snap.Saved) {
		t.Errorf("the snapshot after a run without the API was saved %v; want the earlier one, %v", s.Saved, snap.Saved)
	}

	if _, err := ReadSnapshot(filepath.Join(t.TempDir(), "none")); err != ErrNoSnapshot {
		t.Errorf("reading a missing snapshot: %v; want ErrNoSnapshot", err)
	}
}

// TestWatchInterfacesOfOwnPools: the node watches the interfaces of the
// layer-2 pools whose nodeSelector matches it, once per change; before it
// knows its own Node, every named interface.
func TestWatchInterfacesOfOwnPools(t *testing.T) {
	var got [][]string
	s := &Speaker{cfg: Config{NodeName: "n1", WatchInterfaces: func(names []string) { got = append(got, names) }}}
	rack := func(r string) labels.Selector { return labels.SelectorFromSet(labels.Set{"rack": r}) }
	pools := []plan.Pool{
		{Name: "a", L2: &plan.L2Policy{Interfaces: []string{"vlan101"}, NodeSelector: rack("1")}},
		{Name: "b", L2: &plan.L2Policy{Interfaces: []string{"vlan102"}, NodeSelector: rack("2")}},
		{Name: "c", L2: &plan.L2Policy{Interfaces: []string{"lan2", "vlan101"}}},
		{Name: "d", BGP: []*plan.BGPPolicy{{}}},
	}
	s.watchInterfaces(plan.Input{Pools: pools})
	s.watchInterfaces(plan.Input{Pools: pools, Nodes: []election.NodeInfo{{Name: "n1", Labels: map[string]string{"rack": "1"}}}})
	s.watchInterfaces(plan.Input{Pools: pools, Nodes: []election.NodeInfo{{Name: "n1", Labels: map[string]string{"rack": "1"}}}})
	want := [][]string{{"lan2", "vlan101", "vlan102"}, {"lan2", "vlan101"}}
	if !cmp.Equal(got, want) {
		t.Errorf("watched %q; want %q", got, want)
	}
}
