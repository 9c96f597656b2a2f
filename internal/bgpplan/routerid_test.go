package bgpplan

import (
	"net/netip"
	"testing"
)

func TestDerivedRouterID(t *testing.T) {
	for _, tc := range []struct {
		v6, node, want string
	}{
		{"2001:db8:100::14", "node4", "0.0.0.20"},
		{"2001:db8::a00:114", "node4", "10.0.1.20"},
		{"2001:db8::5054:ff:fe12:3456", "n", "254.18.52.86"}, // SLAAC tail
	} {
		if got := DerivedRouterID(netip.MustParseAddr(tc.v6), tc.node); got.String() != tc.want {
			t.Errorf("%s: %v, want %s", tc.v6, got, tc.want)
		}
	}
	// A zero tail (or no IPv6 address at all) falls back to the name:
	// stable, non-zero, and different for different nodes.
	a := DerivedRouterID(netip.MustParseAddr("2001:db8::"), "node-a")
	b := DerivedRouterID(netip.Addr{}, "node-b")
	if !a.Is4() || a.IsUnspecified() || !b.Is4() || b.IsUnspecified() || a == b {
		t.Errorf("name-derived IDs %v and %v: want two different non-zero IPv4 values", a, b)
	}
	if again := DerivedRouterID(netip.MustParseAddr("2001:db8::"), "node-a"); again != a {
		t.Errorf("not stable: %v then %v", a, again)
	}
}
