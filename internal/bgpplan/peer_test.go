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
	}
	got, errs := ValidatePeers(peers)
	if len(got) != 2 || got["a"].Address != a || got["a"].Port != DefaultPort || got["e"].Port != 1179 {
		t.Errorf("valid peers = %v, want a (unmapped, port %d) and e", got, DefaultPort)
	}
	want := []string{"address 198.51.100.1 already used by peer a", "without a name", "peer c: ASNs", "different families"}
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
