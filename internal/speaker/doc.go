// Package speaker is herald-speaker's shell around the pure decision of
// internal/plan: informers read Services, EndpointSlices, Nodes, IPPools
// and BGPPeers (inputs.go turns them into plan's values), the live
// memberlist members come from internal/membership, plan.Decide says
// what this node announces, and the speaker hands that whole plan to the
// announcers behind the small L2Announcer and BGPAnnouncer interfaces,
// never deltas, so a missed event can never leave a stale announcement
// behind. What it did is reported as Events and in this node's Speaker
// object.
//
// It must not import internal/testcluster, and it must not talk to sockets
// itself: that is what internal/layer2 and internal/bgp are for.
package speaker
