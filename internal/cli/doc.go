// Package cli is what every herald command does the same way before its
// real work starts: the common flags (--kubeconfig, --log-level,
// --profiling) and their validation, the JSON slog logger with client-go's
// klog bridged into it, the start-up log line naming the build, and the
// lookup of the cluster's REST config (with a dial that waits for an
// unreachable API server, see k8s.PatientDial).
//
// It is for cmd/ only; internal packages take their logger, clients and
// registry as arguments and must not import it.
package cli
