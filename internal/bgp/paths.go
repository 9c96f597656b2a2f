package bgp

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"
)

// Well-known communities (RFC 1997, RFC 3765, RFC 7999), by the names the
// IPPool API accepts.
var wellKnownCommunities = map[string]uint32{
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"no-peer":             0xFFFFFF04,
	"blackhole":           0xFFFF029A,
}

// ParseCommunity parses a standard community: "N:N" (two 16-bit numbers) or
// one of the well-known names no-export, no-advertise, no-export-subconfed,
// no-peer and blackhole.
func ParseCommunity(s string) (uint32, error) {
	if v, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want N:N or a well-known name", s)
	}
	h, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("community %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("community %q: %w", s, err)
	}
	return uint32(h)<<16 | uint32(l), nil
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct{ Global, Local1, Local2 uint32 }

// ParseLargeCommunity parses "N:N:N" (three 32-bit numbers).
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return LargeCommunity{}, fmt.Errorf("large community %q: want N:N:N", s)
	}
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("large community %q: %w", s, err)
		}
		v[i] = uint32(n)
	}
	return LargeCommunity{v[0], v[1], v[2]}, nil
}

func compareLarge(a, b LargeCommunity) int {
	return cmp.Or(cmp.Compare(a.Global, b.Global), cmp.Compare(a.Local1, b.Local1), cmp.Compare(a.Local2, b.Local2))
}

// route is a Path after validation: canonical prefix, sorted and
// de-duplicated attributes, and the GoBGP path built once so that announcing
// and withdrawing it costs no re-encoding.
type route struct {
	prefix       netip.Prefix
	communities  []uint32
	large        []LargeCommunity
	localPref    uint32
	hasLocalPref bool
	peers        []string // sorted; empty = every peer
	api          *api.Path
}

func (r *route) sameAttrs(o *route) bool {
	return slices.Equal(r.communities, o.communities) && slices.Equal(r.large, o.large) &&
		r.hasLocalPref == o.hasLocalPref && r.localPref == o.localPref
}

func (r *route) samePeers(o *route) bool { return slices.Equal(r.peers, o.peers) }

// allows reports whether the route may be advertised to the named peer.
func (r *route) allows(peer string) bool {
	if len(r.peers) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(r.peers, peer)
	return ok
}

// merge folds a second Path for the same prefix into r: the union of the
// communities and of the peers (where either means "all", the result does),
// and the higher local-pref.
func (r *route) merge(o *route) {
	r.communities = sortedUnique(append(r.communities, o.communities...), cmp.Compare[uint32])
	r.large = sortedUnique(append(r.large, o.large...), compareLarge)
	if o.hasLocalPref && (!r.hasLocalPref || o.localPref > r.localPref) {
		r.localPref, r.hasLocalPref = o.localPref, true
	}
	if len(r.peers) == 0 || len(o.peers) == 0 {
		r.peers = nil
	} else {
		r.peers = sortedUnique(append(r.peers, o.peers...), strings.Compare)
	}
}

func sortedUnique[T comparable](s []T, c func(a, b T) int) []T {
	slices.SortFunc(s, c)
	return slices.Compact(s)
}

// newRoute validates p. The GoBGP path is built later, by buildAPIPath.
func newRoute(p Path) (*route, error) {
	if !p.Prefix.IsValid() {
		return nil, errors.New("invalid prefix")
	}
	pfx := p.Prefix
	if pfx.Addr().Is4In6() {
		if pfx.Bits() < 96 {
			return nil, fmt.Errorf("prefix %s: IPv4-mapped prefix shorter than /96", pfx)
		}
		pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
	}
	if pfx.Addr().Zone() != "" {
		return nil, fmt.Errorf("prefix %s: zones are not allowed", pfx)
	}
	r := &route{prefix: pfx.Masked()}
	var errs []error
	for _, c := range p.Communities {
		v, err := ParseCommunity(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.communities = append(r.communities, v)
	}
	for _, c := range p.LargeCommunities {
		v, err := ParseLargeCommunity(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.large = append(r.large, v)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("prefix %s: %w", r.prefix, err)
	}
	r.communities = sortedUnique(r.communities, cmp.Compare[uint32])
	r.large = sortedUnique(r.large, compareLarge)
	if p.LocalPref != nil {
		r.localPref, r.hasLocalPref = *p.LocalPref, true
	}
	for _, name := range p.Peers {
		if name != "" {
			r.peers = append(r.peers, name)
		}
	}
	if len(r.peers) > 0 {
		r.peers = sortedUnique(r.peers, strings.Compare)
	}
	return r, nil
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// buildAPIPath encodes r as a locally originated GoBGP path (origin IGP)
// with next hop nh. IPv4 routes carry a NEXT_HOP attribute (0.0.0.0 makes
// GoBGP use the session's local address); IPv6 routes an MP_REACH_NLRI.
// Local-pref is always attached: GoBGP strips it towards eBGP peers.
func buildAPIPath(r *route, nh netip.Addr) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: r.prefix.Addr().String(), PrefixLen: uint32(r.prefix.Bits())})
	if err != nil {
		return nil, err
	}
	attrs := make([]*anypb.Any, 0, 5)
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0})
	if err != nil {
		return nil, err
	}
	attrs = append(attrs, origin)
	family := familyV4
	if r.prefix.Addr().Is4() {
		if !nh.IsValid() {
			nh = netip.IPv4Unspecified()
		}
		a, err := anypb.New(&api.NextHopAttribute{NextHop: nh.String()})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	} else {
		family = familyV6
		a, err := anypb.New(&api.MpReachNLRIAttribute{Family: familyV6, NextHops: []string{nh.String()}, Nlris: []*anypb.Any{nlri}})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if len(r.communities) > 0 {
		a, err := anypb.New(&api.CommunitiesAttribute{Communities: r.communities})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if len(r.large) > 0 {
		l := make([]*api.LargeCommunity, len(r.large))
		for i, c := range r.large {
			l[i] = &api.LargeCommunity{GlobalAdmin: c.Global, LocalData1: c.Local1, LocalData2: c.Local2}
		}
		a, err := anypb.New(&api.LargeCommunitiesAttribute{Communities: l})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if r.hasLocalPref {
		a, err := anypb.New(&api.LocalPrefAttribute{LocalPref: r.localPref})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	return &api.Path{Family: family, Nlri: nlri, Pattrs: attrs}, nil
}
