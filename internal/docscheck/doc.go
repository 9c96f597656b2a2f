// Package docscheck holds the tests that keep herald's operator-facing
// metric references honest: docs/metrics.md and the Grafana dashboard in
// config/grafana. Metric names are an interface users build alerts and
// dashboards on, and a reference that lists a metric the binaries no longer
// export (or misses one they do) fails silently until someone is paged by
// an alert that can never fire.
//
// The tests read the source rather than a running binary: they parse every
// non-test Go file under internal/ and cmd/ with go/parser, collect the
// metric names given to prometheus.*Opts literals (Namespace, Subsystem and
// Name joined the way client_golang joins them) and to prometheus.NewDesc,
// and compare them, with their types, labels and the binaries that link
// them, against the document and the dashboard's PromQL. Nothing has to
// start, so the check runs in `make test` in well under a second.
//
// The package has no non-test code and nothing may import it. Its tests use
// only the standard library, so they can never pull a dependency into the
// module graph that the binaries do not already need.
package docscheck
