package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/heraldlb/herald/internal/bgpplan"
)

// globalRIB is GoBGP's name for the global table's policy assignments
// (table.GLOBAL_RIB_NAME, in an internal package).
const globalRIB = "global"

// multihopTTL is the TTL of eBGP multihop sessions: any path length, as
// other BGP implementations do when multihop is on without a hop count.
const multihopTTL = 255

// Names of the GoBGP policy objects of one peer. Kubernetes object names
// are DNS subdomains, which GoBGP accepts as set and policy names.
func policyName(peer string) string      { return "herald-" + peer }
func neighborSetName(peer string) string { return "herald-" + peer + "-neighbor" }
func nextHopSetName(peer string) string  { return "herald-" + peer + "-nexthop-self" }
func gateSetName(peer string, v6 bool) string {
	if v6 {
		return "herald-" + peer + "-gate-v6"
	}
	return "herald-" + peer + "-gate-v4"
}

// allPrefixes matches every prefix of a family.
func allPrefixes(v6 bool) *api.Prefix {
	if v6 {
		return &api.Prefix{IpPrefix: "::/0", MaskLengthMin: 0, MaskLengthMax: 128}
	}
	return &api.Prefix{IpPrefix: "0.0.0.0/0", MaskLengthMin: 0, MaskLengthMax: 32}
}

// setGate opens or closes a dynamicASN peer's gate: its reject statements
// match every prefix while the sets hold the all-prefixes entry, none
// while they are empty (an empty prefix set matches nothing in GoBGP).
// The sets are changed in place: a replaced set would be a new object,
// one the policy's statements do not see.
func (a *Announcer) setGate(ctx context.Context, peer string, open bool) error {
	for _, v6 := range []bool{false, true} {
		set := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: gateSetName(peer, v6), Prefixes: []*api.Prefix{allPrefixes(v6)}}
		var err error
		if open {
			// Removes every copy: closing twice appended two.
			err = a.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set})
		} else {
			err = a.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// closeGate closes a dynamicASN peer's gate if it is open. a.mu is held.
func (a *Announcer) closeGate(ctx context.Context, peer string) error {
	if !a.gateOpen[peer] {
		return nil
	}
	if err := a.setGate(ctx, peer, false); err != nil {
		return err
	}
	a.gateOpen[peer] = false
	return nil
}

// className names both the prefix set and the statement of an attribute
// class (GoBGP keeps sets and statements apart).
func className(peer string, c *bgpplan.Class) string { return "herald-" + peer + "-attrs-" + c.ID() }
func denySetName(peer string, v6 bool) string {
	if v6 {
		return "herald-" + peer + "-deny-v6"
	}
	return "herald-" + peer + "-deny-v4"
}

// seconds rounds d up to whole seconds, GoBGP's timer unit.
func seconds(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Second - 1) / time.Second)
}

// keepalive is the keepalive interval GoBGP is configured with: RFC 4271
// sends keepalives at most a third of the hold time apart and at most
// one a second. GoBGP applies its configured interval as is whenever the
// negotiated hold time is ours (a keepaliveTime above a third of it
// would let the router's hold timer run close to expiry), and a third of
// the negotiated hold time, rounded down, when the router's is shorter;
// so the configured interval is capped here at a third of ours. A hold
// time of 0 needs none: GoBGP sends none when the negotiated hold time is
// 0, but it cannot propose 0 (it replaces a configured 0 by 90 s, and 0
// would then mean one a second), so the keepalive is the default third
// of that.
func keepalive(hold, keepalive time.Duration) uint64 {
	h := seconds(hold)
	if h == 0 {
		h = 90 // GoBGP's DEFAULT_HOLDTIME, what it proposes instead of 0
	}
	k := seconds(keepalive)
	if k == 0 || k > h/3 {
		k = h / 3
	}
	return max(k, 1)
}

