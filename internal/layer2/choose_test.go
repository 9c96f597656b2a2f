package layer2

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChooseInterfaces(t *testing.T) {
	pfx := netip.MustParsePrefix
	// A typical node: eth0 and eth1 bonded into bond0, bond0 in bridge br0
	// carrying the node network; eth2 on a second subnet; a VRF member; a
	// down link; loopback with a /32 on it.
	st := &netState{
		Links: []link{
			{Index: 1, Name: "lo", Kind: "device", Up: true, Loopback: true, Prefixes: []netip.Prefix{pfx("127.0.0.1/8"), pfx("198.51.100.250/32"), pfx("::1/128")}},
			{Index: 2, Name: "eth0", Kind: "device", Up: true, Master: 4},
			{Index: 3, Name: "eth1", Kind: "device", Up: true, Master: 4},
			{Index: 4, Name: "bond0", Kind: "bond", Up: true, Master: 5},
			{Index: 5, Name: "br0", Kind: "bridge", Up: true, Prefixes: []netip.Prefix{pfx("198.51.100.10/24"), pfx("2001:db8:100::10/64"), pfx("fe80::1/64")}},
			{Index: 6, Name: "eth2", Kind: "device", Up: true, Prefixes: []netip.Prefix{pfx("203.0.113.10/25"), pfx("198.51.100.130/26")}},
			{Index: 7, Name: "eth3", Kind: "device", Up: false, Prefixes: []netip.Prefix{pfx("203.0.113.200/25")}},
			{Index: 8, Name: "vrf-red", Kind: "vrf", Up: true},
			{Index: 9, Name: "eth4", Kind: "device", Up: true, Master: 8, Prefixes: []netip.Prefix{pfx("2001:db8:300::1/64")}},
			{Index: 10, Name: "eth5", Kind: "device", Up: true},
			{Index: 11, Name: "kube-ipvs0", Kind: "dummy", Up: false, Prefixes: []netip.Prefix{pfx("203.0.113.99/32")}},
		},
		Routes: []defaultRoute{
			{V6: false, LinkIndex: 6, Priority: 100},
			{V6: false, LinkIndex: 5, Priority: 50},
			{V6: false, LinkIndex: 7, Priority: 1}, // link down
			{V6: true, LinkIndex: 10, Priority: 1024},
		},
	}
	tests := []struct {
		name   string
		addr   string
		wanted []string
		want   []string
	}{
		{"connected subnet on a bridge", "198.51.100.200", nil, []string{"br0"}},
		{"IPv6 connected subnet on a bridge", "2001:db8:100::200", nil, []string{"br0"}},
		{"most specific subnet wins", "198.51.100.140", nil, []string{"eth2"}},
		{"second subnet", "203.0.113.20", nil, []string{"eth2"}},
		{"subnet on a down link: fall back to default route", "203.0.113.140", nil, []string{"br0"}},
		{"VRF member is used", "2001:db8:300::99", nil, []string{"eth4"}},
		{"no subnet: lowest-metric default route of the family", "203.0.113.250", nil, []string{"br0"}},
		{"IPv6 default route", "2001:db8:999::1", nil, []string{"eth5"}},
		{"host address on a link is not a subnet", "198.51.100.250", nil, []string{"br0"}},
		{"IPv4-mapped IPv6 is IPv4", "::ffff:198.51.100.200", nil, []string{"br0"}},
		{"explicit interfaces", "198.51.100.200", []string{"eth2", "br0"}, []string{"br0", "eth2"}},
		{"explicit bond slave means its bridge", "198.51.100.200", []string{"eth0", "eth1"}, []string{"br0"}},
		{"explicit but down or missing: nothing", "198.51.100.200", []string{"eth3", "nope"}, nil},
		{"explicit loopback: nothing", "198.51.100.200", []string{"lo"}, nil},
		{"explicit wins over subnet", "203.0.113.20", []string{"eth5"}, []string{"eth5"}},
		{"invalid address", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}
			got := chooseInterfaces(st, addr, tt.wanted)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("chooseInterfaces(%s, %v) (-want +got):\n%s", tt.addr, tt.wanted, diff)
			}
		})
	}

	t.Run("no default route of the family", func(t *testing.T) {
		st := &netState{Links: []link{{Index: 2, Name: "eth0", Up: true, Prefixes: []netip.Prefix{pfx("198.51.100.1/24")}}},
			Routes: []defaultRoute{{V6: false, LinkIndex: 2}}}
		if got := chooseInterfaces(st, netip.MustParseAddr("2001:db8::1"), nil); got != nil {
			t.Errorf("got %v, want nil", got)
		}
	})
	t.Run("master loop does not hang", func(t *testing.T) {
		st := &netState{Links: []link{
			{Index: 1, Name: "a", Kind: "bridge", Up: true, Master: 2},
			{Index: 2, Name: "b", Kind: "bridge", Up: true, Master: 1, Prefixes: []netip.Prefix{pfx("198.51.100.1/24")}},
		}}
		_ = chooseInterfaces(st, netip.MustParseAddr("198.51.100.2"), nil)
	})
}
