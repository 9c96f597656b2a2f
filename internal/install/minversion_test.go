package install

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/heraldlb/herald/internal/testcluster"
)

const (
	crdBases = "../../config/crd/bases"
	// apiTestdata holds good and bad objects for every validation rule;
	// the API types' own tests check them on the current release.
	apiTestdata = "../apis/herald/v1alpha1/testdata"
)

// TestCRDsOnMinimumKubernetes installs the CRDs on the kube-apiserver of
// the oldest release docs/install.md names (the first that both allows
// the CEL IP and CIDR functions in new rules and bounds the cost of
// comparing two CIDRs), and proves that it judges objects exactly as the
// current release does: the samples of
// config/samples and every good object of the API types' testdata are
// stored with the same defaults on both, every bad one is refused on both
// with the same causes, and those causes carry the messages the object's
// "# expect:" lines name. It fails, never skips, when that binary has not
// been built (hack/k8sbin-min.sh, run by `make test`).
func TestCRDsOnMinimumKubernetes(t *testing.T) {
	apiserver, err := testcluster.MinimumAPIServer()
	if err != nil {
		t.Fatalf("*** NOT RUN: %v ***", err)
	}
	// Start fails if a CRD is refused, with the API server's reason.
	oldest := testcluster.ForTest(t, testcluster.Options{APIServer: apiserver, CRDDir: crdBases})
	current := testcluster.ForTest(t, testcluster.Options{CRDDir: crdBases})

	for want, c := range map[string]*testcluster.Cluster{
		testcluster.MinimumKubernetesVersion: oldest,
		testcluster.KubernetesVersion:        current,
	} {
		info, err := discovery.NewDiscoveryClientForConfigOrDie(c.Config).ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if info.GitVersion != want {
			t.Fatalf("API server at %s is %s, want %s", c.APIServerURL, info.GitVersion, want)
		}
	}

	// The admission policy confining the speakers uses CEL optionals and
	// the user's extra; both releases must accept it (creating a policy
	// compiles its expressions). That it refuses what it should is
	// internal/speaker's TestSpeakerConfinedToItsNode, on the current
	// release: it needs kube-controller-manager, which cannot run beside
	// the oldest API server here.
	t.Run("speaker admission policy", func(t *testing.T) {
		objs, err := Objects(readInstall(t))
		if err != nil {
			t.Fatal(err)
		}
		gvr := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1"}
		for version, c := range map[string]*testcluster.Cluster{"oldest": oldest, "current": current} {
			dyn := dynamic.NewForConfigOrDie(c.Config)
			n := 0
			for _, o := range objs {
				switch o.GetKind() {
				case "ValidatingAdmissionPolicy":
					gvr.Resource = "validatingadmissionpolicies"
				case "ValidatingAdmissionPolicyBinding":
					gvr.Resource = "validatingadmissionpolicybindings"
				default:
					continue
				}
				n++
				if _, err := dyn.Resource(gvr).Create(t.Context(), o.DeepCopy(), metav1.CreateOptions{}); err != nil {
					t.Errorf("%s: creating %s %s: %v", version, o.GetKind(), o.GetName(), err)
				}
			}
			if n != 2 {
				t.Errorf("install.yaml has %d admission policy objects; want the policy and its binding", n)
			}
		}
	})

	objects := minVersionObjects(t)
	var accepted, refused int
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			got := map[string]outcome{}
			for version, c := range map[string]*testcluster.Cluster{"oldest": oldest, "current": current} {
				got[version] = create(t, c, o.obj.DeepCopy())
			}
			if diff := cmp.Diff(got["current"], got["oldest"], cmpCauses); diff != "" {
				t.Errorf("%s and %s judge the object differently (-%s +%s):\n%s",
					testcluster.KubernetesVersion, testcluster.MinimumKubernetesVersion,
					testcluster.KubernetesVersion, testcluster.MinimumKubernetesVersion, diff)
			}
			res := got["oldest"]
			switch {
			case len(o.expect) == 0 && res.Spec == nil:
				t.Errorf("refused by %s: %s", testcluster.MinimumKubernetesVersion, strings.Join(res.Causes, "; "))
			case len(o.expect) == 0:
				accepted++
			case res.Spec != nil:
				t.Errorf("accepted by %s; want it refused with %q", testcluster.MinimumKubernetesVersion, o.expect)
			default:
				refused++
				for _, w := range o.expect {
					if !slices.ContainsFunc(res.Causes, func(c string) bool { return containsInOrder(c, w) }) {
						t.Errorf("no cause matches %q; causes:\n  %s", w, strings.Join(res.Causes, "\n  "))
					}
				}
			}
		})
	}
	// A testdata directory that lost its bad (or good) objects would make
	// the comparison above prove little.
	if accepted < 5 || refused < 10 {
		t.Errorf("%d objects accepted and %d refused; want at least 5 and 10", accepted, refused)
	}
}

