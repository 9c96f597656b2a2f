package cpvip

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseVIPs(t *testing.T) {
	good := map[string][]string{
		"198.51.100.100":                   {"198.51.100.100"},
		" 198.51.100.100 , 2001:db8::100 ": {"198.51.100.100", "2001:db8::100"},
		"2001:db8::100":                    {"2001:db8::100"},
		"::ffff:198.51.100.100":            {"198.51.100.100"},
		"10.0.0.1":                         {"10.0.0.1"},
	}
	for in, want := range good {
		got, err := ParseVIPs(in)
		if err != nil {
			t.Errorf("ParseVIPs(%q): %v", in, err)
			continue
		}
		var gs []string
		for _, a := range got {
			gs = append(gs, a.String())
		}
		if !slices.Equal(gs, want) {
			t.Errorf("ParseVIPs(%q) = %v, want %v", in, gs, want)
		}
	}
	for _, in := range []string{"", ",", "vip", "198.51.100.100,198.51.100.101", "2001:db8::1,2001:db8::2", "127.0.0.1", "0.0.0.0", "224.0.0.1", "fe80::1", "fe80::1%eth0", "198.51.100.0/24"} {
		if got, err := ParseVIPs(in); err == nil {
			t.Errorf("ParseVIPs(%q) = %v, want an error", in, got)
		}
	}
}

func TestParsePeers(t *testing.T) {
	got, err := ParsePeers("198.51.100.11, 198.51.100.12:8000,[2001:db8::13]:7000,2001:db8::14,", 7948)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("198.51.100.11:7948"), netip.MustParseAddrPort("198.51.100.12:8000"),
		netip.MustParseAddrPort("[2001:db8::13]:7000"), netip.MustParseAddrPort("[2001:db8::14]:7948"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParsePeers = %v, want %v", got, want)
	}
	for _, in := range []string{"node-1", "198.51.100.11:0", "198.51.100.11:70000", "198.51.100.11:x", "[fe80::1%eth0]:7948"} {
		if _, err := ParsePeers(in, 7948); err == nil {
			t.Errorf("ParsePeers(%q) accepted", in)
		}
	}
}

func TestCheckSettings(t *testing.T) {
	vips := []netip.Addr{netip.MustParseAddr("198.51.100.100")}
	bind := netip.MustParseAddr("198.51.100.11")
	if err := CheckSettings(vips, bind, 7948, 7946); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
	if err := CheckSettings(vips, bind, 7946, 7946); err == nil {
		t.Error("the Service speakers' memberlist port was accepted")
	}
	if err := CheckSettings(vips, vips[0], 7948, 7946); err == nil {
		t.Error("a VIP equal to the node's own address was accepted")
	}
}

func TestChooseBind(t *testing.T) {
	peers, _ := ParsePeers("198.51.100.11,198.51.100.12,198.51.100.13", 7948)
	local := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	got, err := ChooseBind(peers, local("127.0.0.1", "::1", "198.51.100.12", "10.0.0.1"))
	if err != nil || got != netip.MustParseAddr("198.51.100.12") {
		t.Errorf("ChooseBind = %v, %v; want 198.51.100.12", got, err)
	}
	if _, err := ChooseBind(peers, local("127.0.0.1", "10.0.0.1")); err == nil {
		t.Error("no local peer address: accepted")
	}
	if _, err := ChooseBind(peers, local("198.51.100.11", "198.51.100.12")); err == nil {
		t.Error("two local peer addresses: accepted")
	}
}

func TestCheckPeers(t *testing.T) {
	bind := netip.MustParseAddr("198.51.100.11")
	ok, _ := ParsePeers("198.51.100.11,198.51.100.12:8000", 7948)
	if err := CheckPeers(ok, bind, 7948); err != nil {
		t.Errorf("valid peers refused: %v", err)
	}
	for _, in := range []string{"2001:db8::12", "198.51.100.11:8000"} {
		ps, _ := ParsePeers(in, 7948)
		if err := CheckPeers(ps, bind, 7948); err == nil {
			t.Errorf("CheckPeers(%s) accepted", in)
		}
	}
}
