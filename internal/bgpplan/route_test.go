package bgpplan

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func c(hi, lo uint32) uint32 { return hi<<16 | lo }

// TestRoutesPerPeerAttributes: a peer receives a prefix when one of its
// Paths allows the peer, with the communities of exactly the Paths that
// allow it and the highest of their local-prefs.
func TestRoutesPerPeerAttributes(t *testing.T) {
	pfx := netip.MustParsePrefix("198.51.100.1/32")
	type got struct {
		Attrs Attrs
		OK    bool
	}
	for _, tc := range []struct {
		name      string
		paths     []Path
		want      map[string]got // r1, r2, r3
		wantPeers []string
		noExtra   bool // one path in the table carries it all
	}{
		{
			name: "same peers: merged as one path",
			paths: []Path{
				{Peers: []string{"r2", "r1"}, LocalPref: u32(100), Communities: []string{"1:1"}},
				{Peers: []string{"r1", "r2"}, LocalPref: u32(200), Communities: []string{"2:2"}, LargeCommunities: []string{"1:2:3"}},
			},
			want: map[string]got{
				"r1": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, Large: []LargeCommunity{{1, 2, 3}}, LocalPref: 200, HasLocalPref: true}, true},
				"r2": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, Large: []LargeCommunity{{1, 2, 3}}, LocalPref: 200, HasLocalPref: true}, true},
			},
			wantPeers: []string{"r1", "r2"}, noExtra: true,
		},
		{
			name: "every peer twice: merged as one path",
			paths: []Path{
				{Communities: []string{"1:1"}},
				{LocalPref: u32(50), Communities: []string{"2:2"}},
			},
			want: map[string]got{
				"r1": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, LocalPref: 50, HasLocalPref: true}, true},
				"r2": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, LocalPref: 50, HasLocalPref: true}, true},
				"r3": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, LocalPref: 50, HasLocalPref: true}, true},
			},
			noExtra: true,
		},
		{
			name: "restricted to different peers",
			paths: []Path{
				{Peers: []string{"r2"}, LocalPref: u32(100), Communities: []string{"1:1"}},
				{Peers: []string{"r1"}, LocalPref: u32(200), Communities: []string{"1:1", "2:2"}},
			},
			want: map[string]got{
				"r1": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, LocalPref: 200, HasLocalPref: true}, true},
				"r2": {Attrs{Communities: []uint32{c(1, 1)}, LocalPref: 100, HasLocalPref: true}, true},
			},
			wantPeers: []string{"r1", "r2"},
		},
		{
			name: "every peer plus one",
			paths: []Path{
				{Peers: []string{"r2"}, Communities: []string{"2:2"}, LargeCommunities: []string{"1:2:3"}},
				{LocalPref: u32(50), Communities: []string{"1:1"}},
			},
			want: map[string]got{
				"r1": {Attrs{Communities: []uint32{c(1, 1)}, LocalPref: 50, HasLocalPref: true}, true},
				"r2": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, Large: []LargeCommunity{{1, 2, 3}}, LocalPref: 50, HasLocalPref: true}, true},
				"r3": {Attrs{Communities: []uint32{c(1, 1)}, LocalPref: 50, HasLocalPref: true}, true},
			},
		},
		{
			name: "overlapping peers; local-pref on one side only",
			paths: []Path{
				{Peers: []string{"r1", "r2"}, Communities: []string{"1:1"}},
				{Peers: []string{"r2", "r3"}, Communities: []string{"2:2"}, LocalPref: u32(300)},
			},
			want: map[string]got{
				"r1": {Attrs{Communities: []uint32{c(1, 1)}}, true},
				"r2": {Attrs{Communities: []uint32{c(1, 1), c(2, 2)}, LocalPref: 300, HasLocalPref: true}, true},
				"r3": {Attrs{Communities: []uint32{c(2, 2)}, LocalPref: 300, HasLocalPref: true}, true},
			},
			wantPeers: []string{"r1", "r2", "r3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.paths {
				tc.paths[i].Prefix = pfx
			}
			rs, errs := Routes(tc.paths)
			if len(errs) > 0 || len(rs) != 1 {
				t.Fatalf("Routes = %v, %v", rs, errs)
			}
			r := rs[pfx]
			if d := cmp.Diff(tc.wantPeers, r.Peers); d != "" {
				t.Errorf("peers (-want +got):\n%s", d)
			}
			if tc.noExtra && r.Extra != nil {
				t.Errorf("Extra = %v, want none", r.Extra)
			}
			for _, peer := range []string{"r1", "r2", "r3"} {
				a, ok := r.AttrsFor(peer)
				if d := cmp.Diff(tc.want[peer], got{a, ok}, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("%s receives (-want +got):\n%s", peer, d)
				}
			}
			// Nothing a peer receives is beyond the Paths that allow it.
			for name, e := range r.Extra {
				if !r.Allows(name) || e.IsZero() {
					t.Errorf("Extra[%s] = %+v on a route that allows it: %v", name, e, r.Allows(name))
				}
			}
		})
	}
}

func TestClassID(t *testing.T) {
	a := Class{Attrs: Attrs{Communities: []uint32{1}}}
	b := Class{Attrs: Attrs{Communities: []uint32{1}}, V6: true}
	d := Class{Attrs: Attrs{Communities: []uint32{1}, LocalPref: 1, HasLocalPref: true}}
	e := Class{Attrs: Attrs{Large: []LargeCommunity{{0, 0, 1}}}}
	ids := map[string]bool{a.ID(): true, b.ID(): true, d.ID(): true, e.ID(): true}
	if len(ids) != 4 {
		t.Errorf("class IDs collide: %v", ids)
	}
	if a2 := (Class{Attrs: Attrs{Communities: []uint32{1}}}); a2.ID() != a.ID() {
		t.Errorf("the same class has two IDs")
	}
}
