package docscheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Paths relative to this package's directory, where `go test` runs.
var (
	repoRoot       = filepath.Join("..", "..")
	metricsDocPath = filepath.Join(repoRoot, "docs", "metrics.md")
	dashboardPath  = filepath.Join(repoRoot, "config", "grafana", "herald-dashboard.json")
)

// sourceDirs are scanned for metric definitions (SPEC §7: the binaries'
// metrics live in internal/ and are wired up in cmd/).
var sourceDirs = []string{"internal", "cmd"}

const promImport = "github.com/prometheus/client_golang/prometheus"

// targetLabels are the labels Prometheus attaches to every series of a
// scrape target, beside a metric's own labels: job and instance always,
// namespace, pod, container and endpoint from the Prometheus Operator's
// PodMonitor, and node from the relabeling in config/prometheus/monitor.yaml.
// The dashboard may group and filter by them.
var targetLabels = []string{"container", "endpoint", "instance", "job", "namespace", "node", "pod"}

// metric is one metric defined in herald's source.
type metric struct {
	Name string
	// Type is counter, gauge, histogram, summary or untyped; "" when the
	// source does not say (an Opts literal used away from its constructor).
	Type string
	// Labels are the variable label names, sorted; LabelsKnown is false
	// when they are not written where the scanner can read them.
	Labels      []string
	LabelsKnown bool
	Pkg         string // import path of the defining package
	Pos         string // file:line of the definition
}

// TestMetricsDoc fails when docs/metrics.md and the source disagree: a
// metric the binaries define is not documented, or is documented with the
// wrong type, labels or binary; or the document (prose and example queries
// included) names a herald_ metric that does not exist.
func TestMetricsDoc(t *testing.T) {
	metrics, binaries := scanRepo(t)
	text, err := os.ReadFile(metricsDocPath)
	if err != nil {
		t.Fatalf("reading the metrics reference: %v", err)
	}
	doc := parseMetricsDoc(string(text))
	for _, p := range compareDoc(metrics, binaries, doc) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}

// TestDashboard checks that config/grafana/herald-dashboard.json is a
// Grafana dashboard whose panels all use the templated Prometheus data
// source, and whose queries name only metrics and labels that exist.
func TestDashboard(t *testing.T) {
	metrics, _ := scanRepo(t)
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatalf("reading the dashboard: %v", err)
	}
	for _, p := range checkDashboard(data, index(metrics)) {
		t.Errorf("%s: %s", dashboardPath, p)
	}
}

// TestScanner runs the source scanner on a package written for the
// purpose, so a scanner that silently finds nothing cannot make the checks
// above pass vacuously.
func TestScanner(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.26\n")
	write("internal/m/m.go", `package m

import prom "github.com/prometheus/client_golang/prometheus"

const sub = "queue"
const depthName = "depth"

var upDesc = prom.NewDesc(prom.BuildFQName("herald", "bgp", "up"), "h", []string{"peer"}, nil)

func metrics() {
	labels := []string{"kind", "pool"}
	_ = prom.NewHistogramVec(prom.HistogramOpts{Namespace: "herald", Subsystem: sub, Name: "wait_seconds"}, labels)
	_ = prom.NewGauge(prom.GaugeOpts{Name: "herald_" + sub + "_" + depthName})
	opts := prom.CounterOpts{Name: "herald_loose_total"}
	_ = prom.NewCounterVec(opts, []string{"x"})
}

func collect(ch chan<- prom.Metric) {
	ch <- prom.MustNewConstMetric(upDesc, prom.GaugeValue, 1, "a")
}
`)
	write("internal/m/m_test.go", `package m

import "github.com/prometheus/client_golang/prometheus"

var _ = prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_test_only_total"})
`)
	write("cmd/bin/main.go", `package main

import _ "example.com/m/internal/m"

func main() {}
`)
	got, binaries, err := scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	summary := map[string]string{}
	for _, m := range got {
		labels := "?"
		if m.LabelsKnown {
			labels = strings.Join(m.Labels, ",")
		}
		summary[m.Name] = fmt.Sprintf("%s [%s] %s", m.Type, labels, strings.Join(binaries[m.Pkg], ","))
	}
	want := map[string]string{
		"herald_bgp_up":             "gauge [peer] bin",
		"herald_queue_wait_seconds": "histogram [kind,pool] bin",
		"herald_queue_depth":        "gauge [] bin",
		"herald_loose_total":        "counter [?] bin",
	}
	if !maps.Equal(summary, want) {
		t.Errorf("scan found\n%v\nwant\n%v", summary, want)
	}

	// And the comparison reports what it must.
	doc := parseMetricsDoc("# M\n\n### `herald_bgp_up`\n\n| | |\n|---|---|\n| Type | counter |\n| Labels | `peer`, `node` |\n| Exported by | `other` |\n\n" +
		"### `herald_gone_total`\n\n| Type | counter |\n\nAlert: `rate(herald_typo_total[5m])`, every `herald_queue_*`, no `herald_nothing_*`.\n")
	problems := strings.Join(compareDoc(got, binaries, doc), "\n")
	for _, want := range []string{
		"herald_queue_wait_seconds (histogram, defined at", // undocumented
		"herald_bgp_up: documented as counter, the source makes it a gauge",
		"herald_bgp_up: documented labels [node peer], the source has [peer]",
		"herald_bgp_up: documented as exported by [other], linked into [bin]",
		"herald_gone_total: documented, but no such metric",
		"herald_typo_total (line 15): no such metric",
		"herald_nothing_* (line 15): matches no metric",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("compareDoc did not report %q; it reported:\n%s", want, problems)
		}
	}
	if strings.Contains(problems, "herald_queue_*") {
		t.Errorf("compareDoc reported a wildcard that matches metrics:\n%s", problems)
	}
}

