package install

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/testcluster"
)

const fieldManager = "herald-install-test"

// TestManifestUpToDate fails when manifests/install.yaml is not what
// config/default renders to (make verify catches this too).
func TestManifestUpToDate(t *testing.T) {
	want, err := Render("../../config/default")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(readInstall(t))); diff != "" {
		t.Errorf("manifests/install.yaml is stale; run `make generate` (-want +got):\n%s", diff)
	}
}

// TestInstall applies install.yaml and the samples to a real API server:
// the CRDs and the Namespace for real (so custom resources validate and
// namespaced objects have somewhere to go), everything else with
// server-side apply in dry-run mode, which runs validation and admission
// but stores nothing. Then it creates the RBAC objects for real and asks
// the API server's authorizer whether each ServiceAccount may do what the
// code needs, and nothing on the forbidden list.
func TestInstall(t *testing.T) {
	c := testcluster.ForTest(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	objs, err := Objects(readInstall(t))
	if err != nil {
		t.Fatal(err)
	}
	var crds, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		} else {
			rest = append(rest, o)
		}
	}
	if len(crds) != 3 {
		t.Errorf("install.yaml has %d CRDs; want 3 (IPPool, BGPPeer, Speaker)", len(crds))
	}
	crdDir := t.TempDir()
	for _, o := range crds {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crdDir, o.GetName()+".yaml"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.InstallCRDs(ctx, crdDir); err != nil {
		t.Fatal(err)
	}

	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	apply := func(t *testing.T, o *unstructured.Unstructured, dryRun bool) {
		t.Helper()
		m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
			return
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() == "" {
				t.Errorf("%s %s is namespaced but has no namespace", o.GetKind(), o.GetName())
				return
			}
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := ri.Apply(ctx, o.GetName(), o, opts); err != nil {
			t.Errorf("applying %s %s/%s (dry run %v): %v", o.GetKind(), o.GetNamespace(), o.GetName(), dryRun, err)
		}
	}

	t.Run("install.yaml", func(t *testing.T) {
		for _, o := range rest {
			if o.GetKind() == "Namespace" {
				apply(t, o, false)
			}
		}
		kinds := map[string]int{}
		for _, o := range rest {
			kinds[o.GetKind()]++
			if o.GetKind() != "Namespace" {
				apply(t, o, true)
			}
		}
		for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding", "Deployment", "DaemonSet"} {
			if kinds[k] == 0 {
				t.Errorf("install.yaml has no %s", k)
			}
		}
		// Nothing in the manifest may carry a memberlist key.
		if kinds["Secret"] != 0 {
			t.Errorf("install.yaml has %d Secrets; the memberlist key must be created per cluster", kinds["Secret"])
		}
	})

	t.Run("samples", func(t *testing.T) {
		b, err := Render("../../config/samples")
		if err != nil {
			t.Fatal(err)
		}
		samples, err := Objects(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(samples) == 0 {
			t.Fatal("config/samples renders to nothing")
		}
		for _, o := range samples {
			apply(t, o, true)
		}
	})

	t.Run("rbac", func(t *testing.T) {
		for _, o := range rest {
			switch o.GetKind() {
			case "ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding":
				apply(t, o, false)
			}
		}
		if t.Failed() {
			return
		}
		kube, err := kubernetes.NewForConfig(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		check := func(a access, want bool) {
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + namespace + ":" + a.sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
				ResourceAttributes: &authzv1.ResourceAttributes{
					Namespace: a.ns, Verb: a.verb, Group: a.group, Name: a.name,
					Resource: resourceOf(a.resource), Subresource: subresourceOf(a.resource),
				},
			}}
			res, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Errorf("asking whether %s may %s %s: %v", a.sa, a.verb, a.describe(), err)
				return
			}
			if res.Status.Allowed != want {
				t.Errorf("API server: %s may %s %s: %v, want %v (%s)", a.sa, a.verb, a.describe(), res.Status.Allowed, want, res.Status.Reason)
			}
		}
		for _, a := range needed {
			check(a, true)
		}
		for _, a := range forbidden {
			check(a, false)
		}
	})
}

// resourceOf and subresourceOf split "services/status".
func resourceOf(r string) string {
	res, _, _ := strings.Cut(r, "/")
	return res
}

func subresourceOf(r string) string {
	_, sub, _ := strings.Cut(r, "/")
	return sub
}
