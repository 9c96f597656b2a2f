// Package bgpplan is the pure half of herald's BGP announcer: the peer and
// path values the speaker hands it, their validation and defaults, and the
// order in which an announcer brings its routing table and per-peer export
// filters from what they hold to what is wanted (State.Apply).
//
// The order is what keeps a path restricted to some peers (Path.Peers)
// from ever reaching the others: GoBGP exports every route of its table to
// every neighbour unless the neighbour's deny set holds the prefix, and it
// cannot withdraw a prefix from one neighbour only. So Apply withdraws
// first (removed prefixes, and those some peer loses), then updates the
// deny sets, then announces, then soft-resets the peers that gained a
// prefix whose path GoBGP would not resend. apply_test.go replays every
// step against a model of GoBGP and checks that no peer sees a prefix it
// is not allowed at any moment, failures included.
//
// The calls themselves are internal/bgp's (an Executor); this package must
// not import GoBGP, sockets or the Kubernetes API.
package bgpplan