// scanRepo scans the repository once per test.
func scanRepo(t *testing.T) ([]metric, map[string][]string) {
	t.Helper()
	metrics, binaries, err := scan(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(metrics) == 0 {
		t.Fatal("found no metric definitions under internal/ and cmd/: the scanner is broken")
	}
	return metrics, binaries
}

func index(ms []metric) map[string]metric {
	out := make(map[string]metric, len(ms))
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

// --- source scanning ---

// scan parses the non-test Go files under root's internal/ and cmd/ and
// returns the metrics they define and, by package import path, the
// binaries (cmd/<name>) that link that package.
func scan(root string) ([]metric, map[string][]string, error) {
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, nil, err
	}
	pkgs := map[string][]string{} // directory -> .go files
	for _, top := range sourceDirs {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			switch {
			case os.IsNotExist(err) && p == filepath.Join(root, top):
				return filepath.SkipDir
			case err != nil:
				return err
			case d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")):
				return filepath.SkipDir
			case !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go"):
				pkgs[filepath.Dir(p)] = append(pkgs[filepath.Dir(p)], p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("walking %s: %w", top, err)
		}
	}

	fset := token.NewFileSet()
	imports := map[string][]string{} // package -> module-internal imports
	var metrics []metric
	for _, dir := range slices.Sorted(maps.Keys(pkgs)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return nil, nil, err
		}
		pkgPath := module + "/" + filepath.ToSlash(rel)
		var files []*ast.File
		for _, p := range pkgs[dir] {
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return nil, nil, fmt.Errorf("parsing %s: %w", p, err)
			}
			files = append(files, f)
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if path == module || strings.HasPrefix(path, module+"/") {
					imports[pkgPath] = append(imports[pkgPath], path)
				}
			}
		}
		found, err := scanPackage(fset, root, pkgPath, files)
		if err != nil {
			return nil, nil, err
		}
		metrics = append(metrics, found...)
	}

	// A binary is a package main directly under cmd/; it links every
	// package it reaches through module-internal imports.
	binaries := map[string][]string{}
	for dir := range pkgs {
		rel, _ := filepath.Rel(root, dir)
		name, ok := strings.CutPrefix(filepath.ToSlash(rel), "cmd/")
		if !ok || strings.Contains(name, "/") {
			continue
		}
		seen := map[string]bool{}
		var visit func(string)
		visit = func(p string) {
			if seen[p] {
				return
			}
			seen[p] = true
			for _, q := range imports[p] {
				visit(q)
			}
		}
		visit(module + "/cmd/" + name)
		for p := range seen {
			binaries[p] = append(binaries[p], name)
		}
	}
	for p := range binaries {
		slices.Sort(binaries[p])
	}

	slices.SortFunc(metrics, func(a, b metric) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(metrics); i++ {
		if metrics[i].Name == metrics[i-1].Name {
			return nil, nil, fmt.Errorf("metric %s is defined twice: %s and %s", metrics[i].Name, metrics[i-1].Pos, metrics[i].Pos)
		}
	}
	return metrics, binaries, nil
}

