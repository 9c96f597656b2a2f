// Package cmdutil holds what every herald binary does the same way before
// its real work starts: the common flags (--kubeconfig, --log-level), the
// JSON slog logger with klog bridged into it, the REST config lookup, and
// the HTTP server for /metrics, /healthz and /readyz.
//
// It is for cmd/ only; internal packages take their logger, clients and
// registry as arguments and must not import it.
package cmdutil
