package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/crdcheck"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const crdDir = "../../config/crd/bases"

// importModes are the two ways every import case runs: as given, and with
// --allow-lossy, whose golden files are under lossy/.
var importModes = []struct {
	dir  string
	args []string
}{{"", nil}, {"lossy", []string{"--allow-lossy"}}}

// runImport runs import-metallb on a case's in.yaml with extra args.
func runImport(dir string, extra ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	args := append([]string{"import-metallb", "-f", filepath.Join(dir, "in.yaml")}, extra...)
	code = Main(context.Background(), Env{Out: &out, Err: &errb}, args)
	return out.String(), errb.String(), code
}

// TestImportGolden converts every testdata/import/<case>/in.yaml, as given
// and with --allow-lossy, and compares stdout with out.yaml, stderr (the
// report) with stderr.txt and the exit status with exit-code.txt, those
// of --allow-lossy being under lossy/. Every produced object must pass the
// CRD schema and CEL rules as the API server would apply them
// (TestImportDryRun asks a real one).
func TestImportGolden(t *testing.T) {
	crds := loadCRDs(t)
	for _, dir := range importCases(t) {
		for _, mode := range importModes {
			t.Run(filepath.Join(filepath.Base(dir), mode.dir), func(t *testing.T) {
				out, stderr, code := runImport(dir, mode.args...)
				gdir := filepath.Join(dir, mode.dir)
				if *update {
					if err := os.MkdirAll(gdir, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				golden(t, filepath.Join(gdir, "out.yaml"), out)
				golden(t, filepath.Join(gdir, "stderr.txt"), stderr)
				golden(t, filepath.Join(gdir, "exit-code.txt"), strconv.Itoa(code)+"\n")
				if code != exitOK && code != exitError {
					t.Errorf("exit %d, want 0 or 1", code)
				}
				if (code == exitOK) != !strings.Contains(stderr, "\nrefused: ") {
					t.Errorf("exit %d, and stderr does%s name a refusal:\n%s", code, map[bool]string{true: "", false: " not"}[strings.Contains(stderr, "\nrefused: ")], stderr)
				}
				if mode.dir == "" && strings.Contains(stderr, "\nlossy: ") {
					t.Errorf("a loss taken without --allow-lossy:\n%s", stderr)
				}

				for _, obj := range yamlObjects(t, []byte(out)) {
					kind, _ := obj["kind"].(string)
					s, ok := crds[kind]
					if !ok {
						t.Fatalf("no CRD for kind %q: the output must hold herald objects only", kind)
					}
					if errs := validate(t, s, obj); len(errs) > 0 {
						t.Errorf("the API server would refuse %s %v:\n%s", kind, obj["metadata"], errs.ToAggregate())
					}
				}
			})
		}
	}
}

// TestImportLossyChangesOnlyRefused: --allow-lossy adds objects, it never
// changes one that converts exactly without it.
func TestImportLossyChangesOnlyRefused(t *testing.T) {
	for _, dir := range importCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			exact, _, _ := runImport(dir)
			lossy, _, _ := runImport(dir, "--allow-lossy")
			byName := map[string]map[string]any{}
			for _, o := range yamlObjects(t, []byte(lossy)) {
				byName[objectKey(o)] = o
			}
			for _, o := range yamlObjects(t, []byte(exact)) {
				if d := cmp.Diff(o, byName[objectKey(o)]); d != "" {
					t.Errorf("%s differs with --allow-lossy (-without +with):\n%s", objectKey(o), d)
				}
			}
		})
	}
}

func objectKey(o map[string]any) string {
	meta, _ := o["metadata"].(map[string]any)
	return fmt.Sprintf("%v/%v", o["kind"], meta["name"])
}

// TestImportNothingSilent: every object of every case's input is named
// either in stdout (an IPPool's or BGPPeer's "# from" comment, a Service's
// kubectl annotate command) or on stderr, in both modes. Services without
// MetalLB annotations are the exception: there is nothing in them to
// convert.
func TestImportNothingSilent(t *testing.T) {
	for _, dir := range importCases(t) {
		for _, mode := range importModes {
			t.Run(filepath.Join(filepath.Base(dir), mode.dir), func(t *testing.T) {
				out, stderr, _ := runImport(dir, mode.args...)
				var from []string
				for _, l := range strings.Split(out, "\n") {
					if f, ok := strings.CutPrefix(l, "# from "); ok {
						from = append(from, strings.Split(f, ", ")...)
					}
				}
				data, err := os.ReadFile(filepath.Join(dir, "in.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range inputObjects(t, data) {
					ref := o.ref()
					if o.Kind == "Service" && o.APIVersion == "v1" {
						if !hasMetalLBAnnotation(o.Metadata.Annotations) {
							continue
						}
						cmd := annotateCommand(o.Metadata.Namespace, o.Metadata.Name, nil) + " "
						if strings.Contains(out, cmd) || mentions(stderr, ref) {
							continue
						}
					} else if slices.Contains(from, ref) || mentions(stderr, ref) {
						continue
					}
					t.Errorf("%s is neither in the output nor on stderr", ref)
				}
			})
		}
	}
}

// mentions reports whether text names ref as a whole (not as the start of
// a longer name).
func mentions(text, ref string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], ref)
		if j < 0 {
			return false
		}
		end := i + j + len(ref)
		if end == len(text) || !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789-.", rune(text[end])) {
			return true
		}
		i = end
	}
}