func modulePath(goMod string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", fmt.Errorf("reading the module path: %w", err)
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("%s has no module line", goMod)
}

var (
	optsTypes = map[string]string{
		"CounterOpts": "counter", "GaugeOpts": "gauge", "HistogramOpts": "histogram",
		"SummaryOpts": "summary", "UntypedOpts": "untyped", "Opts": "",
	}
	// constructors that take an Opts literal first; the group is the type.
	constructorRE = regexp.MustCompile(`^New(Counter|Gauge|Histogram|Summary|Untyped)(Vec|Func)?$`)
	valueTypes    = map[string]string{"CounterValue": "counter", "GaugeValue": "gauge", "UntypedValue": "untyped"}
	constMetricRE = regexp.MustCompile(`^(Must)?NewConst(Metric|Histogram|Summary)(WithCreatedTimestamp)?$`)
)

// scanPackage finds the metrics defined in one package's files.
func scanPackage(fset *token.FileSet, root, pkgPath string, files []*ast.File) ([]metric, error) {
	consts := packageConsts(files)
	var out []metric
	descs := map[string]int{}        // variable or field holding a Desc -> index in out
	descTypes := map[string]string{} // same key -> type from its const-metric use
	var errs []string

	for _, f := range files {
		alias := importName(f, promImport, "prometheus")
		if alias == "" {
			continue
		}
		isProm := func(e ast.Expr, names ...string) (string, bool) {
			sel, ok := e.(*ast.SelectorExpr)
			if !ok {
				return "", false
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok || x.Name != alias {
				return "", false
			}
			return sel.Sel.Name, len(names) == 0 || slices.Contains(names, sel.Sel.Name)
		}
		pos := func(n ast.Node) string {
			p := fset.Position(n.Pos())
			rel, err := filepath.Rel(root, p.Filename)
			if err != nil {
				rel = p.Filename
			}
			return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), p.Line)
		}

		var stack []ast.Node
		ast.Inspect(f, func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			stack = append(stack, n)
			scope := enclosingFunc(stack)
			switch n := n.(type) {
			case *ast.CompositeLit:
				sel, ok := isProm(n.Type)
				typ, isOpts := optsTypes[sel]
				if !ok || !isOpts {
					return true
				}
				var parts [3]string // Namespace, Subsystem, Name
				hasName := false
				for _, e := range n.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					key, _ := kv.Key.(*ast.Ident)
					if key == nil {
						continue
					}
					i := slices.Index([]string{"Namespace", "Subsystem", "Name"}, key.Name)
					if i < 0 {
						continue
					}
					v, ok := evalString(kv.Value, consts, isProm)
					if !ok {
						errs = append(errs, fmt.Sprintf("%s: cannot read the %s of this %s.%s; write it as a string constant so docs/metrics.md can be checked", pos(kv), key.Name, alias, sel))
						return true
					}
					parts[i] = v
					hasName = hasName || i == 2
				}
				if !hasName {
					errs = append(errs, fmt.Sprintf("%s: %s.%s without a Name", pos(n), alias, sel))
					return true
				}
				m := metric{Name: fqName(parts[0], parts[1], parts[2]), Type: typ, Pkg: pkgPath, Pos: pos(n)}
				if len(stack) >= 2 {
					if call, ok := stack[len(stack)-2].(*ast.CallExpr); ok && len(call.Args) > 0 && call.Args[0] == n {
						if name, ok := lastName(call.Fun); ok {
							if g := constructorRE.FindStringSubmatch(name); g != nil {
								if m.Type == "" {
									m.Type = strings.ToLower(g[1])
								}
								if g[2] == "Vec" && len(call.Args) > 1 {
									m.Labels, m.LabelsKnown = evalStrings(call.Args[1], scope, files, consts, isProm)
								} else if g[2] != "Vec" {
									m.LabelsKnown = true
								}
							}
						}
					}
				}
				out = append(out, m)
			case *ast.CallExpr:
				name, ok := isProm(n.Fun)
				if !ok {
					return true
				}
				switch {
				case name == "NewDesc" && len(n.Args) >= 3:
					v, ok := evalString(n.Args[0], consts, isProm)
					if !ok {
						errs = append(errs, fmt.Sprintf("%s: cannot read the name given to %s.NewDesc; write it as a string constant so docs/metrics.md can be checked", pos(n), alias))
						return true
					}
					m := metric{Name: v, Pkg: pkgPath, Pos: pos(n)}
					m.Labels, m.LabelsKnown = evalStrings(n.Args[2], scope, files, consts, isProm)
					if key := assignedTo(stack); key != "" {
						descs[key] = len(out)
					}
					out = append(out, m)
				case constMetricRE.MatchString(name) && len(n.Args) >= 2:
					key, ok := lastName(n.Args[0])
					if !ok {
						return true
					}
					typ := "histogram"
					switch {
					case strings.Contains(name, "Summary"):
						typ = "summary"
					case strings.Contains(name, "Metric"):
						vt, _ := isProm(n.Args[1])
						typ = valueTypes[vt]
					}
					if typ != "" {
						descTypes[key] = typ
					}
				}
			}
			return true
		})
	}
	for key, i := range descs {
		out[i].Type = descTypes[key]
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	for i := range out {
		slices.Sort(out[i].Labels)
	}
	return out, nil
}

