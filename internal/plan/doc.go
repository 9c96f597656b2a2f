// Package plan decides what one speaker announces. Decide is a pure
// function from plain values (the Services with their endpoints' nodes,
// the IPPools, the BGPPeers, the nodes and who is alive and healthy) to a
// Plan: the layer-2 and BGP announcements of this node, the BGP peers it
// uses and the router ID they agree on, and the problems found, as data.
// The speaker reads the API into an Input, hands the Plan to the
// announcers and turns the problems into Events.
//
// Layer 2 has one owner per address, chosen by rendezvous hashing
// (internal/election) on the Service's IPv4 address, else its IPv6 one, so
// both families of a dual-stack Service and all Services sharing an
// address land on one node. A Service with several addresses per family
// (herald.dev/address-count) has them paired into slots, the i-th of each
// family together, and an election.Placer puts the slots on distinct
// nodes: homes among the nodes that would be candidates if all were alive
// and healthy, owners among the live ones, so that losing a node moves
// only its slot. A Service with one slot is placed exactly as before. BGP
// is announced by every candidate, whatever the slots. An address in no
// IPPool is refused, never announced.
//
// The announcers always receive the whole Plan, never deltas, so a missed
// event can never leave a stale announcement behind.
//
// It must not import client-go, memberlist, the network packages, netlink,
// GoBGP or mdlayher: every rule is table-tested without a cluster.
package plan
