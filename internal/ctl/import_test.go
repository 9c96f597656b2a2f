package ctl

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemavalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const crdDir = "../../config/crd/bases"

// TestImportGolden converts every testdata/import/<case>/in.yaml and
// compares the herald YAML with out.yaml and the list of what could not be
// carried over with diagnostics.txt. Every produced object must pass the
// CRD schema and CEL rules as the API server would apply them.
func TestImportGolden(t *testing.T) {
	crds := loadCRDs(t)
	dirs, err := filepath.Glob("testdata/import/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no import cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var out, diags bytes.Buffer
			env := Env{Out: &out, Err: &diags}
			code := Main(context.Background(), env, []string{"import-metallb", "-f", filepath.Join(dir, "in.yaml")})
			if code != 0 {
				t.Fatalf("exit %d: %s", code, diags.String())
			}
			golden(t, filepath.Join(dir, "out.yaml"), out.String())
			golden(t, filepath.Join(dir, "diagnostics.txt"), diags.String())

			for _, doc := range strings.Split(out.String(), "\n---\n")[1:] {
				obj := decode(t, []byte(doc))
				kind, _ := obj["kind"].(string)
				s, ok := crds[kind]
				if !ok {
					t.Fatalf("no CRD for kind %q", kind)
				}
				if errs := validate(t, s, obj); len(errs) > 0 {
					t.Errorf("the API server would refuse %s %v:\n%s", kind, obj["metadata"], errs.ToAggregate())
				}
			}
		})
	}
}

func TestImportStdinAndFormats(t *testing.T) {
	in, err := os.ReadFile("testdata/import/l2-simple/in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		format string
		want   string
	}{
		{"json", `"kind": "List"`},
		{"table", "KIND    NAME        FROM\nIPPool  first-pool  IPAddressPool metallb-system/first-pool, L2Advertisement metallb-system/example\n"},
		{"yaml", "kind: IPPool"},
	} {
		var out, errb bytes.Buffer
		env := Env{In: bytes.NewReader(in), Out: &out, Err: &errb}
		if code := Main(context.Background(), env, []string{"import-metallb", "-f", "-", "-o", tc.format}); code != 0 {
			t.Fatalf("-o %s: exit %d: %s", tc.format, code, errb.String())
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("-o %s: output lacks %q:\n%s", tc.format, tc.want, out.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "-o", "wide"}, `invalid -o "wide": want table, yaml or json`},
		{[]string{"--bogus", "status"}, "flag provided but not defined: -bogus"},
		{[]string{"pools", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--log-level", "loud", "pools"}, `invalid --log-level "loud"`},
		{[]string{"status", "extra"}, `unexpected argument "extra"`},
		{nil, "Commands:"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), Env{Out: &out, Err: &errb}, tc.args)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: stderr lacks %q:\n%s", tc.args, tc.want, errb.String())
		}
	}
}

func TestUnreachableClusterFailsFast(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	const cfg = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var out, errb bytes.Buffer
	code := Main(context.Background(), Env{Out: &out, Err: &errb}, []string{"--kubeconfig", kc, "pools"})
	if code != 1 || !strings.Contains(errb.String(), "listing IPPools") {
		t.Errorf("exit %d, stderr:\n%s", code, errb.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to report an unreachable cluster", d)
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update): %v", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, d)
	}
}

// The helpers below do what the API server does with a new custom object,
// as internal/apis/herald/v1alpha1's validation tests do: default it, then
// check the OpenAPI schema, list types and CEL rules.

type crdSchema struct {
	internal   *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
}

func loadCRDs(t *testing.T) map[string]crdSchema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("finding CRDs in %s: %v", crdDir, err)
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
		s, err := structuralschema.NewStructural(crd.Spec.Validation.OpenAPIV3Schema)
		if err != nil {
			t.Fatalf("%s: structural schema: %v", f, err)
		}
		crds[crd.Spec.Names.Kind] = crdSchema{internal: crd.Spec.Validation.OpenAPIV3Schema, structural: s}
	}
	return crds
}

func validate(t *testing.T, s crdSchema, obj map[string]any) field.ErrorList {
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
	return append(errs, celErrs...)
}

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