// apiPeer is the GoBGP neighbour configuration of p: ipv4-unicast and
// ipv6-unicast on every session (IPv6 over MP-BGP on IPv4 sessions and the
// other way round), except an interface peer's: ipv6-unicast only. Over a
// link-local session an IPv4 route would need an IPv6 next hop (RFC 5549
// extended next hop, which GoBGP does not send), and the node's IPv4
// address is not on an unnumbered link for the router to reach.
func apiPeer(p Peer) *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			// 0 for dynamicASN: GoBGP takes the router's AS from its OPEN.
			PeerAsn:      p.PeerASN,
			LocalAsn:     p.MyASN,
			AuthPassword: p.Password,
			Description:  p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          seconds(p.HoldTime),
			KeepaliveInterval: keepalive(p.HoldTime, p.KeepaliveTime),
			ConnectRetry:      seconds(p.ConnectTime),
			// After a reset (a BFD session going down, a changed
			// password) GoBGP waits this long before dialling again; its
			// default, 30 s, would keep a router whose link came back
			// unpeered that long.
			IdleHoldTimeAfterReset: max(1, seconds(p.ConnectTime)),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.SourceAddress.IsValid() {
		ap.Transport.LocalAddress = p.SourceAddress.String()
	}
	// Bound to the VRF device, the socket's route lookups use the VRF's
	// table (SO_BINDTODEVICE).
	ap.Transport.BindInterface = p.VRF
	if p.EBGPMultiHop {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: multihopTTL}
	}
	if p.GracefulRestart {
		// Restart time defaults to the hold time in GoBGP.
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true}
	}
	families := []*api.Family{familyV4, familyV6}
	if p.Interface != "" {
		families = []*api.Family{familyV6}
	}
	for _, f := range families {
		as := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}}
		if p.GracefulRestart {
			as.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		ap.AfiSafis = append(ap.AfiSafis, as)
	}
	return ap
}

