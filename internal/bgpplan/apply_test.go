package bgpplan

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// model is GoBGP as far as Apply relies on it: one table, an export filter
// per peer applied when a route is sent (deny sets, then the attribute
// classes, which add their attributes), and per peer the prefixes it has
// received with their attributes. It sends what GoBGP sends: a new or
// changed route to every peer whose filter lets it through; nothing when
// a route is replaced by one with the same attributes, nor when a set
// changes; a withdrawal to every peer; the whole table (through the
// filter) on a soft reset; and it never takes a route back from a single
// peer. Every delivery is checked against what the peer may have
// (allowed) and, when the peer did not have the prefix, against the
// attributes it must get (attrsFor, if set); fail makes chosen calls fail.
type model struct {
	t        *testing.T
	rib      map[netip.Prefix]*Route
	deny     map[string]map[netip.Prefix]struct{}
	classes  map[string]map[string]*ClassSet
	held     map[string]map[netip.Prefix]Attrs // what each peer has received
	allowed  func(peer string, pfx netip.Prefix) bool
	attrsFor func(peer string, pfx netip.Prefix) []Attrs // any of these
	fail     func(call string) bool
	calls    []string
	breaches []string
}

func cloneClasses(in map[string]*ClassSet) map[string]*ClassSet {
	out := map[string]*ClassSet{}
	for id, cs := range in {
		out[id] = &ClassSet{Class: cs.Class, Prefixes: maps.Clone(cs.Prefixes)}
	}
	return out
}

func newModel(t *testing.T, s *State) *model {
	m := &model{
		t: t, rib: maps.Clone(s.Applied), deny: map[string]map[netip.Prefix]struct{}{},
		classes: map[string]map[string]*ClassSet{}, held: map[string]map[netip.Prefix]Attrs{},
	}
	for peer, d := range s.Denied {
		m.deny[peer] = maps.Clone(d)
		m.classes[peer] = cloneClasses(s.Classes[peer])
		m.held[peer] = map[netip.Prefix]Attrs{}
		for pfx, r := range s.Applied {
			if _, denied := d[pfx]; !denied {
				m.held[peer][pfx] = m.filtered(peer, r)
			}
		}
	}
	return m
}

func (m *model) call(format string, args ...any) error {
	c := fmt.Sprintf(format, args...)
	m.calls = append(m.calls, c)
	if m.fail != nil && m.fail(c) {
		return errors.New("injected failure")
	}
	return nil
}

func (m *model) breach(format string, args ...any) {
	last := "(start)"
	if len(m.calls) > 0 {
		last = m.calls[len(m.calls)-1]
	}
	m.breaches = append(m.breaches, fmt.Sprintf("after %q: ", last)+fmt.Sprintf(format, args...))
}

// filtered is what peer's filter makes of r: the table's attributes plus
// those of the classes holding the prefix (local-pref: the last class's).
func (m *model) filtered(peer string, r *Route) Attrs {
	a := r.plus(nil)
	n := 0
	for _, id := range slices.Sorted(maps.Keys(m.classes[peer])) {
		cs := m.classes[peer][id]
		if _, ok := cs.Prefixes[r.Prefix]; ok {
			a = a.plus(&cs.Attrs)
			n++
		}
	}
	if n > 1 {
		m.breach("%s is in %d classes of peer %s", r.Prefix, n, peer)
	}
	return a
}

func (m *model) send(peer string, r *Route) {
	if _, denied := m.deny[peer][r.Prefix]; denied {
		return
	}
	if !m.allowed(peer, r.Prefix) {
		m.breach("peer %s received %s", peer, r.Prefix)
	}
	got := m.filtered(peer, r)
	if _, had := m.held[peer][r.Prefix]; !had && m.attrsFor != nil {
		want := m.attrsFor(peer, r.Prefix)
		if !slices.ContainsFunc(want, func(a Attrs) bool { return a.Equal(&got) }) {
			m.breach("peer %s received new prefix %s with %+v, want one of %+v", peer, r.Prefix, got, want)
		}
	}
	m.held[peer][r.Prefix] = got
}

