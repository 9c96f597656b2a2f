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
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/heraldlb/herald/internal/crdcheck"
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

type crdSchema = crdcheck.Schema

func loadCRDs(t *testing.T) map[string]crdSchema {
	t.Helper()
	crds, err := crdcheck.Load(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	return crds
}

func validate(t *testing.T, s crdSchema, obj map[string]any) field.ErrorList {
	t.Helper()
	errs, err := s.Validate(obj)
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	obj, err := crdcheck.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}
