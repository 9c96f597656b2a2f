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
// Several Paths may name one prefix (one per advertisement of a pool),
// each with its own Peers and attributes. A peer receives the prefix when
// at least one of them allows it, with the union of the communities and
// large communities of exactly the Paths that allow it and the highest
// local-pref among them (local-pref reaches iBGP peers only). The table
// holds one path per prefix: it carries the attributes all its peers
// share (Route.Attrs), and a peer that must receive more gets the rest
// from its filter (Route.Extra): one attribute class per distinct extra
// set and family, holding the prefixes it applies to. When all Paths of a
// prefix have the same Peers, every peer gets the same and there is no
// class at all. Apply fills a prefix's classes before announcing it and
// empties them after withdrawing it, deletes a class when its last prefix
// leaves, and soft-resets a peer whose extra attributes change on a route
// already announced, since GoBGP re-evaluates its filters only when it
// sends. The model checks that no peer receives a prefix it did not have
// with other attributes than its own, and that every peer ends with
// exactly its own.
//
// The calls themselves are internal/bgp's (an Executor); this package must
// not import GoBGP, sockets or the Kubernetes API.
package bgpplan
