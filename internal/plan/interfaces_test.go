package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/heraldlb/herald/internal/allocator"
)

// TestInterfaceDownMovesOnlyItsPools: a node that cannot answer on the
// interface a layer-2 pool names loses that pool's addresses and nothing
// else: its addresses of a pool on the automatic interface, of a pool
// naming another usable interface too, and over BGP stay; a pool with
// several addresses per Service moves only the slot that node had.
func TestInterfaceDownMovesOnlyItsPools(t *testing.T) {
	pools := []Pool{
		{Name: "lan2", Ranges: []allocator.Range{mustRange("203.0.113.0/26")}, L2: &L2Policy{Interfaces: []string{"lan2"}}},
		{Name: "either", Ranges: []allocator.Range{mustRange("203.0.113.64/26")}, L2: &L2Policy{Interfaces: []string{"lan2", "eth1"}}},
		{Name: "auto", Ranges: []allocator.Range{mustRange("198.51.100.0/26")}, L2: &L2Policy{}},
		{Name: "routed", Ranges: []allocator.Range{mustRange("198.51.100.64/26")}, BGP: []*BGPPolicy{{}}},
		{Name: "multi", Ranges: []allocator.Range{mustRange("203.0.113.128/26")}, L2: &L2Policy{Interfaces: []string{"lan2"}}},
	}
	var svcs []Service
	for i := range 20 {
		svcs = append(svcs,
			Service{Key: fmt.Sprintf("ns/lan2-%d", i), Addrs: addrs(fmt.Sprintf("203.0.113.%d", i))},
			Service{Key: fmt.Sprintf("ns/either-%d", i), Addrs: addrs(fmt.Sprintf("203.0.113.%d", 64+i))},
			Service{Key: fmt.Sprintf("ns/auto-%d", i), Addrs: addrs(fmt.Sprintf("198.51.100.%d", i))},
			Service{Key: fmt.Sprintf("ns/routed-%d", i), Addrs: addrs(fmt.Sprintf("198.51.100.%d", 64+i))},
		)
	}
	for i := range 5 {
		svcs = append(svcs, Service{Key: fmt.Sprintf("ns/multi-%d", i), Addrs: addrs(
			fmt.Sprintf("203.0.113.%d", 128+3*i), fmt.Sprintf("203.0.113.%d", 129+3*i), fmt.Sprintf("203.0.113.%d", 130+3*i))})
	}
	nodes := threeNodes()
	l2Before, bgpBefore := owners(nodes, pools, svcs)
	slotsBefore := slotOwners(t, nodes, pools, svcs[len(svcs)-5:])

	off := slices.Clone(nodes)
	off[1].InterfacesDown = []string{"lan2"} // node-b
	l2After, bgpAfter := owners(off, pools, svcs)
	moved := 0
	for a, before := range l2Before {
		after := l2After[a]
		if len(after) != 1 {
			t.Fatalf("%s announced by %v with lan2 down on node-b; want one node", a, after)
		}
		inLan2 := netip.MustParsePrefix("203.0.113.0/26").Contains(a) || netip.MustParsePrefix("203.0.113.128/26").Contains(a)
		switch {
		case inLan2 && after[0] == "node-b":
			t.Errorf("%s (a pool naming only lan2) stays on node-b, whose lan2 is down", a)
		case inLan2 && before[0] == "node-b":
			moved++
		case before[0] != after[0]:
			t.Errorf("%s moved from %s to %s; only addresses node-b had in pools naming only lan2 may move", a, before[0], after[0])
		}
	}
	if moved == 0 {
		t.Fatal("node-b owned no address of the lan2 pools: the test shows nothing")
	}
	for a, before := range bgpBefore {
		if !slices.Equal(before, bgpAfter[a]) {
			t.Errorf("BGP announcers of %s changed from %v to %v; an interface of layer 2 must not touch BGP", a, before, bgpAfter[a])
		}
	}
	// Multi-address Services: only node-b's slot moves.
	slotsAfter := slotOwners(t, off, pools, svcs[len(svcs)-5:])
	for key, before := range slotsBefore {
		for i, o := range before {
			if o != "node-b" && slotsAfter[key][i] != o {
				t.Errorf("%s slot %d moved from %s to %s; only node-b's slot may move", key, i, o, slotsAfter[key][i])
			}
		}
	}

	// A node that could not list every interface down answers on none
	// that a pool names; its automatic-interface addresses stay.
	off[1].InterfacesDown, off[1].InterfacesUnlisted = nil, true
	l2Unlisted, _ := owners(off, pools, svcs)
	for a, o := range l2Unlisted {
		named := netip.MustParsePrefix("203.0.113.0/24").Contains(a)
		if named && o[0] == "node-b" {
			t.Errorf("%s (a pool naming interfaces) is on node-b, which could not list its interfaces down", a)
		}
		if !named && o[0] != l2Before[a][0] {
			t.Errorf("%s (automatic interface) moved from %s to %s", a, l2Before[a][0], o[0])
		}
	}
}
