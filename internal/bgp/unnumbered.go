package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/heraldlb/herald/internal/bgpplan"
)

// An interface peer (unnumbered BGP) is dialled at the router's IPv6
// link-local address on the interface, zoned with it (fe80::1%eth1).
// herald finds that address itself and hands GoBGP the zoned address as an
// ordinary neighbour, rather than setting GoBGP's NeighborInterface:
//
//   - GoBGP v3.37.0's AddPeer looks the neighbour up by address before it
//     resolves the interface (addNeighbor calls ExtractNeighborAddress
//     before SetDefaultNeighborConfigValues), so a peer with only an
//     interface is refused with "NeighborAddress is not configured";
//   - with both set, GoBGP resolves the interface again on every add,
//     update and delete (oc.GetIPv6LinkLocalNeighborAddress), and refuses
//     each one when the neighbour table no longer shows exactly one
//     neighbour, which is when the peer most needs replacing;
//   - it never looks again on its own: a router that shows up after the
//     neighbour was added, or whose address changes, is never found.
//
// So herald looks (with GoBGP's rule: a link-local neighbour that is not
// FAILED and not one of the interface's own addresses), keeps looking at
// Config.InterfaceRetry until exactly one is there, and replaces the GoBGP
// neighbour when the router's address changes.
//
// GoBGP's events and its NeighborCondition see the peer's address without
// its zone (table.NewPeerInfo drops it), so two interface peers whose
// routers use the same link-local address cannot be told apart by the
// per-peer export policy: the later one (by name) waits, with the reason.

// defaultInterfaceRetry is how often an interface peer's router is looked
// for: as often as a session's connect retry, so a router that boots later
// is peered about as soon as a numbered one would be.
const defaultInterfaceRetry = bgpplan.DefaultConnectTime

// linkLocalNeighbors returns the IPv6 link-local neighbours on iface that
// GoBGP's own resolution would count, zoned with iface.
func linkLocalNeighbors(iface string) ([]netip.Addr, error) {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", iface, err)
	}
	own, err := netlink.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("interface %s: listing its addresses: %w", iface, err)
	}
	neighs, err := netlink.NeighList(link.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("interface %s: listing its neighbours: %w", iface, err)
	}
	var out []netip.Addr
	for _, n := range neighs {
		addr, ok := netip.AddrFromSlice(n.IP)
		if !ok || !addr.IsLinkLocalUnicast() || n.State&netlink.NUD_FAILED != 0 {
			continue
		}
		if slices.ContainsFunc(own, func(a netlink.Addr) bool { return a.IP.Equal(n.IP) }) {
			continue
		}
		out = append(out, addr.WithZone(iface))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// pickRouter chooses the router among the link-local neighbours found on
// iface. The current one is kept while it is still there, so that another
// host appearing on the link does not tear a working session down;
// otherwise there must be exactly one.
func pickRouter(iface string, found []netip.Addr, current netip.Addr) (netip.Addr, error) {
	if current.IsValid() && slices.Contains(found, current) {
		return current, nil
	}
	switch len(found) {
	case 0:
		return netip.Addr{}, fmt.Errorf("no IPv6 link-local neighbour on %s yet: the router is found once its router advertisement, neighbour solicitation or any other packet puts it in the node's neighbour table", iface)
	case 1:
		return found[0], nil
	}
	l := make([]string, len(found))
	for i, a := range found {
		l[i] = a.WithZone("").String()
	}
	return netip.Addr{}, fmt.Errorf("%d IPv6 link-local neighbours on %s (%s): an unnumbered session needs the router alone on the link", len(found), iface, strings.Join(l, ", "))
}
