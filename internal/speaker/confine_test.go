package speaker

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/install"
	"github.com/heraldlb/herald/internal/testcluster"
)

// installForSpeakers creates, for real, what manifests/install.yaml says
// about who may do what: the namespace, the ServiceAccounts, the roles
// and bindings, and the admission policy confining each speaker.
func installForSpeakers(ctx context.Context, t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	raw, err := os.ReadFile("../../manifests/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Objects(raw)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(c.Config)))
	kinds := []string{"Namespace", "ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
	seen := map[string]bool{}
	for _, kind := range kinds { // in this order: namespaces first
		for _, o := range objs {
			if o.GetKind() != kind {
				continue
			}
			seen[kind] = true
			m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
			if err != nil {
				t.Fatal(err)
			}
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
			}
			if _, err := ri.Create(ctx, o, metav1.CreateOptions{}); err != nil {
				t.Fatalf("creating %s %s: %v", kind, o.GetName(), err)
			}
		}
	}
	for _, kind := range kinds {
		if !seen[kind] {
			t.Fatalf("manifests/install.yaml has no %s", kind)
		}
	}
}

// speakerOn creates a Node and a speaker Pod bound to it, as the
// DaemonSet and the scheduler would, and returns the Node and a client
// holding a token bound to that Pod: what the kubelet projects into the
// speaker's container. The API server adds the Pod's node to such a
// token.
func speakerOn(ctx context.Context, t *testing.T, c *testcluster.Cluster, kube kubernetes.Interface, node string) (*corev1.Node, versioned.Interface) {
	t.Helper()
	n, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n, speakerPodOn(ctx, t, c, kube, "herald-system", node)
}

// speakerPodOn creates a speaker Pod of namespace ns's herald-speaker
// ServiceAccount on node, and returns a client holding a token bound to
// it.
func speakerPodOn(ctx context.Context, t *testing.T, c *testcluster.Cluster, kube kubernetes.Interface, ns, node string) versioned.Interface {
	t.Helper()
	pod, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "herald-speaker-" + node},
		Spec: corev1.PodSpec{
			NodeName: node, ServiceAccountName: "herald-speaker",
			Containers: []corev1.Container{{Name: "speaker", Image: "ghcr.io/heraldlb/herald-speaker"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return clientWithToken(ctx, t, c, kube, ns, &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}, node)
}

// clientWithToken is a herald client authenticating as namespace ns's
// herald-speaker ServiceAccount with a token bound to ref (nil: bound to
// nothing), after checking that the API server sees the node claim
// wantNode ("" for none).
func clientWithToken(ctx context.Context, t *testing.T, c *testcluster.Cluster, kube kubernetes.Interface, ns string, ref *authnv1.BoundObjectReference, wantNode string) versioned.Interface {
	t.Helper()
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "herald-speaker",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{BoundObjectRef: ref}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token: %v", err)
	}
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = tr.Status.Token
	who, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := who.Status.UserInfo; u.Username != "system:serviceaccount:"+ns+":herald-speaker" ||
		strings.Join(u.Extra["authentication.kubernetes.io/node-name"], ",") != wantNode {
		t.Fatalf("the API server sees the token as %s with node %q; want herald-speaker on %q", u.Username, u.Extra["authentication.kubernetes.io/node-name"], wantNode)
	}
	return versioned.NewForConfigOrDie(cfg)
}

// TestSpeakerConfinedToItsNode: with the RBAC and admission policy of
// manifests/install.yaml, a speaker's credentials (a token bound to its
// Pod, as the kubelet projects it) write its own node's Speaker object and
// are refused another node's, by the API server, with the policy's
// message; credentials without a node are refused every Speaker. The
// Speaker object the speaker creates is owned by its Node, so the garbage
// collector deletes it with the Node, and only it.
func TestSpeakerConfinedToItsNode(t *testing.T) {
	c := testcluster.ForTest(t, testcluster.Options{CRDDir: "../../config/crd/bases", ControllerManager: true})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(c.Config)
	admin := versioned.NewForConfigOrDie(c.Config)
	installForSpeakers(ctx, t, c)
	nodeA, asA := speakerOn(ctx, t, c, kube, "node-a")
	nodeB, asB := speakerOn(ctx, t, c, kube, "node-b")
	reporter := func(node *corev1.Node, client versioned.Interface) *Reporter {
		return NewReporter(ReporterConfig{NodeName: node.Name, NodeUID: node.UID, Objects: fakeInformers(), Herald: client, Members: oneMember{node.Name}})
	}
	const refusedB = "the herald-speaker on node 'node-a' may write only the Speaker of its own node, not 'node-b'"

	// The API server starts enforcing a new policy within a second or so;
	// a dry run shows when, without writing anything.
	probe := &heraldv1.Speaker{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := asA.HeraldV1alpha1().Speakers().Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), refusedB), nil
	}); err != nil {
		t.Fatalf("the admission policy never refused node-a's speaker node-b's Speaker: %v", err)
	}

	t.Run("own node", func(t *testing.T) {
		if err := reporter(nodeA, asA).WriteFinal(ctx); err != nil {
			t.Fatalf("node-a's speaker writing its own Speaker: %v", err)
		}
		sp, err := admin.HeraldV1alpha1().Speakers().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: "node-a", UID: nodeA.UID}
		if len(sp.OwnerReferences) != 1 || sp.OwnerReferences[0] != want {
			t.Errorf("Speaker node-a is owned by %+v; want only %+v", sp.OwnerReferences, want)
		}
		if sp.Status.Updated.IsZero() {
			t.Error("Speaker node-a has no status")
		}
	})

	t.Run("another node", func(t *testing.T) {
		err := reporter(nodeB, asA).WriteFinal(ctx)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), refusedB) {
			t.Errorf("node-a's speaker creating node-b's Speaker: %v; want refused with %q", err, refusedB)
		}
		if _, err := admin.HeraldV1alpha1().Speakers().Get(ctx, "node-b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Speaker node-b after the refused create: %v; want none", err)
		}
		// node-b's own speaker creates it; node-a's still may not rewrite it.
		if err := reporter(nodeB, asB).WriteFinal(ctx); err != nil {
			t.Fatalf("node-b's speaker writing its own Speaker: %v", err)
		}
		err = reporter(nodeB, asA).WriteFinal(ctx)
		if err == nil || !strings.Contains(err.Error(), refusedB) {
			t.Errorf("node-a's speaker updating node-b's Speaker status: %v; want refused with %q", err, refusedB)
		}
	})

	// An overlay that installs herald in another namespace rewrites the
	// bindings; the policy must confine that namespace's speakers too.
	t.Run("another namespace", func(t *testing.T) {
		const ns = "lb-system"
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "herald-speaker"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "herald-speaker-" + ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "herald-speaker"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "herald-speaker", Namespace: ns}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		moved := speakerPodOn(ctx, t, c, kube, ns, "node-a")
		if err := reporter(nodeA, moved).WriteFinal(ctx); err != nil {
			t.Fatalf("the %s speaker on node-a writing its own Speaker: %v", ns, err)
		}
		err := reporter(nodeB, moved).WriteFinal(ctx)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), refusedB) {
			t.Errorf("the %s speaker on node-a updating node-b's Speaker: %v; want refused with %q", ns, err, refusedB)
		}
	})

	t.Run("no node claim", func(t *testing.T) {
		unbound := clientWithToken(ctx, t, c, kube, "herald-system", nil, "")
		err := reporter(nodeA, unbound).WriteFinal(ctx)
		if want := "herald-speaker credentials carry no node"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a token bound to no Pod updating Speaker node-a: %v; want refused with %q", err, want)
		}
	})

	t.Run("node deleted", func(t *testing.T) {
		if err := kube.CoreV1().Nodes().Delete(ctx, "node-a", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The garbage collector acts once its graph of owners has synced,
		// which takes up to half a minute after kube-controller-manager
		// starts.
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := admin.HeraldV1alpha1().Speakers().Get(ctx, "node-a", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}); err != nil {
			t.Fatalf("Speaker node-a still exists 90 s after its Node was deleted: %v", err)
		}
		list, err := admin.HeraldV1alpha1().Speakers().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range list.Items {
			names = append(names, s.Name)
		}
		if !slices.Equal(names, []string{"node-b"}) {
			t.Errorf("Speakers after deleting node-a: %v; want [node-b]", names)
		}
	})
}
