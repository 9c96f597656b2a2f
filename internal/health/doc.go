// Package health judges whether this node can forward the traffic its
// announcements attract: the interface holding the node's address is up
// (read from the kernel over netlink, link.go) and kube-proxy's health
// endpoint answers 200 once it has ever answered. The speaker publishes the
// verdict through internal/membership, so other speakers stop electing a
// node that is alive but cannot forward. For the control-plane VIP, the
// question is whether this node's kube-apiserver answers /readyz
// (readyz.go).
//
// It must not import client-go or any herald package that decides
// announcements: it only answers yes or no, and why.
package health
