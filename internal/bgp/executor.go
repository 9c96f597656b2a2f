package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

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

// AddToClass fills the prefix set of an attribute class and, for a new
// class, appends its statement to the peer's policy: after the deny
// statements, with no route action, so that GoBGP applies its
// modifications and goes on (a peer's prefix is in at most one class).
func (t gobgpTable) AddToClass(peer string, c *bgpplan.Class, pfxs []netip.Prefix, create bool) error {
	name := className(peer, c)
	set := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: prefixList(pfxs)}
	if !create {
		return t.a.srv.AddDefinedSet(t.ctx, &api.AddDefinedSetRequest{DefinedSet: set})
	}
	// Replace: a set left behind by a failed clean-up may hold other
	// prefixes.
	if err := t.a.srv.AddDefinedSet(t.ctx, &api.AddDefinedSetRequest{DefinedSet: set, Replace: true}); err != nil {
		return err
	}
	// GoBGP keeps a statement removed from its policy among its defined
	// statements, and refuses to define one of the same name again.
	_ = t.a.srv.DeleteStatement(t.ctx, &api.DeleteStatementRequest{Statement: &api.Statement{Name: name}, All: true})
	if err := t.a.srv.AddPolicy(t.ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: policyName(peer), Statements: []*api.Statement{classStatement(peer, c)},
	}}); err != nil {
		if derr := t.a.deleteSet(api.DefinedType_PREFIX, name); derr != nil {
			t.a.log.Warn("undoing a failed attribute class", "peer", peer, "class", name, "err", derr)
		}
		return err
	}
	return nil
}

// RemoveFromClass empties the class's set of pfxs; the last prefix takes
// the statement and the set with it, so that a peer's policy holds only
// the classes in use.
func (t gobgpTable) RemoveFromClass(peer string, c *bgpplan.Class, pfxs []netip.Prefix, last bool) error {
	name := className(peer, c)
	if !last {
		return t.a.srv.DeleteDefinedSet(t.ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: prefixList(pfxs),
		}})
	}
	if err := t.a.srv.DeletePolicy(t.ctx, &api.DeletePolicyRequest{Policy: &api.Policy{
		Name: policyName(peer), Statements: []*api.Statement{{Name: name}},
	}}); err != nil {
		return err
	}
	// Once out of the policy, the statement and the set have no effect:
	// what is left of them is only logged (AddToClass replaces both).
	if err := errors.Join(
		t.a.srv.DeleteStatement(t.ctx, &api.DeleteStatementRequest{Statement: &api.Statement{Name: name}, All: true}),
		t.a.deleteSet(api.DefinedType_PREFIX, name),
	); err != nil {
		t.a.log.Warn("cleaning up an attribute class", "peer", peer, "class", name, "err", err)
	}
	return nil
}

// classStatement adds c's attributes to the routes sent to peer whose
// prefix is in the class's set. Local-pref is set for every peer; GoBGP
// strips it towards eBGP peers after the export policy.
func classStatement(peer string, c *bgpplan.Class) *api.Statement {
	name := className(peer, c)
	act := &api.Actions{RouteAction: api.RouteAction_NONE}
	if len(c.Attrs.Communities) > 0 {
		l := make([]string, len(c.Attrs.Communities))
		for i, v := range c.Attrs.Communities {
			l[i] = strconv.FormatUint(uint64(v), 10)
		}
		act.Community = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: l}
	}
	if len(c.Attrs.Large) > 0 {
		l := make([]string, len(c.Attrs.Large))
		for i, v := range c.Attrs.Large {
			l[i] = fmt.Sprintf("%d:%d:%d", v.Global, v.Local1, v.Local2)
		}
		act.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_ADD, Communities: l}
	}
	if c.Attrs.HasLocalPref {
		act.LocalPref = &api.LocalPrefAction{Value: c.Attrs.LocalPref}
	}
	return &api.Statement{
		Name: name,
		Conditions: &api.Conditions{
			NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSetName(peer)},
			PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: name},
		},
		Actions: act,
	}
}

// SoftResetOut re-sends a peer its routes: GoBGP does not re-send a path
// whose attributes did not change, nor re-evaluate its export policy when
// a defined set changes, so a peer newly allowed a prefix it did not have,
// or whose extra attributes changed, gets it this way (no session reset;
// duplicates of what it already has are no-ops for the router).
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
