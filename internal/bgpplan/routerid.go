package bgpplan

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
)

// DerivedRouterID is the BGP identifier of a node that has no IPv4
// InternalIP (and no BGPPeer.routerID): the last 32 bits of its IPv6
// InternalIP, which tell apart the nodes of a subnet however it is
// numbered (static ::11, ::12 or SLAAC's MAC-derived tails). Should those
// bits be zero (an identifier BGP refuses), a hash of the node name is
// used instead. The value only has to be stable and unique among one
// router's peers (RFC 6286); it is never an address anyone routes to.
func DerivedRouterID(v6 netip.Addr, node string) netip.Addr {
	if v6.Is6() && !v6.Is4In6() {
		b := v6.As16()
		if id := netip.AddrFrom4([4]byte(b[12:])); binary.BigEndian.Uint32(b[12:]) != 0 {
			return id
		}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	v := h.Sum32()
	if v == 0 {
		v = 1
	}
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], v)
	return netip.AddrFrom4(out)
}
