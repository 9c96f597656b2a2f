package docscheck

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric is one metric as a registry describes it.
type Metric struct {
	Name string
	// Type is counter, gauge, histogram, summary or untyped; "" when the
	// collector shows it only in what it emits and has emitted nothing.
	Type   string
	Labels []string // constant and variable labels, sorted
}

// Registry is a prometheus.Registerer that remembers what is registered
// through it, so that a binary's components, built as the binary builds
// them, say which metrics the binary exports.
type Registry struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{Registry: prometheus.NewRegistry()} }

// Register registers c and remembers it.
func (r *Registry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

// MustRegister registers cs, panicking as prometheus does on an error.
func (r *Registry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var _ prometheus.Registerer = (*Registry)(nil)

// descRE reads a descriptor's name and variable labels from its String
// form, the only way client_golang shows them.
var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]*)", .*constLabels: \{(.*)\}, variableLabels: \{([^}]*)\}\}$`)

// constLabelRE reads the names of a descriptor's constant labels.
var constLabelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)

// Metrics are the metrics of every collector registered so far, sorted by
// name.
func (r *Registry) Metrics() ([]Metric, error) {
	var out []Metric
	for _, c := range r.collectors {
		ms, err := describe(c)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	slices.SortFunc(out, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func describe(c prometheus.Collector) ([]Metric, error) {
	descs := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(descs); close(descs) }()
	var out []Metric
	for d := range descs {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			return nil, fmt.Errorf("reading descriptor %s", d)
		}
		metric := Metric{Name: m[1], Labels: []string{}}
		for _, c := range constLabelRE.FindAllStringSubmatch(m[2], -1) {
			metric.Labels = append(metric.Labels, c[1])
		}
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "c("), ")"); l != "" {
				metric.Labels = append(metric.Labels, l)
			}
		}
		slices.Sort(metric.Labels)
		out = append(out, metric)
	}
	types, err := typesOf(c)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Type = types[out[i].Name]
	}
	return out, nil
}

// typesOf are the types of c's metrics: from the vector's kind, or from
// what c emits now.
func typesOf(c prometheus.Collector) (map[string]string, error) {
	kind := ""
	switch c.(type) {
	case *prometheus.CounterVec:
		kind = "counter"
	case *prometheus.GaugeVec:
		kind = "gauge"
	case *prometheus.HistogramVec:
		kind = "histogram"
	case *prometheus.SummaryVec:
		kind = "summary"
	}
	out := map[string]string{}
	if kind != "" {
		descs := make(chan *prometheus.Desc, 1)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			if m := descRE.FindStringSubmatch(d.String()); m != nil {
				out[m[1]] = kind
			}
		}
		return out, nil
	}
	metrics := make(chan prometheus.Metric, 16)
	go func() { c.Collect(metrics); close(metrics) }()
	for m := range metrics {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			return nil, fmt.Errorf("reading metric %s: %w", m.Desc(), err)
		}
		name := descRE.FindStringSubmatch(m.Desc().String())
		if name == nil {
			return nil, fmt.Errorf("reading descriptor %s", m.Desc())
		}
		switch {
		case pb.Counter != nil:
			out[name[1]] = "counter"
		case pb.Gauge != nil:
			out[name[1]] = "gauge"
		case pb.Histogram != nil:
			out[name[1]] = "histogram"
		case pb.Summary != nil:
			out[name[1]] = "summary"
		default:
			out[name[1]] = "untyped"
		}
	}
	return out, nil
}