func (m *model) Withdraw(r *Route) error {
	if err := m.call("withdraw %s", r.Prefix); err != nil {
		return err
	}
	delete(m.rib, r.Prefix)
	for _, h := range m.held {
		delete(h, r.Prefix)
	}
	return nil
}

func (m *model) Announce(r *Route) error {
	if err := m.call("announce %s", r.Prefix); err != nil {
		return err
	}
	old, ok := m.rib[r.Prefix]
	m.rib[r.Prefix] = r
	if ok && old.SameAttrs(r) {
		return nil
	}
	for peer := range m.deny {
		m.send(peer, r)
	}
	return nil
}

func (m *model) AddDeny(peer string, v6 bool, pfxs []netip.Prefix) error {
	if err := m.call("deny %s %v", peer, pfxs); err != nil {
		return err
	}
	for _, p := range pfxs {
		m.deny[peer][p] = struct{}{}
	}
	return nil
}

func (m *model) DeleteDeny(peer string, v6 bool, pfxs []netip.Prefix) error {
	if err := m.call("allow %s %v", peer, pfxs); err != nil {
		return err
	}
	for _, p := range pfxs {
		delete(m.deny[peer], p)
	}
	return nil
}

func (m *model) AddToClass(peer string, c *Class, pfxs []netip.Prefix, create bool) error {
	if err := m.call("class add %s %s %v", peer, c.ID(), pfxs); err != nil {
		return err
	}
	id := c.ID()
	cs := m.classes[peer][id]
	if create != (cs == nil) {
		m.breach("class %s of %s: create=%v, exists=%v", id, peer, create, cs != nil)
	}
	if cs == nil {
		cs = &ClassSet{Class: *c, Prefixes: map[netip.Prefix]struct{}{}}
		m.classes[peer][id] = cs
	}
	for _, p := range pfxs {
		if p.Addr().Is6() != c.V6 {
			m.breach("class %s of %s: prefix %s of the other family", id, peer, p)
		}
		cs.Prefixes[p] = struct{}{}
	}
	return nil
}

func (m *model) RemoveFromClass(peer string, c *Class, pfxs []netip.Prefix, last bool) error {
	if err := m.call("class remove %s %s %v", peer, c.ID(), pfxs); err != nil {
		return err
	}
	id := c.ID()
	cs := m.classes[peer][id]
	if cs == nil {
		m.breach("class %s of %s: removing from a class that does not exist", id, peer)
		return nil
	}
	for _, p := range pfxs {
		delete(cs.Prefixes, p)
	}
	if last != (len(cs.Prefixes) == 0) {
		m.breach("class %s of %s: last=%v with %d prefixes left", id, peer, last, len(cs.Prefixes))
	}
	if last {
		delete(m.classes[peer], id)
	}
	return nil
}

func (m *model) SoftResetOut(peer string) error {
	if err := m.call("soft reset %s", peer); err != nil {
		return err
	}
	for _, r := range m.rib {
		m.send(peer, r)
	}
	return nil
}

