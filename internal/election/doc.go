// Package election decides which speaker announces an address, and keeps the
// speakers' shared view of who is alive.
//
// It has two halves that meet only in the speaker:
//
//   - Pure ranking (election.go): Candidates filters nodes by the rules of
//     SPEC §4 (alive, self-reported healthy, not excluded, network
//     available, matched by the pool's nodeSelector and, for
//     externalTrafficPolicy Local, holding a ready or serving endpoint), and
//     Owner picks the layer-2 announcer by rendezvous (highest random weight)
//     hashing of node name and address (Ranker does the same for many
//     addresses over one candidate set). Losing a node moves only that
//     node's addresses; adding one moves only the addresses it now wins. The byte
//     format hashed by Score is a compatibility contract: every speaker of a
//     cluster must compute the same owner during a rolling upgrade, so it is
//     documented on Score and pinned by a golden test.
//   - Membership (cluster.go): Cluster wraps hashicorp/memberlist with
//     herald's timing defaults (chosen for sub-second failover, SPEC §5),
//     publishes the node's health in its memberlist metadata, re-joins known
//     peers every second so partitions heal quickly, and bridges
//     memberlist's logger into slog.
//
// The package must not import k8s.io/client-go, netlink, mdlayher/arp or
// mdlayher/ndp, or GoBGP: the speaker translates Node and EndpointSlice
// objects into NodeInfo and peer addresses, and announces what Owner and
// Candidates decide. Only k8s.io/apimachinery/pkg/labels is used, for the
// pool's nodeSelector. Keeping it so lets every election rule be table-tested
// and benchmarked without a cluster or root.
package election
