// Package scenarios holds herald's end-to-end scenarios: Go tests that
// build the network lab (e2e/lab/lab) from e2e/topologies, run real
// Kubernetes, kube-proxy and herald in it, and check what a client on the
// network sees. They need root and carry the build tag `privileged`
// (`make e2e`); built without it, a single test says loudly that nothing
// ran.
package scenarios
