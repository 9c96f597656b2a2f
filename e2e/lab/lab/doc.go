// Package lab builds a herald test lab from a containerlab topology
// (package topology) out of network namespaces, veth pairs and a Linux
// bridge, and runs a real Kubernetes control plane (internal/testcluster,
// inside the control-plane namespace, with kube-scheduler), kube-proxy in
// nftables mode on every node, and FRR/BIRD routers.
//
// With Options.Kubelet every node namespace is a real node: containerd,
// runc and a kubelet that registers it, Pods on a CNI bridge routed
// between the nodes, images imported from archives the lab builds (no
// registry), and herald installed from manifests/install.yaml as an
// operator installs it. Without it the runner writes the Node objects
// itself and runs herald-controller, herald-speaker and host-network
// backends as plain processes.
//
// Up builds a lab and owns its processes; Attach opens a running lab from
// its state directory (another process's), and Down tears a lab down from
// either. Every namespace and cgroup starts with "hl-"; state (pids,
// namespaces, kubeconfig, the node directories) lives in StateDir so that
// teardown never depends on the process that built the lab still being
// alive.
//
// It is test infrastructure: herald's internal packages must not import it.
package lab
