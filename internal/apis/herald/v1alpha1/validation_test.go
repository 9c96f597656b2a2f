package v1alpha1_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemavalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
)

// These tests run the generated CRDs through the API server's own code: the
// CRD validation (CEL compilation and the estimated cost budget the API
// server enforces on create), then, for every sample in testdata, defaulting,
// OpenAPI schema validation, list-type checks and the CEL rules. They catch a
// rule that does not compile, costs too much, or accepts or refuses the wrong
// object without an API server. The same samples are meant to be applied to a
// real API server by the integration tests.

const crdDir = "../../../../config/crd/bases"

// crdSchema is one generated CRD, ready to validate objects of its kind.
type crdSchema struct {
	internal   *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
}

func loadCRDs(t *testing.T) map[string]crdSchema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("finding CRDs in %s: %v (run hack/update-codegen.sh)", crdDir, err)
	}
	crds := map[string]crdSchema{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v1crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &v1crd); err != nil {
			t.Fatalf("decoding %s: %v", f, err)
		}
		var crd apiextensions.CustomResourceDefinition
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &crd, nil); err != nil {
			t.Fatalf("converting %s: %v", f, err)
		}
		if len(crd.Spec.Versions) != 1 || crd.Spec.Validation == nil {
			t.Fatalf("%s: want one version with a schema", f)
		}
		// The API server records the stored version on create.
		crd.Status.StoredVersions = []string{crd.Spec.Versions[0].Name}
		if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
			t.Errorf("the API server would refuse %s:\n%s", filepath.Base(f), joinErrs(errs))
		}
		// The internal version holds a schema shared by all versions at the
		// top level.
		internal := crd.Spec.Validation.OpenAPIV3Schema
		s, err := structuralschema.NewStructural(internal)
		if err != nil {
			t.Fatalf("%s: structural schema: %v", f, err)
		}
		crds[crd.Spec.Names.Kind] = crdSchema{internal: internal, structural: s}
	}
	return crds
}

// validate does what the API server does with a new object: default it,
// then validate schema, list types and CEL rules. It returns the defaulted
// object.
func validate(t *testing.T, s crdSchema, obj map[string]any) (map[string]any, field.ErrorList) {
	t.Helper()
	defaulting.Default(obj, s.structural)
	validator, _, err := schemavalidation.NewSchemaValidator(s.internal)
	if err != nil {
		t.Fatalf("schema validator: %v", err)
	}
	errs := schemavalidation.ValidateCustomResource(nil, obj, validator)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	celErrs, _ := cel.NewValidator(s.structural, true, celconfig.PerCallLimit).
		Validate(context.Background(), nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	errs = append(errs, celErrs...)
	return obj, errs
}

// decode reads YAML the way the API server reads JSON: whole numbers become
// int64, as the CEL validator expects.
func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("converting YAML: %v", err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(j, &obj); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return obj
}

func joinErrs(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Error() + "\n")
	}
	return b.String()
}

// matchesAny reports whether one of errs contains every " ... "-separated
// fragment of want, in order.
func matchesAny(errs field.ErrorList, want string) bool {
	for _, e := range errs {
		rest, ok := e.Error(), true
		for frag := range strings.SplitSeq(want, " ... ") {
			var found bool
			if _, rest, found = strings.Cut(rest, frag); !found {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// expectations reads the "# expect: <text>" lines of a sample: each text
// must match one of the errors the object causes (see matchesAny).
func expectations(data []byte) []string {
	var want []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# expect:")); ok {
			want = append(want, string(bytes.TrimSpace(rest)))
		}
	}
	return want
}

func TestCRDsAcceptedByAPIServer(t *testing.T) {
	crds := loadCRDs(t)
	for _, kind := range []string{"IPPool", "BGPPeer"} {
		if _, ok := crds[kind]; !ok {
			t.Errorf("no CRD for %s in %s", kind, crdDir)
		}
	}
}

func TestSamples(t *testing.T) {
	crds := loadCRDs(t)
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in testdata: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			obj := decode(t, data)
			kind, _ := obj["kind"].(string)
			s, ok := crds[kind]
			if !ok {
				t.Fatalf("no CRD for kind %q", kind)
			}
			_, errs := validate(t, s, obj)
			want := expectations(data)
			good := strings.Contains(name, "-good-")
			switch {
			case good && len(want) > 0:
				t.Fatal("a good sample must not carry # expect: lines")
			case !good && len(want) == 0:
				t.Fatal("a bad sample needs at least one # expect: line naming the rule it trips")
			case good && len(errs) > 0:
				t.Fatalf("want no errors, got:\n%s", joinErrs(errs))
			case !good && len(errs) == 0:
				t.Fatalf("want errors containing %q, got none", want)
			}
			if len(errs) > 0 {
				t.Logf("errors:\n%s", joinErrs(errs))
			}
			for _, w := range want {
				if !matchesAny(errs, w) {
					t.Errorf("want an error matching %q, got:\n%s", w, joinErrs(errs))
				}
			}
			// A bad sample trips only the rules it names, so that it keeps
			// testing them when another rule changes.
			for _, e := range errs {
				if !slices.ContainsFunc(want, func(w string) bool { return matchesAny(field.ErrorList{e}, w) }) {
					t.Errorf("unexpected error: %v", e)
				}
			}
			if good {
				// The Go types must read every field the sample sets.
				var err error
				switch kind {
				case "IPPool":
					err = yaml.UnmarshalStrict(data, &v1alpha1.IPPool{})
				case "BGPPeer":
					err = yaml.UnmarshalStrict(data, &v1alpha1.BGPPeer{})
				}
				if err != nil {
					t.Errorf("decoding into the Go type: %v", err)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	crds := loadCRDs(t)
	tests := []struct {
		name string
		kind string
		in   string
		want string
	}{{
		name: "pool without announce gets layer2",
		kind: "IPPool",
		in: `{apiVersion: herald.dev/v1alpha1, kind: IPPool, metadata: {name: p},
		      spec: {addresses: [198.51.100.0/28]}}`,
		want: `{apiVersion: herald.dev/v1alpha1, kind: IPPool, metadata: {name: p},
		        spec: {addresses: [198.51.100.0/28], autoAssign: true, announce: {layer2: {}}}}`,
	}, {
		name: "bgp aggregation lengths",
		kind: "IPPool",
		in: `{apiVersion: herald.dev/v1alpha1, kind: IPPool, metadata: {name: p},
		      spec: {addresses: [198.51.100.0/28], autoAssign: false, announce: {bgp: {}}}}`,
		want: `{apiVersion: herald.dev/v1alpha1, kind: IPPool, metadata: {name: p},
		        spec: {addresses: [198.51.100.0/28], autoAssign: false,
		               announce: {bgp: {aggregationLength: 32, aggregationLengthV6: 128}}}}`,
	}, {
		name: "peer port, hold time, graceful restart",
		kind: "BGPPeer",
		in: `{apiVersion: herald.dev/v1alpha1, kind: BGPPeer, metadata: {name: r},
		      spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1}}`,
		want: `{apiVersion: herald.dev/v1alpha1, kind: BGPPeer, metadata: {name: r},
		        spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1,
		               peerPort: 179, holdTime: 90s, gracefulRestart: false}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := validate(t, crds[tt.kind], decode(t, []byte(tt.in)))
			if len(errs) > 0 {
				t.Fatalf("unexpected errors:\n%s", joinErrs(errs))
			}
			if diff := cmp.Diff(decode(t, []byte(tt.want)), got); diff != "" {
				t.Errorf("defaulted object (-want +got):\n%s", diff)
			}
		})
	}
}
