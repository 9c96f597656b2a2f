// Package cpvip keeps the Kubernetes API server's virtual address (the
// control-plane VIP) on one control-plane node whose own kube-apiserver is
// ready, without asking any API server: the nodes elect over memberlist,
// so the address moves exactly when the API server behind it is gone.
//
// The rule (Owner) is pure: among the members that are healthy, the one
// already holding the address keeps it, so a node that comes back does not
// take it away again (each move breaks every client's connections); with
// no holder, the healthy member that ranks highest for the address
// (internal/election's score) takes it. After a partition heals, two
// holders meet and the higher-ranked one stays. A holder whose API server
// fails keeps the VIP while no other member is healthy.
//
// Keeper runs the rule: it checks the local API server on a timer, publishes
// health and holding in this node's memberlist metadata, and tells an
// Announcer to hold or release the address. Sockets, netlink and HTTP sit
// behind the Membership and Announcer interfaces and the Check function,
// so this package's tests run without root.
package cpvip