// inputObjects are the objects of a YAML stream, Lists expanded.
func inputObjects(t *testing.T, data []byte) []mlbObject {
	t.Helper()
	var objs []mlbObject
	var add func(j []byte)
	add = func(j []byte) {
		var head struct {
			mlbObject `json:",inline"`
			Items     []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(j, &head); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(head.Kind, "List") && head.Items != nil {
			for _, it := range head.Items {
				add(it)
			}
			return
		}
		objs = append(objs, head.mlbObject)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		if len(j) > 0 && string(j) != "null" {
			add(j)
		}
	}
}

func importCases(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("testdata/import/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no import cases: %v", err)
	}
	return dirs
}

// yamlObjects splits a YAML stream into its objects as kubectl apply -f
// does, skipping the documents that hold only comments.
func yamlObjects(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []map[string]any
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading the YAML stream: %v", err)
		}
		if obj := decode(t, doc); obj != nil {
			objs = append(objs, obj)
		}
	}
}

func convertFile(t *testing.T, path string) converted {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var in metallbSet
	if err := in.read(f); err != nil {
		t.Fatal(err)
	}
	return convert(&in, convertOptions{})
}

// annotateLines returns the lines of s that hold a kubectl annotate
// command, as the usage text says to extract them.
func annotateLines(s string) []string {
	var cmds []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, annotatePrefix) {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

// TestImportAppliesNoService checks, for every import case, what makes the
// output safe for kubectl apply: the yaml and json stdout hold herald
// objects only, never a Service (applying a partial one removes, from a
// Service last applied with kubectl apply, the fields it leaves out), and
// the Services' kubectl annotate commands are printed once, as comments at
// the end of the yaml output and on stderr with -o json, the same in both.
func TestImportAppliesNoService(t *testing.T) {
	herald := map[string]bool{"IPPool": true, "BGPPeer": true}
	for _, dir := range importCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			run := func(format string) (string, string) {
				var out, errb bytes.Buffer
				args := []string{"import-metallb", "-f", filepath.Join(dir, "in.yaml"), "-o", format}
				if code := Main(context.Background(), Env{Out: &out, Err: &errb}, args); code != exitOK && code != exitError {
					t.Fatalf("-o %s: exit %d: %s", format, code, errb.String())
				}
				return out.String(), errb.String()
			}
			yamlOut, yamlErr := run("yaml")
			jsonOut, jsonErr := run("json")

			var list struct {
				APIVersion, Kind string
				Items            []map[string]any
			}
			if err := json.Unmarshal([]byte(jsonOut), &list); err != nil {
				t.Fatalf("-o json: stdout is not one JSON document: %v", err)
			}
			if list.APIVersion != "v1" || list.Kind != "List" {
				t.Errorf("-o json: %s %s, want a v1 List", list.APIVersion, list.Kind)
			}
			yamlObjs := yamlObjects(t, []byte(yamlOut))
			for format, objs := range map[string][]map[string]any{"yaml": yamlObjs, "json": list.Items} {
				for _, o := range objs {
					if kind, _ := o["kind"].(string); !herald[kind] {
						t.Errorf("-o %s: a %s object in stdout: %v", format, kind, o["metadata"])
					}
				}
			}
			if len(yamlObjs) != len(list.Items) {
				t.Errorf("%d objects in yaml, %d in json", len(yamlObjs), len(list.Items))
			}

			cmds := annotateLines(yamlOut)
			if d := cmp.Diff(cmds, annotateLines(jsonErr)); d != "" {
				t.Errorf("kubectl annotate commands differ between -o yaml stdout and -o json stderr (-yaml +json):\n%s", d)
			}
			if want := len(convertFile(t, filepath.Join(dir, "in.yaml")).Services); len(cmds) != want {
				t.Errorf("%d kubectl annotate commands, want one for each of the %d Services to annotate", len(cmds), want)
			}
			for name, s := range map[string]string{"-o yaml stderr": yamlErr, "-o json stdout": jsonOut} {
				if strings.Contains(s, "kubectl annotate") {
					t.Errorf("%s names kubectl annotate:\n%s", name, s)
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

// TestImportServiceFormats checks where each output format puts the
// Services: never as objects in the yaml or json meant for kubectl apply,
// but as kubectl annotate commands at the end of the yaml output, or on
// stderr before the diagnostics with -o json; -o table lists them.
func TestImportServiceFormats(t *testing.T) {
	const (
		header  = "# Service annotations: run these (they add herald's annotations; MetalLB's\n# stay until you remove them):\n"
		command = "# kubectl annotate --namespace shop service web herald.dev/ips=198.51.100.10,2001:db8:100::10 herald.dev/pool=public\n"
		diag    = "Service shop/two-v4 metallb.universe.tf/loadBalancerIPs: more than one IPv4 address"
	)
	type stream struct {
		want []string // in this order
		not  []string
	}
	for _, tc := range []struct {
		format      string
		out, stderr stream
	}{
		{"json",
			stream{want: []string{`"kind": "IPPool"`, `"kind": "List"`}, not: []string{`"kind": "Service"`, "kubectl annotate"}},
			stream{want: []string{header, command, "# import-metallb: 6 note(s):\n", diag}}},
		{"yaml",
			stream{want: []string{"kind: IPPool", "\n\n" + header, command}, not: []string{"kind: Service"}},
			stream{want: []string{diag}, not: []string{"kubectl annotate"}}},
		{"table",
			stream{want: []string{"IPPool   public", "Service  shop/web       metallb.io/loadBalancerIPs, metallb.io/address-pool\n"}, not: []string{"kubectl annotate"}},
			stream{want: []string{diag}, not: []string{"kubectl annotate"}}},
	} {
		var out, errb bytes.Buffer
		args := []string{"import-metallb", "-f", "testdata/import/service-annotations/in.yaml", "-o", tc.format}
		if code := Main(context.Background(), Env{Out: &out, Err: &errb}, args); code != 0 {
			t.Fatalf("-o %s: exit %d: %s", tc.format, code, errb.String())
		}
		check := func(name, got string, s stream) {
			rest := got
			for _, w := range s.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("-o %s: %s lacks %q after what precedes it here:\n%s", tc.format, name, w, got)
					break
				}
				rest = rest[i+len(w):]
			}
			for _, n := range s.not {
				if strings.Contains(got, n) {
					t.Errorf("-o %s: %s has %q:\n%s", tc.format, name, n, got)
				}
			}
		}
		check("stdout", out.String(), tc.out)
		check("stderr", errb.String(), tc.stderr)
		if tc.format == "yaml" && !strings.HasSuffix(out.String(), command) {
			t.Errorf("-o yaml: stdout does not end with the last Service's command:\n%s", out.String())
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

// TestHelpGoesToStdout: help asked for is output (heraldctl --help | less);
// help after a mistake stays on stderr (TestUsageErrors).
func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"status", "--help"}, {"rotate-key", "-h"}} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), Env{Out: &out, Err: &errb}, args); code != 0 {
			t.Errorf("%q: exit %d, want 0", args, code)
		}
		if !strings.Contains(out.String(), "-") || errb.Len() != 0 {
			t.Errorf("%q: stdout %q, stderr %q; want the help on stdout only", args, out.String(), errb.String())
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

// TestImportHold: --hold writes hold: true into every IPPool and changes
// nothing else.
func TestImportHold(t *testing.T) {
	in, err := os.ReadFile("testdata/import/list-and-multi-l2/in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		env := Env{In: bytes.NewReader(in), Out: &out, Err: &errb}
		Main(context.Background(), env, append([]string{"import-metallb", "-f", "-", "--allow-lossy", "-o", "yaml"}, args...))
		return out.String()
	}
	plain, held := run(), run("--hold")
	pools := strings.Count(plain, "kind: IPPool")
	if pools == 0 {
		t.Fatal("the input converts to no IPPool: the test shows nothing")
	}
	if n := strings.Count(held, "  hold: true\n"); n != pools {
		t.Errorf("--hold wrote hold: true %d times for %d IPPools:\n%s", n, pools, held)
	}
	if got := strings.ReplaceAll(held, "  hold: true\n", ""); got != plain {
		t.Errorf("--hold changed more than hold:\nwithout:\n%s\nwith (hold lines removed):\n%s", plain, got)
	}
}