// addPeer creates p's policy (neighbor set, deny sets for the routes
// already in the RIB, a reject statement per family, then the attribute
// classes of those routes, assigned to global export) and then the GoBGP
// neighbour, so that the first UPDATEs the peer gets already respect
// Path.Peers and carry the peer's own attributes.
func (a *Announcer) addPeer(ctx context.Context, p Peer) (err error) {
	// undo holds the clean-up of each step done; a failed step runs them
	// backwards. A clean-up that fails leaves an unused GoBGP object
	// behind, which the next addPeer of this name replaces: logged only.
	var undo []func() error
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(undo) {
				if uerr := f(); uerr != nil {
					a.log.Warn("undoing a failed BGP peer addition", "peer", p.Name, "err", uerr)
				}
			}
		}
	}()
	bits := 32
	if p.Address.Is6() {
		bits = 128
	}
	if err := a.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_NEIGHBOR, Name: neighborSetName(p.Name),
		// GoBGP's NeighborCondition compares the session's address
		// without its zone (table.PeerInfo.Address): so is the set's.
		List: []string{netip.PrefixFrom(p.Address.WithZone(""), bits).String()},
	}}); err != nil {
		return fmt.Errorf("adding BGP peer %s: neighbor set: %w", p.Name, err)
	}
	undo = append(undo, func() error { return a.deleteSet(api.DefinedType_NEIGHBOR, neighborSetName(p.Name)) })

	deny := a.table.DenyFor(p.Name)
	for _, v6 := range []bool{false, true} {
		var l []netip.Prefix
		for pfx := range deny {
			if pfx.Addr().Is6() == v6 {
				l = append(l, pfx)
			}
		}
		if err := a.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_PREFIX, Name: denySetName(p.Name, v6), Prefixes: prefixList(l),
		}}); err != nil {
			return fmt.Errorf("adding BGP peer %s: prefix set: %w", p.Name, err)
		}
		undo = append(undo, func() error { return a.deleteSet(api.DefinedType_PREFIX, denySetName(p.Name, v6)) })
	}

	classes := a.table.ClassesFor(p.Name)
	for _, id := range slices.Sorted(maps.Keys(classes)) {
		cs := classes[id]
		name := className(p.Name, &cs.Class)
		if err := a.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_PREFIX, Name: name,
			Prefixes: prefixList(slices.SortedFunc(maps.Keys(cs.Prefixes), netip.Prefix.Compare)),
		}}); err != nil {
			return fmt.Errorf("adding BGP peer %s: attribute class: %w", p.Name, err)
		}
		undo = append(undo, func() error { return a.deleteSet(api.DefinedType_PREFIX, name) })
	}

	pol := &api.Policy{Name: policyName(p.Name)}
	if p.DynamicASN != "" {
		// The gate, closed from before the neighbour exists: nothing
		// reaches a router whose AS is not checked yet (onGateEvent).
		for _, v6 := range []bool{false, true} {
			if err := a.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
				DefinedType: api.DefinedType_PREFIX, Name: gateSetName(p.Name, v6), Prefixes: []*api.Prefix{allPrefixes(v6)},
			}}); err != nil {
				return fmt.Errorf("adding BGP peer %s: gate prefix set: %w", p.Name, err)
			}
			undo = append(undo, func() error { return a.deleteSet(api.DefinedType_PREFIX, gateSetName(p.Name, v6)) })
			pol.Statements = append(pol.Statements, &api.Statement{
				Name: gateSetName(p.Name, v6),
				Conditions: &api.Conditions{
					NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSetName(p.Name)},
					PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: gateSetName(p.Name, v6)},
				},
				Actions: &api.Actions{RouteAction: api.RouteAction_REJECT},
			})
		}
	}
	if p.VRF != "" {
		// The node's InternalIP, the usual next hop, lives in the default
		// VRF; a peer in another VRF reaches the node at the session's
		// own local address. Only routes of the session's family can
		// carry it as next hop, so the statement matches those alone.
		if err := a.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_PREFIX, Name: nextHopSetName(p.Name), Prefixes: []*api.Prefix{allPrefixes(p.Address.Is6())},
		}}); err != nil {
			return fmt.Errorf("adding BGP peer %s: next-hop prefix set: %w", p.Name, err)
		}
		undo = append(undo, func() error { return a.deleteSet(api.DefinedType_PREFIX, nextHopSetName(p.Name)) })
		pol.Statements = append(pol.Statements, &api.Statement{
			Name: nextHopSetName(p.Name),
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSetName(p.Name)},
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: nextHopSetName(p.Name)},
			},
			Actions: &api.Actions{Nexthop: &api.NexthopAction{Self: true}},
		})
	}
	for _, v6 := range []bool{false, true} {
		pol.Statements = append(pol.Statements, &api.Statement{
			Name: denySetName(p.Name, v6),
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSetName(p.Name)},
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: denySetName(p.Name, v6)},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT},
		})
	}
	// The classes come after the deny statements: a denied prefix never
	// reaches them.
	for _, id := range slices.Sorted(maps.Keys(classes)) {
		pol.Statements = append(pol.Statements, classStatement(p.Name, &classes[id].Class))
	}
	if err := a.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}); err != nil {
		return fmt.Errorf("adding BGP peer %s: policy: %w", p.Name, err)
	}
	undo = append(undo, func() error {
		return a.srv.DeletePolicy(context.Background(), &api.DeletePolicyRequest{Policy: &api.Policy{Name: policyName(p.Name)}, All: true})
	})
	assignment := &api.PolicyAssignment{
		Name: globalRIB, Direction: api.PolicyDirection_EXPORT,
		Policies: []*api.Policy{{Name: policyName(p.Name)}}, DefaultAction: api.RouteAction_ACCEPT,
	}
	if err := a.srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: assignment}); err != nil {
		return fmt.Errorf("adding BGP peer %s: policy assignment: %w", p.Name, err)
	}
	undo = append(undo, func() error {
		return a.srv.DeletePolicyAssignment(context.Background(), &api.DeletePolicyAssignmentRequest{Assignment: assignment})
	})

	// Register the session before the neighbour exists so that its first
	// state change is not dropped.
	a.stateMu.Lock()
	a.byAddr[p.Address.WithZone("")] = p.Name
	a.sessions[p.Name] = &SessionState{State: api.PeerState_IDLE.String(), Since: time.Now()}
	a.dynamic[p.Name] = p.DynamicASN != ""
	a.stateMu.Unlock()
	undo = append(undo, func() error {
		a.stateMu.Lock()
		delete(a.byAddr, p.Address.WithZone(""))
		delete(a.sessions, p.Name)
		delete(a.dynamic, p.Name)
		a.stateMu.Unlock()
		return nil
	})
	if err := a.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
		return fmt.Errorf("adding BGP peer %s: %w", p.Name, err)
	}
	a.peers[p.Name] = p
	a.table.Denied[p.Name] = deny
	if len(classes) > 0 {
		a.table.Classes[p.Name] = classes
	}
	if p.DynamicASN != "" {
		a.log.Info("BGP peer added", "peer", p.Name, "address", p.Address, "dynamicASN", p.DynamicASN)
		return nil
	}
	a.log.Info("BGP peer added", "peer", p.Name, "address", p.Address, "asn", p.PeerASN)
	if p.Interface != "" && !a.cfg.NoIPv4 {
		a.log.Info("IPv4 routes are not announced to this peer: its session runs over an IPv6 link-local address, and herald does not send RFC 5549 next hops", "peer", p.Name, "interface", p.Interface)
	}
	return nil
}

