// Package layer2 is herald's layer-2 announcer: it makes a node answer ARP
// (IPv4) and NDP Neighbor Solicitations (IPv6) for the addresses the speaker
// says this node owns, and sends gratuitous ARP / unsolicited Neighbor
// Advertisements when it takes an address over, so that clients' neighbour
// caches move to this node at once instead of after their ~20 s timeout.
//
// herald never adds the address to an interface: kube-proxy (nftables or
// iptables mode) handles the traffic once it arrives, so only the link-layer
// answer is needed. Ownership is decided elsewhere (internal/election,
// internal/speaker); this package only takes the full desired state through
// [Announcer.Set] and reports where each address is announced through
// [Announcer.Interfaces].
//
// Interface choice is a pure function of the links, addresses and default
// routes read from netlink (see chooseInterfaces): the pool's interfaces if
// it names any, else the interface whose connected subnet contains the
// address, else the interface of the default route of the address family.
// Bridge members and bond slaves are replaced by their bridge or bond, and
// loopback is never used.
//
// Every raw socket sits behind a small seam (a net.PacketConn for ARP, the
// ndpConn interface for NDP) so the responders are tested and fuzzed without
// root; the privileged tests drive real sockets in network namespaces.
//
// Pitfalls this package handles or documents:
//   - An ARP request sent unicast to another MAC (a neighbour-cache probe of
//     another host, seen by promiscuous interfaces) is ignored.
//   - IPv6 addresses vanish when a link goes down unless
//     net.ipv6.conf.<if>.keep_addr_on_down=1 (then static global addresses
//     stay; the link-local address, which the NDP socket binds to, goes
//     regardless). Without them the connected-subnet choice falls back to
//     the default route or finds nothing. Responders on a down link are
//     closed; when it comes back they are reopened (the NDP one as soon as
//     the link-local address is usable, retried every second) and announce
//     again with a fresh gratuitous burst.
//   - Linux clients update an existing neighbour entry from a gratuitous ARP
//     (request form, or reply form with target MAC = sender MAC) even with
//     the default arp_accept=0, and from an unsolicited NA with the Override
//     flag; they do not create new entries from them, which is fine: a
//     client without an entry asks.
//
// It must not import client-go or anything from the Kubernetes API: the
// speaker translates Services into [Target]s.
package layer2
