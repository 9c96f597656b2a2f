// Package speaker is herald-speaker's logic: from Services, EndpointSlices,
// Nodes, IPPools and the live memberlist members it decides which addresses
// this node announces, and over which protocol, and hands the full desired
// state to the announcers.
//
// The decision (Decide) is a pure function of its inputs, so every rule of
// SPEC §4 is table-tested without a cluster; Speaker wires informers and
// membership to it. The announcers sit behind the small Layer2 and BGP
// interfaces declared here and always receive the whole desired set, never
// deltas, so a missed event can never leave a stale announcement behind.
//
// It must not import internal/testcluster, and it must not talk to sockets
// itself: that is what internal/layer2 and internal/bgp are for.
package speaker
