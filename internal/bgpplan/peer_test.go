package bgpplan

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidatePeers(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.1")
	peers := []Peer{
		{Name: "b", MyASN: 1, PeerASN: 2, Address: a},
		{Name: "a", MyASN: 1, PeerASN: 2, Address: netip.MustParseAddr("::ffff:198.51.100.1")},
		{Name: "c", MyASN: 0, PeerASN: 2, Address: netip.MustParseAddr("198.51.100.3")},
		{Name: "", MyASN: 1, PeerASN: 2, Address: netip.MustParseAddr("198.51.100.4")},
		{Name: "d", MyASN: 1, PeerASN: 2, Address: netip.MustParseAddr("198.51.100.5"), SourceAddress: netip.MustParseAddr("2001:db8::1")},
		{Name: "e", MyASN: 1, PeerASN: 2, Address: netip.MustParseAddr("198.51.100.6"), Port: 1179},
		{Name: "f", MyASN: 1, DynamicASN: DynamicExternal, Address: netip.MustParseAddr("198.51.100.7")},
		{Name: "g", MyASN: 1, PeerASN: 2, DynamicASN: DynamicInternal, Address: netip.MustParseAddr("198.51.100.8")},
		{Name: "h", MyASN: 1, DynamicASN: "ibgp", Address: netip.MustParseAddr("198.51.100.9")},
	}
	got, errs := ValidatePeers(peers)
	if len(got) != 3 || got["a"].Address != a || got["a"].Port != DefaultPort || got["e"].Port != 1179 || got["f"].DynamicASN != DynamicExternal {
		t.Errorf("valid peers = %v, want a (unmapped, port %d), e and f", got, DefaultPort)
	}
	want := []string{"address 198.51.100.1 already used by peer a", "without a name", "peer c: ASNs", "different families",
		"peer g: both a peer ASN and dynamic ASN", `peer h: dynamic ASN "ibgp" is neither`}
	joined := ""
	for _, e := range errs {
		joined += e.Error() + "\n"
	}
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("errors %q lack %q", joined, w)
		}
	}
}

// Interface peers: exactly one of address and interface, no source
// address or VRF with an interface, one peer per interface; an interface
// peer's router may have any address, so it never clashes with an address
// peer.
func TestValidateInterfacePeers(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	peers := []Peer{
		{Name: "a", MyASN: 1, PeerASN: 2, Interface: "eth1"},
		{Name: "b", MyASN: 1, PeerASN: 2, Interface: "eth1"},
		{Name: "c", MyASN: 1, PeerASN: 2, Interface: "eth2", Address: netip.MustParseAddr("2001:db8::1")},
		{Name: "d", MyASN: 1, PeerASN: 2, Interface: "eth3", SourceAddress: netip.MustParseAddr("2001:db8::9")},
		{Name: "e", MyASN: 1, PeerASN: 2, Interface: "eth4", VRF: "red"},
		{Name: "f", MyASN: 1, PeerASN: 2, Interface: "eth0:1"},
		{Name: "g", MyASN: 1, PeerASN: 2, Interface: "a-very-long-name"},
		{Name: "h", MyASN: 1, PeerASN: 2, Address: ll.WithZone("eth5")},
		{Name: "i", MyASN: 1, PeerASN: 2},
		{Name: "j", MyASN: 1, PeerASN: 2, Interface: "eth6"},
		{Name: "k", MyASN: 1, PeerASN: 2, Address: ll},
	}
	got, errs := ValidatePeers(peers)
	if len(got) != 3 || got["a"].Interface != "eth1" || got["j"].Port != DefaultPort || got["k"].Address != ll {
		t.Errorf("valid peers = %v, want a, j and k", got)
	}
	joined := ""
	for _, e := range errs {
		joined += e.Error() + "\n"
	}
	for _, w := range []string{
		"peer b: interface eth1 already used by peer a",
		"peer c: both an address (2001:db8::1) and an interface (eth2)",
		"peer d: a source address with an interface",
		"peer e: a VRF with an interface",
		`peer f: invalid interface name "eth0:1"`,
		`peer g: invalid interface name "a-very-long-name"`,
		"peer h: invalid address fe80::1%eth5",
		"peer i: invalid address invalid IP",
	} {
		if !strings.Contains(joined, w) {
			t.Errorf("errors %q lack %q", joined, w)
		}
	}
}

// The defaults are part of the BGPPeer API: a change is a behaviour change
// for every cluster that leaves the fields unset.
func TestDefaults(t *testing.T) {
	if DefaultPort != 179 || DefaultHoldTime != 90*time.Second || DefaultConnectTime != 5*time.Second {
		t.Errorf("defaults: port %d, hold %v, connect %v", DefaultPort, DefaultHoldTime, DefaultConnectTime)
	}
}

func TestRouterID(t *testing.T) {
	id := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for _, tc := range []struct {
		name    string
		asked   map[string]netip.Addr
		want    netip.Addr
		wantErr string
	}{
		{"none asks", map[string]netip.Addr{"a": {}, "b": {}}, netip.Addr{}, ""},
		{"all that ask agree", map[string]netip.Addr{"a": id("10.0.0.9"), "b": {}, "c": id("10.0.0.9")}, id("10.0.0.9"), ""},
		{"they disagree", map[string]netip.Addr{"a": id("10.0.0.9"), "b": id("10.0.0.7"), "c": id("10.0.0.9")}, netip.Addr{},
			"peers ask for different router IDs, 10.0.0.7 (b) vs 10.0.0.9 (a, c)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RouterID(tc.asked)
			if got != tc.want {
				t.Errorf("RouterID = %v, want %v", got, tc.want)
			}
			if (err == nil) != (tc.wantErr == "") || err != nil && err.Error() != tc.wantErr {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestDynamicASNAccepts(t *testing.T) {
	for _, tc := range []struct {
		d       DynamicASN
		my, per uint32
		want    bool
	}{
		{DynamicInternal, 64500, 64500, true},
		{DynamicInternal, 64500, 64501, false},
		{DynamicExternal, 64500, 64501, true},
		{DynamicExternal, 64500, 64500, false},
	} {
		if got := tc.d.Accepts(tc.my, tc.per); got != tc.want {
			t.Errorf("%s.Accepts(%d, %d) = %v, want %v", tc.d, tc.my, tc.per, got, tc.want)
		}
	}
}
