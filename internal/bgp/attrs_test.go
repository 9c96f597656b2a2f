package bgp

import (
	stdcmp "cmp"
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	api "github.com/osrg/gobgp/v3/api"
)

// heraldObjects lists the names of herald's GoBGP prefix sets and
// statements that contain part.
func heraldObjects(t *testing.T, a *Announcer, part string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	if err := a.srv.ListDefinedSet(ctx, &api.ListDefinedSetRequest{DefinedType: api.DefinedType_PREFIX}, func(d *api.DefinedSet) {
		if strings.Contains(d.Name, part) {
			out = append(out, "set "+d.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.ListStatement(ctx, &api.ListStatementRequest{}, func(s *api.Statement) {
		if strings.Contains(s.Name, part) {
			out = append(out, "statement "+s.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.ListPolicy(ctx, &api.ListPolicyRequest{}, func(p *api.Policy) {
		for _, s := range p.Statements {
			if strings.Contains(s.Name, part) {
				out = append(out, "policy "+p.Name+" statement "+s.Name)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// sortedReceived makes what a router holds comparable: GoBGP's export
// policy appends the communities it adds after the path's own.
func sortedReceived(rib map[netip.Prefix]received) map[netip.Prefix]received {
	for p, r := range rib {
		r.Communities = slices.Sorted(slices.Values(r.Communities))
		slices.SortFunc(r.Large, func(a, b LargeCommunity) int {
			return stdcmp.Or(stdcmp.Compare(a.Global, b.Global), stdcmp.Compare(a.Local1, b.Local1), stdcmp.Compare(a.Local2, b.Local2))
		})
		rib[p] = r
	}
	return rib
}

// TestPerPeerAttributes: one prefix from several paths for different
// peers reaches each router with exactly the attributes of the paths that
// allow it (r1 eBGP, r2 iBGP with local-pref); a change of one path's
// attributes reaches only its router, without a session reset; removing
// paths takes away exactly what they gave.
func TestPerPeerAttributes(t *testing.T) {
	const myASN = 64500
	r1 := newRouter(t, "127.0.0.1", 64601, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	r2 := newRouter(t, "127.0.0.2", myASN, "10.255.0.2", routerNeighbor{addr: heraldAddr, asn: myASN})
	a := startHerald(t, Config{NextHopV4: nhV4, NextHopV6: nhV6})
	ctx := context.Background()
	pfx := netip.MustParsePrefix("198.51.100.1/32")
	pfx6 := netip.MustParsePrefix("2001:db8::1/128")
	everyone := Path{Prefix: pfx, Communities: []string{"64512:100"}, LocalPref: u32(150)}
	for1 := Path{Prefix: pfx, Communities: []string{"64512:1"}, LargeCommunities: []string{"64512:1:1"}, Peers: []string{"r1"}}
	for2 := Path{Prefix: pfx, Communities: []string{"64512:2"}, LargeCommunities: []string{"64512:2:2"}, LocalPref: u32(300), Peers: []string{"r2"}}
	everyone6 := Path{Prefix: pfx6, Communities: []string{"64512:6"}}
	for2v6 := Path{Prefix: pfx6, Communities: []string{"64512:7"}, Peers: []string{"r2"}}
	marker := Path{Prefix: netip.MustParsePrefix("198.51.100.200/32")}
	set := func(paths ...Path) {
		t.Helper()
		if err := a.SetPaths(ctx, append(paths, marker)); err != nil {
			t.Fatalf("SetPaths: %v", err)
		}
	}
	want := func(r *router, v6 bool, w map[netip.Prefix]received) {
		t.Helper()
		if w != nil {
			w[marker.Prefix] = r.rib(false)[marker.Prefix]
		}
		if d := cmp.Diff(w, sortedReceived(r.rib(v6)), cmpopts.EquateEmpty(), equateAddr); d != "" {
			t.Errorf("router %s RIB (v6 %v) (-want +got):\n%s", r.addr, v6, d)
		}
	}
	eBGP := func(comms []uint32, large ...LargeCommunity) received {
		return received{NextHop: nhV4, ASPath: []uint32{myASN}, Communities: comms, Large: large}
	}
	iBGP := func(lp uint32, comms []uint32, large ...LargeCommunity) received {
		return received{NextHop: nhV4, Communities: comms, Large: large, LocalPref: u32(lp)}
	}
	c := func(lo uint32) uint32 { return 64512<<16 | lo }

	// The paths exist before r1 does; r2 comes later: each peer's first
	// UPDATE must already carry its own attributes (nothing would resend).
	set(everyone, for1, for2, everyone6, for2v6)
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r1.peer("r1", myASN)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "r1 has the prefixes", func() bool { return r1.count(false) == 2 && r1.count(true) == 1 })
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r1.peer("r1", myASN), r2.peer("r2", myASN)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "r2 has the prefixes", func() bool { return r2.count(false) == 2 && r2.count(true) == 1 })
	want(r1, false, map[netip.Prefix]received{pfx: eBGP([]uint32{c(1), c(100)}, LargeCommunity{Global: 64512, Local1: 1, Local2: 1})})
	want(r2, false, map[netip.Prefix]received{pfx: iBGP(300, []uint32{c(2), c(100)}, LargeCommunity{Global: 64512, Local1: 2, Local2: 2})})
	r1v6 := r1.rib(true)[pfx6]
	if !slices.Equal(r1v6.Communities, []uint32{c(6)}) {
		t.Errorf("r1 IPv6 communities %v, want [64512:6]", r1v6.Communities)
	}
	if got := slices.Sorted(slices.Values(r2.rib(true)[pfx6].Communities)); !slices.Equal(got, []uint32{c(6), c(7)}) {
		t.Errorf("r2 IPv6 communities %v, want [64512:6 64512:7]", got)
	}
	if got := heraldObjects(t, a, "-attrs-"); len(got) != 3*3 {
		// r1: one IPv4 class; r2: one IPv4, one IPv6 class; each a set,
		// a statement and the statement in the peer's policy.
		t.Errorf("attribute class objects %q, want 9", got)
	}
	up1 := r1.neighbor().GetTimers().GetState().GetUptime().AsTime()
	up2 := r2.neighbor().GetTimers().GetState().GetUptime().AsTime()

	// r1's path changes: r1 gets the change, r2 nothing. The marker,
	// moved to another prefix, bounds the wait for what must not arrive.
	before2 := r2.updatesReceived()
	for1.Communities = []string{"64512:11"}
	set(everyone, for1, for2, everyone6, for2v6)
	waitFor(t, "r1 sees the change", func() bool {
		return slices.Contains(r1.rib(false)[pfx].Communities, c(11))
	})
	marker.Prefix = netip.MustParsePrefix("198.51.100.201/32")
	set(everyone, for1, for2, everyone6, for2v6)
	// Both routers, old marker gone: r1 may get the move after r2.
	waitFor(t, "the new marker at r1 and r2, the old one gone", func() bool {
		for _, r := range []*router{r1, r2} {
			rib := r.rib(false)
			_, gotNew := rib[marker.Prefix]
			_, gotOld := rib[netip.MustParsePrefix("198.51.100.200/32")]
			if !gotNew || gotOld {
				return false
			}
		}
		return true
	})
	want(r1, false, map[netip.Prefix]received{pfx: eBGP([]uint32{c(11), c(100)}, LargeCommunity{Global: 64512, Local1: 1, Local2: 1})})
	want(r2, false, map[netip.Prefix]received{pfx: iBGP(300, []uint32{c(2), c(100)}, LargeCommunity{Global: 64512, Local1: 2, Local2: 2})})
	// The marker's move is two UPDATEs (withdrawal, announcement) at most.
	if got := r2.updatesReceived() - before2; got > 2 {
		t.Errorf("r2 received %d UPDATEs for r1's change and a marker move, want the marker's only", got)
	}
	if !r1.neighbor().GetTimers().GetState().GetUptime().AsTime().Equal(up1) ||
		!r2.neighbor().GetTimers().GetState().GetUptime().AsTime().Equal(up2) {
		t.Errorf("a session was reset")
	}

	// r1's path goes: r1 keeps the prefix with everyone's attributes
	// only, r2 keeps its own; r1's class is deleted.
	set(everyone, for2, everyone6, for2v6)
	waitFor(t, "r1 loses its own attributes", func() bool {
		return slices.Equal(r1.rib(false)[pfx].Communities, []uint32{c(100)})
	})
	want(r1, false, map[netip.Prefix]received{pfx: eBGP([]uint32{c(100)})})
	want(r2, false, map[netip.Prefix]received{pfx: iBGP(300, []uint32{c(2), c(100)}, LargeCommunity{Global: 64512, Local1: 2, Local2: 2})})
	if got := heraldObjects(t, a, "herald-r1-attrs-"); len(got) != 0 {
		t.Errorf("r1's emptied class left %q", got)
	}

	// Everyone's path goes: r1 loses the prefix, r2 keeps exactly its
	// own path's attributes, from one path in the table and no class.
	set(for2, everyone6, for2v6)
	waitFor(t, "r1 loses the prefix", func() bool { _, ok := r1.rib(false)[pfx]; return !ok })
	// r2 may still hold the old route when r1 has lost it: wait for the
	// new one (its communities), then compare it whole.
	waitFor(t, "r2 has the prefix again with its own attributes", func() bool {
		return slices.Equal(r2.rib(false)[pfx].Communities, []uint32{c(2)})
	})
	want(r2, false, map[netip.Prefix]received{pfx: iBGP(300, []uint32{c(2)}, LargeCommunity{Global: 64512, Local1: 2, Local2: 2})})
	if got := heraldObjects(t, a, "-v4-"); len(got) != 0 {
		t.Errorf("IPv4 classes left: %q", got)
	}

	// Removing a peer removes its classes.
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r1.peer("r1", myASN)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if got := heraldObjects(t, a, "herald-r2"); len(got) != 0 {
		t.Errorf("removed peer r2 left %q", got)
	}
	a.mu.Lock()
	_, ok := a.table.Classes["r2"]
	a.mu.Unlock()
	if ok {
		t.Errorf("State.Classes still has removed peer r2")
	}
}
