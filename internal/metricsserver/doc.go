// Package metricsserver is the HTTP server of herald's long-running
// commands: /metrics from their Prometheus registry (which NewRegistry
// starts with the Go and process collectors and herald_build_info),
// /healthz, /readyz and, with --profiling, Go's /debug/pprof/.
//
// It is for cmd/ only.
package metricsserver
