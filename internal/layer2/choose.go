package layer2

import (
	"net/netip"
	"slices"
)

// link is what interface choice needs to know about one network interface.
type link struct {
	Index    int
	Name     string
	MAC      string // hardware address as net.HardwareAddr.String()
	Kind     string // netlink link type: "bridge", "bond", "veth", "device", ...
	Up       bool   // administratively up and operationally up (or unknown)
	Loopback bool
	Master   int // index of the bridge/bond/VRF this link is enslaved to; 0 if none
	Prefixes []netip.Prefix
}

// defaultRoute is a default route (0.0.0.0/0 or ::/0) of the main table.
type defaultRoute struct {
	V6        bool
	LinkIndex int
	Priority  int // the route metric: lower wins
}

// netState is a snapshot of the links and default routes of the node.
type netState struct {
	Links  []link
	Routes []defaultRoute
}

// aggregatingKinds are link types whose members do not carry traffic of
// their own: announcements go out on the aggregate (the bridge or bond), not
// on its ports. A VRF is not one of them: a link in a VRF is still used.
var aggregatingKinds = map[string]bool{
	"bridge":      true,
	"bond":        true,
	"team":        true,
	"openvswitch": true,
}

func (s *netState) byIndex(i int) *link {
	for k := range s.Links {
		if s.Links[k].Index == i {
			return &s.Links[k]
		}
	}
	return nil
}

func (s *netState) byName(name string) *link {
	for k := range s.Links {
		if s.Links[k].Name == name {
			return &s.Links[k]
		}
	}
	return nil
}

// aggregate returns the bridge or bond l belongs to (following nesting, such
// as a bond inside a bridge), or l itself.
func (s *netState) aggregate(l *link) *link {
	for range 8 { // bounded: a malformed snapshot must not loop forever
		if l.Master == 0 {
			return l
		}
		m := s.byIndex(l.Master)
		if m == nil || !aggregatingKinds[m.Kind] {
			return l
		}
		l = m
	}
	return l
}

// usable resolves l to the interface that would carry announcements for it,
// or nil if that interface is down or loopback.
func (s *netState) usable(l *link) *link {
	if l == nil {
		return nil
	}
	l = s.aggregate(l)
	if !l.Up || l.Loopback {
		return nil
	}
	return l
}

// chooseInterfaces returns the names of the interfaces on which addr is to be
// announced, sorted and without duplicates, or nil if there is none:
//
//  1. wanted (the pool's interfaces) if not empty: those that exist and are
//     up; nothing else, even if none is;
//  2. else the interfaces holding the most specific connected subnet that
//     contains addr (host addresses such as /32 do not count as subnets);
//  3. else the interface of the lowest-metric default route of addr's family.
//
// Bridge members and bond slaves are replaced by their bridge or bond;
// loopback is never chosen.
func chooseInterfaces(st *netState, addr netip.Addr, wanted []string) []string {
	addr = addr.Unmap()
	if !addr.IsValid() || st == nil {
		return nil
	}
	var out []string
	add := func(l *link) {
		if l = st.usable(l); l != nil && !slices.Contains(out, l.Name) {
			out = append(out, l.Name)
		}
	}
	if len(wanted) > 0 {
		for _, name := range wanted {
			add(st.byName(name))
		}
		slices.Sort(out)
		return out
	}

	best := -1
	var holders []*link
	for i := range st.Links {
		l := &st.Links[i]
		for _, p := range l.Prefixes {
			p = p.Masked()
			if p.Addr().Is4() != addr.Is4() || p.Bits() >= addr.BitLen() || !p.Contains(addr) {
				continue
			}
			if st.usable(l) == nil {
				continue
			}
			switch {
			case p.Bits() > best:
				best, holders = p.Bits(), []*link{l}
			case p.Bits() == best:
				holders = append(holders, l)
			}
		}
	}
	if len(holders) > 0 {
		for _, l := range holders {
			add(l)
		}
		slices.Sort(out)
		return out
	}

	var route *defaultRoute
	for i := range st.Routes {
		r := &st.Routes[i]
		if r.V6 == addr.Is4() || st.usable(st.byIndex(r.LinkIndex)) == nil {
			continue
		}
		if route == nil || r.Priority < route.Priority {
			route = r
		}
	}
	if route != nil {
		add(st.byIndex(route.LinkIndex))
	}
	return out
}
