// Package docscheck keeps herald's operator-facing metric references
// honest: docs/metrics.md and the Grafana dashboard in config/grafana.
// Metric names are an interface users build alerts and dashboards on, and
// a reference that lists a metric the binaries no longer export (or misses
// one they do) fails silently until someone is paged by an alert that can
// never fire.
//
// The check runs against what the binaries really register: each command's
// tests build its components as the command does, on a Registry that
// remembers every collector, and compare the metrics those collectors
// describe with the document (Doc.CheckBinary). A collector that shows a
// metric's type only in what it emits (internal/bgp's) has its types
// checked by its own tests, once it emits (Doc.CheckTypes). This
// package's own tests check that every section names an existing binary,
// that the prose names only documented metrics, and that the dashboard's
// queries use only documented metrics and labels.
//
// It is test support: only tests may import it.
package docscheck
