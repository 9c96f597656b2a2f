// Package bfd is herald's BFD engine (RFC 5880, asynchronous mode only):
// single-hop sessions for directly connected routers (RFC 5881) and
// multihop sessions for eBGP multihop peers (RFC 5883), so that a router
// running BFD notices a dead node or link within its detection time, and
// so that the speaker can drop a BGP session whose BFD session is down.
//
// Why not a library: the one maintained Go implementation found,
// github.com/dantte-lp/gobfd (Apache-2.0), keeps its engine under
// internal/, which another module cannot import; what it exports (pkg/)
// is the protobuf API of its own daemon, and the module proxy does not
// serve it. Its dependencies (ConnectRPC, koanf, libovsdb, a CLI) are a
// daemon's, not an embeddable library's. The other Go BFD repositories
// found are small, unreleased experiments. So the protocol is written
// here, from the RFCs; nothing is copied from another implementation.
//
// The pieces, each testable on its own:
//
//   - packet.go: the control packet codec. Authentication is never
//     configured, so packets with the A bit are refused, as RFC 5880
//     §6.8.6 says for that case.
//   - machine.go: one session's state machine (RFC 5880 §6.8), given the
//     time on every call and owning no socket or goroutine: the three-way
//     handshake, detection time, the poll sequence that confirms a change
//     of timers, the slow (1s) rate while not Up, transmit jitter and the
//     passive role. Demand mode is not implemented.
//   - socket.go: UDP sockets. Packets are sent with TTL/hop limit 255
//     from a per-session source port in 49152-65535; a single-hop packet
//     must arrive with 255 (GTSM, RFC 5881 §5), a multihop one with at
//     least the profile's MinimumTTL. The TTL and destination address are
//     read from IP_RECVTTL/IP_PKTINFO (IPV6_RECVHOPLIMIT/IPV6_RECVPKTINFO)
//     control messages. Sockets may be bound to a device or VRF by name.
//   - manager.go: the Manager, one goroutine running every session on one
//     timer, with one receiving socket per local address, port and device
//     shared by the sessions on it, demultiplexed by Your Discriminator, or
//     by addresses while the peer does not know ours yet (RFC 5880 §6.3).
//
// Echo mode is not supported (a userspace daemon has no forwarding plane
// to loop echo packets through): a profile asking for it is refused.
// BFD runs in the speaker's process, so the C bit is never set.
//
// The package is Linux only. It must not import client-go, GoBGP or
// herald's other packages: the speaker turns BGPPeer and BFD profile
// settings into Sessions and session changes into BGP actions.
package bfd