// fqName joins namespace, subsystem and name as prometheus.BuildFQName does.
func fqName(ns, sub, name string) string {
	if name == "" {
		return ""
	}
	var parts []string
	for _, p := range []string{ns, sub, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

// importName is the name a file uses for the package at path ("" when it
// does not import it).
func importName(f *ast.File, path, def string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return def
		}
	}
	return ""
}

// packageConsts returns the package-level string constants whose values
// are literals or concatenations of literals and other such constants.
func packageConsts(files []*ast.File) map[string]string {
	exprs := map[string]ast.Expr{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						exprs[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	out := map[string]string{}
	noProm := func(ast.Expr, ...string) (string, bool) { return "", false }
	for changed := true; changed; {
		changed = false
		for name, e := range exprs {
			if _, done := out[name]; done {
				continue
			}
			if v, ok := evalString(e, out, noProm); ok {
				out[name] = v
				changed = true
			}
		}
	}
	return out
}

// evalString evaluates a constant string expression: literals, known
// constants, + and prometheus.BuildFQName.
func evalString(e ast.Expr, consts map[string]string, isProm func(ast.Expr, ...string) (string, bool)) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		v, err := strconv.Unquote(e.Value)
		return v, err == nil
	case *ast.Ident:
		v, ok := consts[e.Name]
		return v, ok
	case *ast.ParenExpr:
		return evalString(e.X, consts, isProm)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok1 := evalString(e.X, consts, isProm)
		y, ok2 := evalString(e.Y, consts, isProm)
		return x + y, ok1 && ok2
	case *ast.CallExpr:
		if _, ok := isProm(e.Fun, "BuildFQName"); !ok || len(e.Args) != 3 {
			return "", false
		}
		var p [3]string
		for i, a := range e.Args {
			v, ok := evalString(a, consts, isProm)
			if !ok {
				return "", false
			}
			p[i] = v
		}
		return fqName(p[0], p[1], p[2]), true
	}
	return "", false
}

