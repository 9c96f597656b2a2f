package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/testcluster"
)

// TestBGPPeerProblemsAreEvents: a BGPPeer whose password Secret is missing
// is left out with a Warning Event on it; peers asking for different router
// IDs all get the node's default, each with a Warning naming the conflict;
// session changes are Events on the BGPPeer object itself (with its UID,
// so `kubectl describe bgppeer` lists them). Each problem is reported once,
// not on every recompute.
func TestBGPPeerProblemsAreEvents(t *testing.T) {
	c := testcluster.ForTest(t, testcluster.Options{CRDDir: "../../config/crd/bases"})
	kube := kubernetes.NewForConfigOrDie(c.Config)
	herald := versioned.NewForConfigOrDie(c.Config)
	ctx := context.Background()

	ip := netip.MustParseAddr("127.0.0.21")
	n, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-p"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip.String()}}
	if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "herald-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	peer := func(name, addr, routerID string, secret *heraldv1.SecretKeyRef) *heraldv1.BGPPeer {
		p := &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: heraldv1.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64513, PeerAddress: addr, RouterID: routerID, PasswordSecretRef: secret,
		}}
		p, err := herald.HeraldV1alpha1().BGPPeers().Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := peer("a", "198.51.100.1", "198.51.100.91", nil)
	b := peer("b", "198.51.100.2", "198.51.100.92", nil)
	peer("locked", "198.51.100.3", "", &heraldv1.SecretKeyRef{Name: "bgp-auth", Key: "password"})

	port := freePort(t, []netip.Addr{ip})
	members, err := membership.Start(ctx, membership.Config{NodeName: "node-p", BindAddr: ip, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = members.Shutdown() })
	if err := members.SetHealthy(ctx, true); err != nil {
		t.Fatal(err)
	}
	events := &refRecorder{Events: make(chan string, 100)}
	bgp := &recordingBGP{}
	inf := NewInformers(kube, herald, "herald-system", true)
	rep := NewReporter(ReporterConfig{NodeName: "node-p", Recorder: events, Objects: inf, Herald: herald, Members: members})
	sp := New(Config{
		NodeName: "node-p", MemberlistPort: port, Informers: inf,
		Class: k8s.Class{Name: "herald.dev/lb"}, Membership: members, L2: &recordingL2{}, BGP: bgp,
		Reporter: rep, JoinWait: 10 * time.Millisecond,
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = sp.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	given := func() string {
		rid, names := bgp.get()
		return fmt.Sprint(rid, names)
	}
	waitPeers := func(want string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
			return given() == want, nil
		})
		if err != nil {
			t.Fatalf("peers given to BGP: %s, want %s", given(), want)
		}
	}
	// "locked" is left out; a and b disagree, so the node's default
	// router ID (the zero Addr) is used.
	waitPeers("invalid IP [a b]")

	var got []string
	collect := func(d time.Duration) {
		for end := time.After(d); ; {
			select {
			case e := <-events.Events:
				got = append(got, e)
			case <-end:
				return
			}
		}
	}
	// Several recomputes happen meanwhile (a Service change triggers one).
	for range 3 {
		if _, err := kube.CoreV1().Services("herald-system").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "poke-"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	collect(time.Second)
	conflict := "this node's BGP peers ask for different router IDs, 198.51.100.91 (a) vs 198.51.100.92 (b): the node's default router ID is used for all"
	want := []string{
		"Warning PeerConfigProblem node node-p: password Secret herald-system/bgp-auth has no key \"password\": no session until it does",
		"Warning PeerConfigProblem node node-p: " + conflict,
		"Warning PeerConfigProblem node node-p: " + conflict,
	}
	var texts []string
	for _, e := range got {
		texts = append(texts, e[:strings.Index(e, " on ")])
	}
	slices.Sort(texts)
	slices.Sort(want)
	if !slices.Equal(texts, want) {
		t.Errorf("events:\n%s\nwant exactly:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range got {
		if !strings.Contains(e, " on BGPPeer ") || strings.HasSuffix(e, " uid ") {
			t.Errorf("event not on a BGPPeer with its UID: %s", e)
		}
	}

	// The Secret appears and b drops its router ID: all three are used,
	// with a's router ID.
	if _, err := kube.CoreV1().Secrets("herald-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bgp-auth"}, Data: map[string][]byte{"password": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b.Spec.RouterID = ""
	if _, err := herald.HeraldV1alpha1().BGPPeers().Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPeers("198.51.100.91 [a b locked]")

	got = nil
	rep.SessionChanged("a", true)
	collect(200 * time.Millisecond)
	if len(got) != 1 || !strings.HasPrefix(got[0], "Normal SessionUp BGP session from node node-p established") ||
		!strings.HasSuffix(got[0], " on BGPPeer a uid "+string(a.UID)) {
		t.Errorf("SessionUp event: %v", got)
	}
}

// refRecorder records Events as "TYPE REASON MESSAGE on KIND NAME uid UID",
// from the ObjectReference the speaker passes.
type refRecorder struct{ Events chan string }

func (r *refRecorder) Event(obj runtime.Object, eventType, reason, message string) {
	kind, name, uid := "?", "?", ""
	if ref, ok := obj.(*corev1.ObjectReference); ok {
		kind, name, uid = ref.Kind, ref.Name, string(ref.UID)
	}
	r.Events <- eventType + " " + reason + " " + message + " on " + kind + " " + name + " uid " + uid
}

func (r *refRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	r.Event(obj, eventType, reason, fmt.Sprintf(format, args...))
}

func (r *refRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventType, reason, format string, args ...any) {
	r.Eventf(obj, eventType, reason, format, args...)
}
