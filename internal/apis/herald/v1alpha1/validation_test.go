package v1alpha1_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/crdcheck"

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

type crdSchema = crdcheck.Schema

func loadCRDs(t *testing.T) map[string]crdSchema {
	t.Helper()
	crds, err := crdcheck.Load(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	return crds
}

// validate defaults obj in place and returns it with the API server's errors.
func validate(t *testing.T, s crdSchema, obj map[string]any) (map[string]any, field.ErrorList) {
	t.Helper()
	errs, err := s.Validate(obj)
	if err != nil {
		t.Fatal(err)
	}
	return obj, errs
}

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	obj, err := crdcheck.Decode(data)
	if err != nil {
		t.Fatal(err)
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