// evalStrings evaluates a label list: nil, a []string literal, or a
// variable assigned exactly one such literal in the enclosing function or
// at package level.
func evalStrings(e ast.Expr, scope ast.Node, files []*ast.File, consts map[string]string, isProm func(ast.Expr, ...string) (string, bool)) ([]string, bool) {
	switch e := e.(type) {
	case *ast.CompositeLit:
		out := []string{}
		for _, el := range e.Elts {
			v, ok := evalString(el, consts, isProm)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		return out, true
	case *ast.Ident:
		if e.Name == "nil" {
			return []string{}, true
		}
		var found []ast.Expr
		collect := func(n ast.Node) {
			ast.Inspect(n, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.AssignStmt:
					for i, l := range n.Lhs {
						if id, ok := l.(*ast.Ident); ok && id.Name == e.Name && i < len(n.Rhs) {
							found = append(found, n.Rhs[i])
						}
					}
				case *ast.ValueSpec:
					for i, id := range n.Names {
						if id.Name == e.Name && i < len(n.Values) {
							found = append(found, n.Values[i])
						}
					}
				}
				return true
			})
		}
		if scope != nil {
			collect(scope)
		}
		if len(found) == 0 {
			for _, f := range files {
				for _, d := range f.Decls {
					if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.VAR {
						collect(gd)
					}
				}
			}
		}
		if len(found) != 1 {
			return nil, false
		}
		if _, ok := found[0].(*ast.CompositeLit); !ok {
			return nil, false
		}
		return evalStrings(found[0], nil, nil, consts, isProm)
	}
	return nil, false
}

// enclosingFunc is the innermost function declaration on the stack.
func enclosingFunc(stack []ast.Node) ast.Node {
	for i := len(stack) - 1; i >= 0; i-- {
		if fd, ok := stack[i].(*ast.FuncDecl); ok {
			return fd
		}
	}
	return nil
}

// lastName is the final identifier of x, x.y or x.y.z.
func lastName(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name, true
	case *ast.SelectorExpr:
		return e.Sel.Name, true
	}
	return "", false
}

// assignedTo names the variable or field the call at the top of the stack
// is stored in: `v = call`, `v := call`, `var v = call`, `T{F: call}`.
func assignedTo(stack []ast.Node) string {
	call := stack[len(stack)-1]
	if len(stack) < 2 {
		return ""
	}
	switch p := stack[len(stack)-2].(type) {
	case *ast.ValueSpec:
		for i, v := range p.Values {
			if v == call && i < len(p.Names) {
				return p.Names[i].Name
			}
		}
	case *ast.AssignStmt:
		for i, v := range p.Rhs {
			if v == call && i < len(p.Lhs) {
				name, _ := lastName(p.Lhs[i])
				return name
			}
		}
	case *ast.KeyValueExpr:
		name, _ := lastName(p.Key)
		return name
	}
	return ""
}

// --- docs/metrics.md ---

// docEntry is one metric section of docs/metrics.md:
//
//	### `herald_name`
//	| Type | gauge |
//	| Labels | `a`, `b` |   (or: none)
//	| Exported by | `herald-speaker` (:7473) |
type docEntry struct {
	Line     int
	Type     string
	Labels   []string
	Binaries []string
}

type metricsDoc struct {
	Entries map[string]*docEntry
	// Mentions are every herald_ name in the text (sections, prose and
	// example queries), with the line it is on; a trailing * is a prefix.
	Mentions []mention
}

type mention struct {
	Name string
	Line int
}

var (
	headingRE  = regexp.MustCompile("^###\\s+`([a-zA-Z_:][a-zA-Z0-9_:]*)`")
	rowRE      = regexp.MustCompile(`^\|\s*(Type|Labels|Exported by)\s*\|(.*)\|\s*$`)
	backtickRE = regexp.MustCompile("`([^`]+)`")
	mentionRE  = regexp.MustCompile(`\bherald_[a-zA-Z0-9_]*\*?`)
)

func parseMetricsDoc(text string) metricsDoc {
	doc := metricsDoc{Entries: map[string]*docEntry{}}
	var cur *docEntry
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		for _, m := range mentionRE.FindAllString(line, -1) {
			doc.Mentions = append(doc.Mentions, mention{m, n})
		}
		if strings.HasPrefix(line, "#") {
			cur = nil
			if m := headingRE.FindStringSubmatch(line); m != nil {
				cur = &docEntry{Line: n}
				doc.Entries[m[1]] = cur
			}
			continue
		}
		m := rowRE.FindStringSubmatch(line)
		if cur == nil || m == nil {
			continue
		}
		cell := strings.TrimSpace(m[2])
		switch m[1] {
		case "Type":
			cur.Type = strings.Trim(cell, "` ")
		case "Labels":
			cur.Labels = []string{}
			for _, b := range backtickRE.FindAllStringSubmatch(cell, -1) {
				cur.Labels = append(cur.Labels, b[1])
			}
			slices.Sort(cur.Labels)
		case "Exported by":
			for _, b := range backtickRE.FindAllStringSubmatch(cell, -1) {
				if !strings.HasPrefix(b[1], ":") {
					cur.Binaries = append(cur.Binaries, b[1])
				}
			}
			slices.Sort(cur.Binaries)
		}
	}
	return doc
}

