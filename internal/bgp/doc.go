// Package bgp is herald's BGP announcer: one embedded GoBGP server
// (github.com/osrg/gobgp/v3, used as a library, never a separate gobgpd) per
// speaker, driven with full desired sets of peers (SetPeers) and paths
// (SetPaths). It diffs each set against what it last applied, so calling
// either with an unchanged set sends nothing on the wire, and adding,
// changing or removing one peer never restarts the sessions of the others.
//
// The server only dials out: its global ListenPort is -1, so the speaker
// never binds port 179 and needs no privilege for it. The global ASN GoBGP
// requires is the MyASN of the first peer (by name) when BGP starts; every
// neighbour carries its own LocalAsn, so peers with different myASN work and
// the global ASN is never changed afterwards (changing it would restart every
// session for no effect on what is sent).
//
// A path restricted to some peers (Path.Peers) is kept from the others by a
// global export policy: one policy per peer whose statements reject, for
// that peer's neighbor set only, the prefixes in its "deny" prefix sets.
// GoBGP keys neighbours by address, so two peers may not share an address.
// The same policy gives a peer the attributes of the paths meant for it
// beyond those the table's path carries: after the deny statements, one
// statement per attribute class ("herald-<peer>-attrs-<v4|v6>-<hash>"),
// matching the peer's neighbor set and the class's prefix set of the same
// name, adds communities and large communities and sets local-pref, with
// no route action, so evaluation goes on; GoBGP strips local-pref towards
// eBGP peers after the policy.
// Which routes and deny-set entries change, and in which order, is
// internal/bgpplan's decision; this package makes the GoBGP calls
// (executor.go) and watches the sessions.
//
// This package must not import client-go or herald packages other than
// bgpplan: the speaker translates BGPPeer objects and IPPool settings into
// Peer and Path values and turns session changes into Events.
package bgp
