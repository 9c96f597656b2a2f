// Package localaddr makes addresses local to this node (on the loopback
// interface), so that the kernel accepts traffic for them: the
// control-plane VIP must reach kube-apiserver itself, which listens on the
// node, whereas Service addresses are translated by kube-proxy and never
// need to be local. It is a thin layer over netlink; the lab's
// control-plane scenario and the privileged test here drive it for real.
package localaddr