// check compares what s records with what the model holds, and, when
// Apply succeeded, what every peer holds with what the desired routes
// give it.
func (m *model) check(t *testing.T, s *State, to map[netip.Prefix]*Route, applyErr error, peers []string) {
	t.Helper()
	for _, b := range m.breaches {
		t.Errorf("%s (calls %q)", b, m.calls)
	}
	// A route replaced by one that differs only in Extra is not sent to
	// the table again: the two must match as the table sees them.
	if !maps.EqualFunc(s.Applied, m.rib, func(a, b *Route) bool { return a.SameAttrs(b) && a.SamePeers(b) }) {
		t.Errorf("State.Applied %v, table %v", s.Applied, m.rib)
	}
	for peer := range s.Denied {
		if !maps.Equal(s.Denied[peer], m.deny[peer]) {
			t.Errorf("State.Denied[%s] %v, filter %v", peer, s.Denied[peer], m.deny[peer])
		}
		got, want := s.Classes[peer], m.classes[peer]
		if len(got) != len(want) {
			t.Errorf("State.Classes[%s] has %d classes, filter %d", peer, len(got), len(want))
		}
		for id, cs := range got {
			if len(cs.Prefixes) == 0 {
				t.Errorf("State.Classes[%s][%s] is empty", peer, id)
			}
			if w := want[id]; w == nil || !maps.Equal(cs.Prefixes, w.Prefixes) || !cs.Attrs.Equal(&w.Attrs) {
				t.Errorf("State.Classes[%s][%s] = %+v, filter %+v", peer, id, cs, w)
			}
		}
	}
	for peer := range s.Classes {
		if _, ok := s.Denied[peer]; !ok {
			t.Errorf("State.Classes has peer %s, which is not configured", peer)
		}
	}
	if applyErr != nil {
		return
	}
	// Nothing is left behind: the classes are exactly those of the
	// desired routes.
	final := &State{Applied: to}
	for _, peer := range peers {
		want := map[string]map[netip.Prefix]struct{}{}
		for id, cs := range final.ClassesFor(peer) {
			want[id] = cs.Prefixes
		}
		got := map[string]map[netip.Prefix]struct{}{}
		for id, cs := range s.Classes[peer] {
			got[id] = cs.Prefixes
		}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty(), equateAddr); d != "" {
			t.Errorf("classes of peer %s (-want +got):\n%s", peer, d)
		}
	}
	for _, peer := range peers {
		want := map[netip.Prefix]Attrs{}
		for p, r := range to {
			if a, ok := r.AttrsFor(peer); ok {
				want[p] = a
			}
		}
		if d := cmp.Diff(want, m.held[peer], cmpopts.EquateEmpty(), equateAddr); d != "" {
			t.Errorf("peer %s holds (-want +got):\n%s\ncalls %q", peer, d, m.calls)
		}
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func route(p string, peers ...string) *Route {
	r, err := NewRoute(Path{Prefix: pfx(p), Peers: peers})
	if err != nil {
		panic(err)
	}
	return r
}

func withCommunity(r *Route, c uint32) *Route {
	cp := *r
	cp.Communities = []uint32{c}
	return &cp
}

func routes(rs ...*Route) map[netip.Prefix]*Route {
	out := map[netip.Prefix]*Route{}
	for _, r := range rs {
		out[r.Prefix] = r
	}
	return out
}

// p is a Path for prefix pfx with one community, for peers (all if none).
func p(pfx, community string, peers ...string) Path {
	return Path{Prefix: netip.MustParsePrefix(pfx), Communities: []string{community}, Peers: peers}
}

func paths(ps ...Path) map[netip.Prefix]*Route {
	rs, errs := Routes(ps)
	if len(errs) > 0 {
		panic(errs)
	}
	return rs
}

// settled is the state Apply leaves behind when every call succeeds.
func settled(t *testing.T, applied map[netip.Prefix]*Route, peers ...string) *State {
	t.Helper()
	s := NewState()
	for _, p := range peers {
		s.Denied[p] = map[netip.Prefix]struct{}{}
	}
	m := newModel(t, s)
	m.allowed = func(string, netip.Prefix) bool { return true }
	if err := s.Apply(applied, m); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestApplyNeverSendsAForbiddenPrefix replays Apply against the model: no
// peer may receive a prefix that neither the old nor the new state lets it
// have, and once Apply succeeds every peer holds exactly what the desired
// state allows it. With failures injected, Apply must still never leak,
// and what it records must be what the model holds.
func TestApplyNeverSendsAForbiddenPrefix(t *testing.T) {
	const a, b = "198.51.100.1/32", "198.51.100.2/32"
	const v6 = "2001:db8::1/128"
	for _, tc := range []struct {
		name     string
		peers    []string
		from, to map[netip.Prefix]*Route
		fail     string // calls with this prefix fail
		wantErr  bool
		resets   []string // when set, exactly these peers get a soft reset
		noClass  bool     // no attribute class call at all
	}{
		{name: "new route for one peer", peers: []string{"r1", "r2"},
			from: routes(), to: routes(route(a, "r1"))},
		{name: "a peer loses a route", peers: []string{"r1", "r2"},
			from: routes(route(a)), to: routes(route(a, "r1"))},
		{name: "a peer gains a route with the same attributes", peers: []string{"r1", "r2"},
			from: routes(route(a, "r1")), to: routes(route(a, "r1", "r2"))},
		{name: "a peer gains a route with new attributes", peers: []string{"r1", "r2"},
			from: routes(route(a, "r1")), to: routes(withCommunity(route(a, "r1", "r2"), 7))},
		{name: "the route moves to the other peer", peers: []string{"r1", "r2"},
			from: routes(route(a, "r1"), route(b)), to: routes(route(a, "r2"), route(b, "r1"))},
		{name: "a route is withdrawn", peers: []string{"r1", "r2"},
			from: routes(route(a, "r2"), route(v6)), to: routes(route(v6, "r2"))},
		{name: "restricted to a peer that is not configured", peers: []string{"r1"},
			from: routes(route(a)), to: routes(route(a, "gone"))},
		{name: "filter update fails: the route is held back", peers: []string{"r1", "r2"},
			from: routes(), to: routes(route(a, "r1"), route(b)), fail: "deny r2", wantErr: true},
		{name: "withdrawal fails: the route is not re-announced", peers: []string{"r1", "r2"},
			from: routes(route(a)), to: routes(route(a, "r1")), fail: "withdraw " + a, wantErr: true},
		{name: "announcement fails", peers: []string{"r1", "r2"},
			from: routes(route(a)), to: routes(withCommunity(route(a), 9), route(b, "r2")), fail: "announce " + b, wantErr: true},
		{name: "re-allowing fails: the peer still does not get it", peers: []string{"r1", "r2"},
			from: routes(route(a, "r1")), to: routes(route(a)), fail: "allow r2", wantErr: true},

		// Several Paths for one prefix.
		{name: "same peers: one path, no classes", peers: []string{"r1", "r2"},
			from: routes(), to: paths(p(a, "1:1", "r1", "r2"), p(a, "2:2", "r1", "r2")), noClass: true},
		{name: "new prefix with per-peer attributes", peers: []string{"r1", "r2", "r3"},
			from: routes(), to: paths(p(a, "1:1", "r1"), p(a, "2:2", "r2"), p(v6, "6:6"), p(v6, "6:7", "r2"))},
		{name: "a peer's extra attributes change", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1"), p(a, "2:2", "r2"), p(b, "1:1")), to: paths(p(a, "1:1"), p(a, "2:3", "r2"), p(b, "1:1")),
			resets: []string{"r2"}},
		{name: "a peer loses its extra attributes", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1"), p(a, "2:2", "r2")), to: paths(p(a, "1:1")), resets: []string{"r2"}},
		{name: "a peer gains extra attributes", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1")), to: paths(p(a, "1:1"), p(a, "2:2", "r1")), resets: []string{"r1"}},
		{name: "the table's attributes change with the extra ones: no reset", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1", "r1"), p(a, "2:2", "r2")), to: paths(p(a, "1:1", "r1"), p(a, "2:3", "r2"), p(a, "9:9", "r1", "r2")),
			resets: []string{}},
		{name: "one of two paths goes: the other peer keeps its own", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1", "r1"), p(a, "2:2", "r2")), to: paths(p(a, "2:2", "r2"))},
		{name: "a peer gains the prefix with extra attributes", peers: []string{"r1", "r2", "r3"},
			from: paths(p(a, "1:1", "r1"), p(a, "2:2", "r2")), to: paths(p(a, "1:1", "r1"), p(a, "2:2", "r2", "r3"))},
		{name: "the prefix goes: its classes go", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1", "r1"), p(a, "2:2", "r2"), p(b, "1:1", "r1"), p(b, "2:2", "r2")), to: paths(p(b, "1:1", "r1"), p(b, "2:2", "r2"))},
		{name: "class update fails: the new prefix is held back", peers: []string{"r1", "r2"},
			from: routes(), to: paths(p(a, "1:1", "r1"), p(a, "2:2", "r2"), p(b, "1:1")), fail: "class add r2", wantErr: true},
		{name: "leaving the old class fails: no reset with the wrong attributes", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1"), p(a, "2:2", "r2")), to: paths(p(a, "1:1"), p(a, "2:3", "r2")), fail: "class remove r2", wantErr: true,
			resets: []string{}},
		{name: "leaving the old class fails: the changed route is held back", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1"), p(a, "2:2", "r2")), to: paths(p(a, "1:5"), p(a, "2:3", "r2")), fail: "class remove r2", wantErr: true},
		{name: "joining the new class fails on an announced prefix", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1"), p(a, "2:2", "r2")), to: paths(p(a, "1:1"), p(a, "2:3", "r2")), fail: "class add r2", wantErr: true,
			resets: []string{}},
		{name: "withdrawal fails: the classes stay", peers: []string{"r1", "r2"},
			from: paths(p(a, "1:1"), p(a, "2:2", "r2")), to: paths(p(a, "1:1", "r1")), fail: "withdraw " + a, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := settled(t, tc.from, tc.peers...)
			m := newModel(t, s)
			m.allowed = func(peer string, p netip.Prefix) bool {
				old, inOld := tc.from[p]
				r, inNew := tc.to[p]
				return inOld && old.Allows(peer) || inNew && r.Allows(peer)
			}
			m.attrsFor = func(peer string, p netip.Prefix) []Attrs { return receives(peer, tc.to[p]) }
			if tc.fail != "" {
				m.fail = func(call string) bool { return strings.HasPrefix(call, tc.fail) }
			}
			err := s.Apply(tc.to, m)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Apply error = %v, want error: %v (calls %q)", err, tc.wantErr, m.calls)
			}
			m.check(t, s, tc.to, err, tc.peers)
			var resets []string
			for _, c := range m.calls {
				if peer, ok := strings.CutPrefix(c, "soft reset "); ok {
					resets = append(resets, peer)
				}
				if tc.noClass && strings.HasPrefix(c, "class ") {
					t.Errorf("call %q, want no class calls", c)
				}
			}
			if tc.resets != nil && !slices.Equal(resets, tc.resets) {
				t.Errorf("soft resets %q, want %q (calls %q)", resets, tc.resets, m.calls)
			}
		})
	}
}

// receives is what peer may receive of r: nothing if r is nil or does
// not allow it.
func receives(peer string, r *Route) []Attrs {
	if r == nil {
		return nil
	}
	if a, ok := r.AttrsFor(peer); ok {
		return []Attrs{a}
	}
	return nil
}

// TestApplyRandom replays random sequences of path sets, with random
// calls failing, against one model: no peer ever receives a prefix
// neither the table nor the desired routes allow it, nor a prefix it did
// not have with attributes other than those of the route herald means to
// have there; State matches the model after every Apply, and one Apply
// without failures brings every peer exactly its desired routes and
// leaves no class behind.
func TestApplyRandom(t *testing.T) {
	prefixes := []string{"198.51.100.1/32", "198.51.100.2/32", "2001:db8::1/128"}
	names := []string{"r1", "r2", "r3", "gone"}
	peers := names[:3]
	communities := []string{"1:1", "2:2", "3:3"}
	rng := rand.New(rand.NewPCG(1, 2))
	randomPaths := func() []Path {
		var out []Path
		for _, pf := range prefixes {
			for range rng.IntN(4) {
				path := Path{Prefix: netip.MustParsePrefix(pf)}
				for _, c := range communities {
					if rng.IntN(3) == 0 {
						path.Communities = append(path.Communities, c)
					}
				}
				if rng.IntN(3) == 0 {
					path.LargeCommunities = []string{fmt.Sprintf("1:2:%d", rng.IntN(2))}
				}
				if rng.IntN(2) == 0 {
					path.LocalPref = u32(uint32(100 * (1 + rng.IntN(3))))
				}
				if rng.IntN(3) > 0 {
					for _, n := range names {
						if rng.IntN(2) == 0 {
							path.Peers = append(path.Peers, n)
						}
					}
				}
				out = append(out, path)
			}
		}
		return out
	}
	for run := range 300 {
		s := NewState()
		for _, p := range peers {
			s.Denied[p] = map[netip.Prefix]struct{}{}
		}
		m := newModel(t, s)
		for step := range 8 {
			to := paths(randomPaths()...)
			before := maps.Clone(s.Applied)
			m.allowed = func(peer string, p netip.Prefix) bool {
				return before[p] != nil && before[p].Allows(peer) || to[p] != nil && to[p].Allows(peer)
			}
			m.attrsFor = func(peer string, p netip.Prefix) []Attrs {
				return append(receives(peer, to[p]), receives(peer, s.Applied[p])...)
			}
			failing := step < 7 && rng.IntN(2) == 0
			m.fail = func(string) bool { return failing && rng.IntN(5) == 0 }
			m.calls = nil
			err := s.Apply(to, m)
			if failing {
				m.check(t, s, to, errors.New("failures injected"), peers)
			} else {
				if err != nil {
					t.Fatalf("run %d step %d: Apply without failures: %v (calls %q)", run, step, err, m.calls)
				}
				m.check(t, s, to, nil, peers)
			}
			if t.Failed() {
				for _, pf := range prefixes {
					pp := netip.MustParsePrefix(pf)
					t.Logf("%s before %+v to %+v applied %+v", pp, before[pp], to[pp], s.Applied[pp])
				}
				t.Logf("err %v classes %+v resend %v", err, s.Classes["r1"], s.resend)
				t.Fatalf("run %d step %d", run, step)
			}
		}
	}
}

// reversed is an Executor whose Apply would announce before filtering:
// the model must catch it, or the test above proves nothing.
type reversed struct {
	*model
	pending []func()
}

func (r *reversed) AddDeny(peer string, v6 bool, pfxs []netip.Prefix) error {
	r.pending = append(r.pending, func() { _ = r.model.AddDeny(peer, v6, pfxs) })
	return nil
}

func TestModelCatchesAnnouncingBeforeFiltering(t *testing.T) {
	s := settled(t, routes(), "r1", "r2")
	m := newModel(t, s)
	to := routes(route("198.51.100.1/32", "r1"))
	m.allowed = func(peer string, p netip.Prefix) bool { return to[p] != nil && to[p].Allows(peer) }
	x := &reversed{model: m}
	if err := s.Apply(to, x); err != nil {
		t.Fatal(err)
	}
	for _, f := range x.pending {
		f()
	}
	if len(m.breaches) == 0 {
		t.Fatalf("announcing before the filter update went unnoticed (calls %q)", m.calls)
	}
}

func TestDenyForAndAdvertised(t *testing.T) {
	s := settled(t, routes(route("198.51.100.1/32", "r1"), route("198.51.100.2/32")), "r1")
	if got := slices.SortedFunc(maps.Keys(s.DenyFor("r2")), netip.Prefix.Compare); !slices.Equal(got, []netip.Prefix{pfx("198.51.100.1/32")}) {
		t.Errorf("DenyFor(r2) = %v", got)
	}
	if n := s.Advertised("r1"); n != 2 {
		t.Errorf("Advertised(r1) = %d, want 2", n)
	}
	if n := s.Advertised("r2"); n != 1 {
		t.Errorf("Advertised(r2) = %d, want 1", n)
	}
}