func (a *Announcer) deleteSet(t api.DefinedType, name string) error {
	return a.srv.DeleteDefinedSet(context.Background(), &api.DeleteDefinedSetRequest{
		DefinedSet: &api.DefinedSet{DefinedType: t, Name: name}, All: true,
	})
}

// removePeer deletes the neighbour (GoBGP sends a Cease) and then its
// policy objects.
func (a *Announcer) removePeer(ctx context.Context, p Peer) error {
	err := a.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()})
	if err != nil {
		err = fmt.Errorf("deleting BGP peer %s: %w", p.Name, err)
	}
	// Policy clean-up failures leave only unused objects behind (addPeer
	// replaces the sets if the name comes back), so they are logged, not
	// returned: the peer is gone either way.
	cleanups := []error{
		a.srv.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: globalRIB, Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: policyName(p.Name)}},
		}}),
		a.srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: policyName(p.Name)}, All: true}),
		a.deleteSet(api.DefinedType_NEIGHBOR, neighborSetName(p.Name)),
		a.deleteSet(api.DefinedType_PREFIX, denySetName(p.Name, false)),
		a.deleteSet(api.DefinedType_PREFIX, denySetName(p.Name, true)),
	}
	if p.VRF != "" {
		cleanups = append(cleanups, a.deleteSet(api.DefinedType_PREFIX, nextHopSetName(p.Name)))
	}
	if p.DynamicASN != "" {
		cleanups = append(cleanups,
			a.deleteSet(api.DefinedType_PREFIX, gateSetName(p.Name, false)),
			a.deleteSet(api.DefinedType_PREFIX, gateSetName(p.Name, true)))
	}
	delete(a.gateOpen, p.Name)
	delete(a.refused, p.Name)
	// Deleting the policy deleted the class statements with it.
	for _, cs := range a.table.Classes[p.Name] {
		cleanups = append(cleanups, a.deleteSet(api.DefinedType_PREFIX, className(p.Name, &cs.Class)))
	}
	if cerr := errors.Join(cleanups...); cerr != nil {
		a.log.Warn("cleaning up after a removed BGP peer", "peer", p.Name, "err", cerr)
	}
	delete(a.peers, p.Name)
	delete(a.table.Denied, p.Name)
	delete(a.table.Classes, p.Name)

	a.stateMu.Lock()
	wasUp := false
	if s := a.sessions[p.Name]; s != nil {
		wasUp = s.Up
	}
	delete(a.sessions, p.Name)
	delete(a.dynamic, p.Name)
	if key := p.Address.WithZone(""); a.byAddr[key] == p.Name {
		delete(a.byAddr, key)
	}
	a.stateMu.Unlock()
	a.log.Info("BGP peer removed", "peer", p.Name)
	if wasUp {
		a.notify(p.Name, false)
	}
	return err
}

// advertisedV6 counts the IPv6 routes in the table that peer may receive:
// an interface peer's session carries no others.
func advertisedV6(t *bgpplan.State, peer string) int {
	n := 0
	for pfx, r := range t.Applied {
		if pfx.Addr().Is6() && r.Allows(peer) {
			n++
		}
	}
	return n
}
