package v1alpha1_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/dynamic"

	"github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/testcluster"
)

// TestSamplesAgainstAPIServer applies the samples that TestSamples checks
// offline to a real kube-apiserver with the generated CRDs installed: good
// samples must be stored with the same defaults, bad ones refused with the
// messages their "# expect:" lines name. It also covers what the offline
// test cannot: validation on update and the status subresource.
func TestSamplesAgainstAPIServer(t *testing.T) {
	crds := loadCRDs(t)
	c := testcluster.ForTest(t, testcluster.Options{CRDDir: crdDir})
	dyn := dynamic.NewForConfigOrDie(c.Config)
	ctx := t.Context()
	resources := map[string]dynamic.NamespaceableResourceInterface{
		"IPPool":  dyn.Resource(v1alpha1.SchemeGroupVersion.WithResource("ippools")),
		"BGPPeer": dyn.Resource(v1alpha1.SchemeGroupVersion.WithResource("bgppeers")),
	}

	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in testdata: %v", err)
	}
	// Defaults that TestDefaults pins, by path under spec, checked here on
	// the samples that leave the fields unset, so that the comparison with
	// the offline defaulting below is not the only check.
	pinned := map[string]map[string]any{
		"ippool-good-minimal": {
			"autoAssign": true,
			"announce":   map[string]any{"layer2": map[string]any{}},
		},
		"ippool-good-edge-values": {
			"announce.bgp.aggregationLength":   int64(32),
			"announce.bgp.aggregationLengthV6": int64(128),
		},
		"bgppeer-good-minimal": {
			"peerPort": int64(179), "holdTime": "90s", "gracefulRestart": false,
		},
	}
	for _, f := range files {
		sample := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(sample, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			obj := &unstructured.Unstructured{Object: decode(t, data)}
			kind := obj.GetKind()
			res, ok := resources[kind]
			if !ok {
				t.Fatalf("no resource for kind %q", kind)
			}
			// Samples of one kind may share a name; the file name is
			// unique and a valid object name.
			obj.SetName(sample)
			got, err := res.Create(ctx, obj, metav1.CreateOptions{})

			if want := expectations(data); len(want) > 0 {
				checkInvalid(t, err, want)
				return
			}
			if err != nil {
				t.Fatalf("creating a good sample: %v", err)
			}
			// The API server's defaults must be the ones the offline
			// defaulting applies (TestSamples validates the same object).
			offline, errs := validate(t, crds[kind], decode(t, data))
			if len(errs) > 0 {
				t.Fatalf("offline validation refuses the sample:\n%s", joinErrs(errs))
			}
			read, err := res.Get(ctx, sample, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if diff := cmp.Diff(got.Object["spec"], read.Object["spec"]); diff != "" {
				t.Errorf("spec read back differs from the one Create returned (-create +get):\n%s", diff)
			}
			if diff := cmp.Diff(offline["spec"], read.Object["spec"]); diff != "" {
				t.Errorf("spec stored by the API server (-offline defaulting +API server):\n%s", diff)
			}
			for path, want := range pinned[sample] {
				v, _, _ := unstructured.NestedFieldNoCopy(read.Object, slices.Concat([]string{"spec"}, strings.Split(path, "."))...)
				if diff := cmp.Diff(want, v); diff != "" {
					t.Errorf("defaulted spec.%s (-want +got):\n%s", path, diff)
				}
			}
		})
	}

	pools := resources["IPPool"]
	newPool := func(t *testing.T, name string) *unstructured.Unstructured {
		t.Helper()
		data, err := os.ReadFile("testdata/ippool-good-minimal.yaml")
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{Object: decode(t, data)}
		obj.SetName(name)
		created, err := pools.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating IPPool %s: %v", name, err)
		}
		return created
	}

	t.Run("update validated", func(t *testing.T) {
		pool := newPool(t, "update-validated")
		before := pool.DeepCopy()
		if err := unstructured.SetNestedStringSlice(pool.Object, []string{"198.51.100.7/24"}, "spec", "addresses"); err != nil {
			t.Fatal(err)
		}
		_, err := pools.Update(ctx, pool, metav1.UpdateOptions{})
		checkInvalid(t, err, []string{
			"spec.addresses[0]: ... CIDR 198.51.100.7/24 has host bits set; did you mean 198.51.100.0/24?",
		})
		read, err := pools.Get(ctx, pool.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before.Object["spec"], read.Object["spec"]); diff != "" {
			t.Errorf("spec changed by a refused update (-before +after):\n%s", diff)
		}
	})

	t.Run("status subresource", func(t *testing.T) {
		pool := newPool(t, "status-subresource")
		wantSpec := pool.Object["spec"]
		status := map[string]any{
			"ipv4":    map[string]any{"allocated": int64(0), "free": "1", "total": "1"},
			"summary": map[string]any{"allocated": "v4:0", "free": "1"},
		}

		// Through /status the status is written and spec changes ignored.
		upd := pool.DeepCopy()
		upd.Object["status"] = status
		if err := unstructured.SetNestedStringSlice(upd.Object, []string{"203.0.113.0/24"}, "spec", "addresses"); err != nil {
			t.Fatal(err)
		}
		if _, err := pools.UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("UpdateStatus: %v", err)
		}
		read, err := pools.Get(ctx, pool.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(status, read.Object["status"]); diff != "" {
			t.Errorf("status after UpdateStatus (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantSpec, read.Object["spec"]); diff != "" {
			t.Errorf("spec changed through /status (-before +after):\n%s", diff)
		}
		if g := read.GetGeneration(); g != pool.GetGeneration() {
			t.Errorf("generation %d after a status update, want %d", g, pool.GetGeneration())
		}

		// And the main resource ignores status.
		upd = read.DeepCopy()
		if err := unstructured.SetNestedField(upd.Object, "5", "status", "summary", "free"); err != nil {
			t.Fatal(err)
		}
		if _, err := pools.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		read, err = pools.Get(ctx, pool.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(status, read.Object["status"]); diff != "" {
			t.Errorf("status changed through the main resource (-want +got):\n%s", diff)
		}
	})
}

// checkInvalid checks that err is an Invalid error with a cause matching
// each of want (see matchesAny) and no cause that none of them matches.
func checkInvalid(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an Invalid error matching %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("got %v (reason %q), want an Invalid error", err, apierrors.ReasonForError(err))
	}
	t.Logf("refused: %v", err)
	errs := causeErrors(t, err)
	// kube-apiserver skips the CEL rules when the schema validation found a
	// blocking error (a missing required field, a wrong type, a value not
	// in an enum, a string or list too long) and says so in one more
	// error. The offline validation runs the rules anyway and has no such
	// error, so the samples cannot name it: it is checked here instead.
	blocking := slices.ContainsFunc(errs, func(e *field.Error) bool {
		switch e.Type {
		case field.ErrorTypeRequired, field.ErrorTypeTypeInvalid, field.ErrorTypeNotSupported,
			field.ErrorTypeTooLong, field.ErrorTypeTooMany:
			return true
		}
		return false
	})
	n := len(errs)
	errs = slices.DeleteFunc(errs, func(e *field.Error) bool { return matchesAny(field.ErrorList{e}, rulesNotChecked) })
	if skipped := len(errs) < n; skipped != blocking {
		t.Errorf("CEL rules blocked by schema errors: %v; error %q present: %v", blocking, rulesNotChecked, skipped)
	}
	for _, w := range want {
		if !matchesAny(errs, w) {
			t.Errorf("want an error matching %q, got:\n%s", w, joinErrs(errs))
		}
	}
	for _, e := range errs {
		if !slices.ContainsFunc(want, func(w string) bool { return matchesAny(field.ErrorList{e}, w) }) {
			t.Errorf("unexpected error: %v", e)
		}
	}
}

// rulesNotChecked is the error kube-apiserver adds in place of the CEL
// rules' errors when it skips them.
const rulesNotChecked = "some validation rules were not checked because the object was invalid"

// causeErrors turns the causes of an API error back into field errors
// whose Error() reads "<field>: <message>" exactly as the API server wrote
// them, so that matchesAny can match them as it matches offline errors.
func causeErrors(t *testing.T, err error) field.ErrorList {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil || len(status.Status().Details.Causes) == 0 {
		t.Fatalf("error without causes: %v", err)
	}
	var errs field.ErrorList
	for _, c := range status.Status().Details.Causes {
		// The server sends each field error's ErrorBody, which starts with
		// the type's text; the rest goes back in as Detail.
		typ := field.ErrorType(c.Type)
		detail, _ := strings.CutPrefix(c.Message, typ.String())
		detail, _ = strings.CutPrefix(detail, ": ")
		e := &field.Error{Type: typ, Field: c.Field, BadValue: field.OmitValueType{}, Detail: detail}
		if got, want := e.Error(), c.Field+": "+c.Message; got != want {
			t.Fatalf("cannot rebuild cause %+v: got %q, want %q", c, got, want)
		}
		errs = append(errs, e)
	}
	return errs
}
