// Package election decides which speaker announces an address. It is pure:
// it knows nothing of memberlist, sockets or the Kubernetes API, so every
// rule is table-tested and benchmarked without a cluster or root.
//
// Candidates filters nodes: alive, self-reported healthy, not excluded,
// network available, matched by the pool's nodeSelector and, for
// externalTrafficPolicy Local, holding a ready or serving endpoint. Owner
// picks the layer-2 announcer by rendezvous (highest random weight) hashing
// of node name and address (Ranker does the same for many addresses over
// one candidate set). Losing a node moves only that node's addresses;
// adding one moves only the addresses it now wins. Placer keeps the
// several addresses of one Service on distinct nodes (placement.go); with
// one address it answers what Owner does. The byte format hashed
// by Score is a compatibility contract: every speaker of a cluster must
// compute the same owner during a rolling upgrade, so it is documented on
// Score and pinned by a golden test.
//
// Who is alive and healthy comes from internal/membership; the speaker
// turns Node objects and members into NodeInfo values. Only
// k8s.io/apimachinery/pkg/labels is imported, for the pool's nodeSelector.
package election