// compareDoc lists every disagreement between the source and the document.
func compareDoc(metrics []metric, binaries map[string][]string, doc metricsDoc) []string {
	var problems []string
	known := index(metrics)
	for _, m := range metrics {
		e, ok := doc.Entries[m.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s (%s, defined at %s) is not documented: add a \"### `%s`\" section", m.Name, m.Type, m.Pos, m.Name))
			continue
		}
		if m.Type != "" && e.Type != m.Type {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented as %s, the source makes it a %s (%s)", e.Line, m.Name, e.Type, m.Type, m.Pos))
		}
		if e.Labels == nil {
			problems = append(problems, fmt.Sprintf("line %d: %s: no \"| Labels |\" row (write none when it has none)", e.Line, m.Name))
		} else if m.LabelsKnown && !slices.Equal(e.Labels, m.Labels) {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented labels %v, the source has %v (%s)", e.Line, m.Name, e.Labels, m.Labels, m.Pos))
		}
		if bins := binaries[m.Pkg]; !slices.Equal(e.Binaries, bins) {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented as exported by %v, linked into %v", e.Line, m.Name, e.Binaries, bins))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(doc.Entries)) {
		if _, ok := known[name]; !ok && strings.HasPrefix(name, "herald_") {
			problems = append(problems, fmt.Sprintf("line %d: %s: documented, but no such metric is defined in internal/ or cmd/", doc.Entries[name].Line, name))
		}
	}
	for _, m := range doc.Mentions {
		if _, isSection := doc.Entries[m.Name]; isSection {
			continue
		}
		if prefix, ok := strings.CutSuffix(m.Name, "*"); ok {
			if !slices.ContainsFunc(metrics, func(x metric) bool { return strings.HasPrefix(x.Name, prefix) }) {
				problems = append(problems, fmt.Sprintf("%s (line %d): matches no metric", m.Name, m.Line))
			}
			continue
		}
		if _, ok := series(m.Name, known); !ok {
			problems = append(problems, fmt.Sprintf("%s (line %d): no such metric", m.Name, m.Line))
		}
	}
	return problems
}

// series resolves a series name to its metric: the name itself, or a
// histogram's or summary's _bucket, _sum or _count series.
func series(name string, known map[string]metric) (metric, bool) {
	if m, ok := known[name]; ok {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if m, ok := known[base]; ok && (m.Type == "histogram" || m.Type == "summary") && (suffix != "_bucket" || m.Type == "histogram") {
			return m, true
		}
	}
	return metric{}, false
}

// --- the Grafana dashboard ---

