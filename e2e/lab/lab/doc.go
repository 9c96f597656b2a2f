// Package lab builds a herald test lab from a containerlab topology
// (package topology) out of network namespaces, veth pairs and a Linux
// bridge, and runs a real Kubernetes control plane (internal/testcluster,
// inside the control-plane namespace), kube-proxy in nftables mode and
// herald-speaker in every node namespace, one herald-controller, host-
// network backends registered as Pods, and FRR/BIRD routers.
//
// Up builds a lab and owns its processes; Attach opens a running lab from
// its state directory (another process's), and Down tears a lab down from
// either. Every namespace starts with "hl-"; state (pids, namespaces,
// kubeconfig) lives in StateDir so that teardown never depends on the
// process that built the lab still being alive.
//
// It is test infrastructure: herald's internal packages must not import it.
package lab
