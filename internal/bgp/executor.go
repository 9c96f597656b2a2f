package bgp

import (
	"context"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/heraldlb/herald/internal/bgpplan"
)

// gobgpTable carries out bgpplan's steps on GoBGP's global table and the
// peers' deny sets. The Announcer's lock is held.
type gobgpTable struct {
	a   *Announcer
	ctx context.Context
}

var _ bgpplan.Executor = gobgpTable{}

// encodedPath is a route in GoBGP's table with its GoBGP form, kept so
// that withdrawing it or announcing it again unchanged costs no encoding.
type encodedPath struct {
	route *bgpplan.Route
	path  *api.Path
}

func (t gobgpTable) Withdraw(r *bgpplan.Route) error {
	e, ok := t.a.encoded[r.Prefix]
	if !ok {
		return nil // never reached GoBGP
	}
	if err := t.a.srv.DeletePath(t.ctx, &api.DeletePathRequest{Family: e.path.Family, Path: e.path}); err != nil {
		return err
	}
	delete(t.a.encoded, r.Prefix)
	return nil
}

func (t gobgpTable) Announce(r *bgpplan.Route) error {
	e, ok := t.a.encoded[r.Prefix]
	if !ok || !e.route.SameAttrs(r) {
		nh := t.a.cfg.NextHopV4
		if r.Prefix.Addr().Is6() {
			nh = t.a.cfg.NextHopV6
		}
		p, err := buildAPIPath(r, nh)
		if err != nil {
			return fmt.Errorf("encoding: %w", err)
		}
		e.path = p
	}
	if _, err := t.a.srv.AddPath(t.ctx, &api.AddPathRequest{Path: e.path}); err != nil {
		return err
	}
	t.a.encoded[r.Prefix] = encodedPath{route: r, path: e.path}
	return nil
}

func (t gobgpTable) AddDeny(peer string, v6 bool, pfxs []netip.Prefix) error {
	return t.a.srv.AddDefinedSet(t.ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_PREFIX, Name: denySetName(peer, v6), Prefixes: prefixList(pfxs),
	}})
}

func (t gobgpTable) DeleteDeny(peer string, v6 bool, pfxs []netip.Prefix) error {
	return t.a.srv.DeleteDefinedSet(t.ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_PREFIX, Name: denySetName(peer, v6), Prefixes: prefixList(pfxs),
	}})
}

// SoftResetOut re-sends a peer its routes: GoBGP does not re-send a path
// whose attributes did not change, so a peer newly allowed a prefix it did
// not have gets it this way (no session reset; duplicates of what it
// already has are no-ops for the router).
func (t gobgpTable) SoftResetOut(peer string) error {
	return t.a.srv.ResetPeer(t.ctx, &api.ResetPeerRequest{
		Address: t.a.peers[peer].Address.String(), Soft: true, Direction: api.ResetPeerRequest_OUT,
	})
}

func prefixList(pfxs []netip.Prefix) []*api.Prefix {
	out := make([]*api.Prefix, len(pfxs))
	for i, p := range pfxs {
		out[i] = &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())}
	}
	return out
}

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// buildAPIPath encodes r as a locally originated GoBGP path (origin IGP)
// with next hop nh. IPv4 routes carry a NEXT_HOP attribute (0.0.0.0 makes
// GoBGP use the session's local address); IPv6 routes an MP_REACH_NLRI.
// Local-pref is always attached: GoBGP strips it towards eBGP peers.
func buildAPIPath(r *bgpplan.Route, nh netip.Addr) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: r.Prefix.Addr().String(), PrefixLen: uint32(r.Prefix.Bits())})
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
	if r.Prefix.Addr().Is4() {
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
	if len(r.Communities) > 0 {
		a, err := anypb.New(&api.CommunitiesAttribute{Communities: r.Communities})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if len(r.Large) > 0 {
		l := make([]*api.LargeCommunity, len(r.Large))
		for i, c := range r.Large {
			l[i] = &api.LargeCommunity{GlobalAdmin: c.Global, LocalData1: c.Local1, LocalData2: c.Local2}
		}
		a, err := anypb.New(&api.LargeCommunitiesAttribute{Communities: l})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if r.HasLocalPref {
		a, err := anypb.New(&api.LocalPrefAttribute{LocalPref: r.LocalPref})
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	return &api.Path{Family: family, Nlri: nlri, Pattrs: attrs}, nil
}