// cmpCauses compares causes without the value an "Invalid value" error
// quotes. The errors of CEL rules differ there between releases: before
// 1.35 they quote the schema type ("string", "object") in place of the
// value; since then the value itself, or nothing for rules on objects.
var cmpCauses = cmp.Transformer("withoutValues", func(causes []string) []string {
	out := make([]string, len(causes))
	for i, c := range causes {
		// Older releases print a duplicate list entry with its Go type.
		c = strings.Replace(c, "Duplicate value: map[string]interface {}{", "Duplicate value: {", 1)
		out[i] = quotedValue.ReplaceAllString(c, "${1}")
	}
	return out
})

// quotedValue matches the value of `FIELD: Invalid value: VALUE: DETAIL`
// when it is a quoted string, a number or a JSON literal.
var quotedValue = regexp.MustCompile(`^([^ ]*: Invalid value: )(?:"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|null|true|false): `)

// outcome is what an API server made of one create: the stored spec, or
// the causes of the refusal as "field: message".
type outcome struct {
	Spec   any
	Causes []string
}

func create(t *testing.T, c *testcluster.Cluster, obj *unstructured.Unstructured) outcome {
	t.Helper()
	resource, ok := map[string]string{"IPPool": "ippools", "BGPPeer": "bgppeers"}[obj.GetKind()]
	if !ok {
		t.Fatalf("%s: no resource for kind %q", obj.GetName(), obj.GetKind())
	}
	gvr := obj.GroupVersionKind().GroupVersion().WithResource(resource)
	created, err := dynamic.NewForConfigOrDie(c.Config).Resource(gvr).Create(t.Context(), obj, metav1.CreateOptions{})
	if err == nil {
		return outcome{Spec: created.Object["spec"]}
	}
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		t.Fatalf("creating %s %s: %v (want success or an Invalid error)", obj.GetKind(), obj.GetName(), err)
	}
	var causes []string
	for _, cause := range status.Status().Details.Causes {
		causes = append(causes, cause.Field+": "+cause.Message)
	}
	if len(causes) == 0 {
		t.Fatalf("creating %s %s: refused without causes: %v", obj.GetKind(), obj.GetName(), err)
	}
	slices.Sort(causes)
	return outcome{Causes: causes}
}

type minVersionObject struct {
	name   string
	obj    *unstructured.Unstructured
	expect []string
}

// minVersionObjects returns the samples of config/samples (all good) and
// the objects of the API types' testdata with their "# expect:" lines, each
// under a name unique across both.
func minVersionObjects(t *testing.T) []minVersionObject {
	t.Helper()
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
	var objs []minVersionObject
	for _, o := range samples {
		name := "sample-" + strings.ToLower(o.GetKind()) + "-" + o.GetName()
		o.SetName(name)
		objs = append(objs, minVersionObject{name: name, obj: o})
	}

	files, err := filepath.Glob(filepath.Join(apiTestdata, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no objects in %s: %v", apiTestdata, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := Objects(data)
		if err != nil || len(decoded) != 1 {
			t.Fatalf("%s: want one object, got %d: %v", f, len(decoded), err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		decoded[0].SetName(name)
		objs = append(objs, minVersionObject{name: name, obj: decoded[0], expect: expectLines(data)})
	}
	return objs
}

// expectLines reads a testdata object's "# expect: <text>" lines; the
// text's " ... "-separated fragments appear in one cause, in order.
func expectLines(data []byte) []string {
	var want []string
	for line := range bytes.Lines(data) {
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# expect:")); ok {
			want = append(want, string(bytes.TrimSpace(rest)))
		}
	}
	return want
}

func containsInOrder(s, want string) bool {
	for frag := range strings.SplitSeq(want, " ... ") {
		var found bool
		if _, s, found = strings.Cut(s, frag); !found {
			return false
		}
	}
	return true
}

// TestDocsNameMinimumKubernetes keeps the requirement the operator reads
// in step with the release the test above runs.
func TestDocsNameMinimumKubernetes(t *testing.T) {
	minor := strings.Join(strings.SplitN(strings.TrimPrefix(testcluster.MinimumKubernetesVersion, "v"), ".", 3)[:2], ".")
	want := "Kubernetes " + minor + " or newer"
	for _, file := range []string{"../../docs/install.md", "../../README.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s does not say %q (the oldest release TestCRDsOnMinimumKubernetes installs on is %s)",
				file, want, testcluster.MinimumKubernetesVersion)
		}
	}
}
