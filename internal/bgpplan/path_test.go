package bgpplan

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var equateAddr = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func u32(v uint32) *uint32 { return &v }

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{in: "64512:100", want: 64512<<16 | 100},
		{in: "0:0", want: 0},
		{in: "65535:65535", want: 0xFFFFFFFF},
		{in: "no-export", want: 0xFFFFFF01},
		{in: "NO-ADVERTISE", want: 0xFFFFFF02},
		{in: "no-export-subconfed", want: 0xFFFFFF03},
		{in: "no-peer", want: 0xFFFFFF04},
		{in: "blackhole", want: 0xFFFF029A},
		{in: "65536:1", wantErr: true},
		{in: "1:65536", wantErr: true},
		{in: "1", wantErr: true},
		{in: "1:2:3", wantErr: true},
		{in: "-1:2", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := ParseCommunity(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseCommunity(%q) = %#x, %v; want %#x, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseLargeCommunity(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    LargeCommunity
		wantErr bool
	}{
		{in: "64512:1:2", want: LargeCommunity{64512, 1, 2}},
		{in: "4294967295:4294967295:4294967295", want: LargeCommunity{1<<32 - 1, 1<<32 - 1, 1<<32 - 1}},
		{in: "4294967296:1:1", wantErr: true},
		{in: "1:2", wantErr: true},
		{in: "1:2:3:4", wantErr: true},
		{in: "a:b:c", wantErr: true},
	} {
		got, err := ParseLargeCommunity(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseLargeCommunity(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParseCommunity(f *testing.F) {
	for _, s := range []string{"64512:100", "no-export", "65536:1", ":", "1:", "blackhole"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseCommunity(s)
		if err != nil {
			return
		}
		// Whatever parses round-trips through the N:N form.
		back, err := ParseCommunity(fmt.Sprintf("%d:%d", v>>16, v&0xFFFF))
		if err != nil || back != v {
			t.Fatalf("%q → %#x does not round-trip: %#x, %v", s, v, back, err)
		}
	})
}

func FuzzParseLargeCommunity(f *testing.F) {
	for _, s := range []string{"64512:1:2", "1:2", "::", "4294967296:1:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseLargeCommunity(s)
		if err != nil {
			return
		}
		back, err := ParseLargeCommunity(fmt.Sprintf("%d:%d:%d", v.Global, v.Local1, v.Local2))
		if err != nil || back != v {
			t.Fatalf("%q → %v does not round-trip: %v, %v", s, v, back, err)
		}
	})
}

func TestNewRouteNormalises(t *testing.T) {
	r, err := NewRoute(Path{
		Prefix:           netip.MustParsePrefix("::ffff:198.51.100.7/120"),
		Communities:      []string{"2:2", "1:1", "2:2"},
		LargeCommunities: []string{"3:3:3", "1:1:1", "3:3:3"},
		Peers:            []string{"b", "a", "b", ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Route{
		Prefix: netip.MustParsePrefix("198.51.100.0/24"),
		Attrs: Attrs{
			Communities: []uint32{1<<16 | 1, 2<<16 | 2},
			Large:       []LargeCommunity{{1, 1, 1}, {3, 3, 3}},
		},
		Peers: []string{"a", "b"},
	}
	if d := cmp.Diff(want, r, equateAddr); d != "" {
		t.Errorf("NewRoute (-want +got):\n%s", d)
	}
	if _, err := NewRoute(Path{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Communities: []string{"x"}}); err == nil {
		t.Errorf("NewRoute accepted community %q", "x")
	}
	if _, err := NewRoute(Path{}); err == nil {
		t.Errorf("NewRoute accepted a zero prefix")
	}
}
