package docscheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Paths relative to this package's directory, where `go test` runs.
var (
	repoRoot      = filepath.Join("..", "..")
	dashboardPath = filepath.Join(repoRoot, "config", "grafana", "herald-dashboard.json")
)

func readDoc(t *testing.T) *Doc {
	t.Helper()
	d, err := ReadDoc(filepath.Join(repoRoot, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// commands are the binaries the repository builds, the directories under
// cmd/, and the speaker's control-plane mode, whose metrics are its own
// (cmd/herald-speaker/controlplane.go).
func commands(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoRoot, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "cmd", "herald-speaker", "controlplane.go")); err == nil {
		out = append(out, "herald-speaker control-plane")
	}
	return out
}

func TestSections(t *testing.T) {
	d := readDoc(t)
	if len(d.Entries) < 10 {
		t.Fatalf("only %d metric sections found in docs/metrics.md: the parser no longer reads it", len(d.Entries))
	}
	for _, p := range d.CheckSections(commands(t)) {
		t.Errorf("docs/metrics.md: %s", p)
	}
}

func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatalf("reading the dashboard: %v", err)
	}
	for _, p := range readDoc(t).CheckDashboard(data) {
		t.Errorf("%s: %s", dashboardPath, p)
	}
}

// silent is a collector that describes a metric but emits nothing yet.
type silent struct{ d *prometheus.Desc }

func (s silent) Describe(ch chan<- *prometheus.Desc) { ch <- s.d }
func (s silent) Collect(chan<- prometheus.Metric)    {}

// TestRegistry: every kind of collector is read with its name, labels and
// type, so the checks of the commands cannot pass on an empty list.
func TestRegistry(t *testing.T) {
	r := NewRegistry()
	up := prometheus.NewDesc("herald_t_up", "h", []string{"peer"}, nil)
	r.MustRegister(
		prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_t_total", Help: "h"}),
		prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "herald", Subsystem: "t", Name: "depth", Help: "h"}, []string{"pool", "kind"}),
		prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "herald_t_seconds", Help: "h"}, []string{"kind"}),
		silent{up},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_t_func", Help: "h", ConstLabels: prometheus.Labels{"version": "v1, {x}"}}, func() float64 { return 1 }),
	)
	got, err := r.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, m := range got {
		s = append(s, m.Name+" "+m.Type+" "+strings.Join(m.Labels, ","))
	}
	want := []string{
		"herald_t_depth gauge kind,pool",
		"herald_t_func gauge version",
		"herald_t_seconds histogram kind",
		"herald_t_total counter ",
		"herald_t_up  peer",
	}
	if !slices.Equal(s, want) {
		t.Errorf("metrics:\n%s\nwant:\n%s", strings.Join(s, "\n"), strings.Join(want, "\n"))
	}
	d := &Doc{metricsDoc: parseMetricsDoc("### `herald_t_total`\n| Type | gauge |\n| Labels | none |\n| Exported by | `x` |\n")}
	p := d.CheckBinary("x", got)
	if len(p) != 5 || !strings.Contains(p[0], "not documented") || !strings.Contains(strings.Join(p, "\n"), "documented as gauge, x registers a counter") {
		t.Errorf("CheckBinary problems:\n%s", strings.Join(p, "\n"))
	}
}