var (
	selectorRE = regexp.MustCompile(`\b(herald_[a-zA-Z0-9_]+)\s*\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	metricRE   = regexp.MustCompile(`\bherald_[a-zA-Z0-9_]+`)
	labelValRE = regexp.MustCompile(`label_values\(\s*(herald_[a-zA-Z0-9_]+)[^,)]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

const dsUID = "${datasource}"

// checkDashboard validates the dashboard's structure and every query.
func checkDashboard(data []byte, known map[string]metric) []string {
	var problems []string
	var d struct {
		Title         string            `json:"title"`
		UID           string            `json:"uid"`
		SchemaVersion int               `json:"schemaVersion"`
		Panels        []json.RawMessage `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Query      json.RawMessage `json:"query"`
				Datasource json.RawMessage `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return []string{fmt.Sprintf("not valid dashboard JSON: %v", err)}
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		problems = append(problems, "title, uid, schemaVersion and panels must all be set")
	}

	var queries []string // "where: expr"
	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			_ = json.Unmarshal(v.Query, &q)
			if v.Name == "datasource" && q == "prometheus" {
				hasDS = true
			}
		case "query":
			if p := checkDatasource(v.Datasource); p != "" {
				problems = append(problems, fmt.Sprintf("variable %s: %s", v.Name, p))
			}
			var q string
			if json.Unmarshal(v.Query, &q) != nil {
				var obj struct {
					Query string `json:"query"`
				}
				_ = json.Unmarshal(v.Query, &obj)
				q = obj.Query
			}
			queries = append(queries, "variable "+v.Name+": "+q)
		}
	}
	if !hasDS {
		problems = append(problems, `no templating variable {"name": "datasource", "type": "datasource", "query": "prometheus"}`)
	}

	ids := map[int]string{}
	var walk func([]json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, raw := range panels {
			var p struct {
				ID         int               `json:"id"`
				Type       string            `json:"type"`
				Title      string            `json:"title"`
				Datasource json.RawMessage   `json:"datasource"`
				Panels     []json.RawMessage `json:"panels"`
				GridPos    *struct {
					H, W, X, Y int
				} `json:"gridPos"`
				Targets []struct {
					RefID      string          `json:"refId"`
					Expr       string          `json:"expr"`
					Datasource json.RawMessage `json:"datasource"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				problems = append(problems, fmt.Sprintf("panel: %v", err))
				continue
			}
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				problems = append(problems, fmt.Sprintf("%s: id must be unique and non-zero (also used by %q)", where, prev))
			}
			ids[p.ID] = p.Title
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				problems = append(problems, where+": gridPos missing")
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if pr := checkDatasource(p.Datasource); pr != "" {
				problems = append(problems, where+": "+pr)
			}
			if len(p.Targets) == 0 {
				problems = append(problems, where+": no targets")
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" {
					problems = append(problems, where+": a target without expr or refId")
				}
				if len(tg.Datasource) > 0 {
					if pr := checkDatasource(tg.Datasource); pr != "" {
						problems = append(problems, where+" target "+tg.RefID+": "+pr)
					}
				}
				queries = append(queries, where+" target "+tg.RefID+": "+tg.Expr)
			}
		}
	}
	walk(d.Panels)

	for _, q := range queries {
		where, expr, _ := strings.Cut(q, ": ")
		for _, p := range checkPromQL(expr, known) {
			problems = append(problems, where+": "+p)
		}
	}
	return problems
}

func checkDatasource(raw json.RawMessage) string {
	var ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	if json.Unmarshal(raw, &ds) != nil || ds.Type != "prometheus" || ds.UID != dsUID {
		var got bytes.Buffer
		if json.Compact(&got, raw) != nil {
			got.Write(raw)
		}
		return fmt.Sprintf(`datasource must be {"type": "prometheus", "uid": %q}, got %s`, dsUID, got.String())
	}
	return ""
}

// checkPromQL reports herald_ names that are no metric, and label names in
// selectors, groupings and label_values that none of the query's metrics
// (nor the scrape target) has.
func checkPromQL(expr string, known map[string]metric) []string {
	var problems []string
	allowed := map[string]bool{"le": true}
	for _, l := range targetLabels {
		allowed[l] = true
	}
	for _, name := range metricRE.FindAllString(expr, -1) {
		m, ok := series(name, known)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no such metric", name))
			continue
		}
		for _, l := range m.Labels {
			allowed[l] = true
		}
	}
	check := func(label, ctx string) {
		if !allowed[label] {
			problems = append(problems, fmt.Sprintf("label %q (%s): no metric in this query has it", label, ctx))
		}
	}
	for _, s := range selectorRE.FindAllStringSubmatch(expr, -1) {
		m, ok := series(s[1], known)
		if !ok {
			continue
		}
		own := map[string]bool{"le": strings.HasSuffix(s[1], "_bucket")}
		for _, l := range append(slices.Clone(m.Labels), targetLabels...) {
			own[l] = true
		}
		for _, mm := range matcherRE.FindAllStringSubmatch(s[2], -1) {
			if !own[mm[1]] {
				problems = append(problems, fmt.Sprintf("label %q in the selector of %s: the metric has no such label", mm[1], s[1]))
			}
		}
	}
	for _, g := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				check(l, "grouping")
			}
		}
	}
	for _, lv := range labelValRE.FindAllStringSubmatch(expr, -1) {
		check(lv[2], "label_values")
	}
	return problems
}
