package bgpplan

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// model is GoBGP as far as Apply relies on it: one table, an export filter
// per peer applied when a route is sent, and per peer the routes it has
// received. It sends what GoBGP sends: a new or changed route to every
// peer whose filter lets it through; nothing when a route is replaced by
// one with the same attributes; a withdrawal to every peer; the whole
// table (through the filter) on a soft reset; and it never takes a route
// back from a single peer. Every delivery is checked against what the
// peer may have (allowed); fail makes chosen calls fail.
type model struct {
	t        *testing.T
	rib      map[netip.Prefix]*Route
	deny     map[string]map[netip.Prefix]struct{}
	held     map[string]map[netip.Prefix]*Route // what each peer has received
	allowed  func(peer string, pfx netip.Prefix) bool
	fail     func(call string) bool
	calls    []string
	breaches []string
}

func newModel(t *testing.T, s *State) *model {
	m := &model{t: t, rib: maps.Clone(s.Applied), deny: map[string]map[netip.Prefix]struct{}{}, held: map[string]map[netip.Prefix]*Route{}}
	for peer, d := range s.Denied {
		m.deny[peer] = maps.Clone(d)
		m.held[peer] = map[netip.Prefix]*Route{}
		for pfx, r := range s.Applied {
			if _, denied := d[pfx]; !denied {
				m.held[peer][pfx] = r
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

func (m *model) send(peer string, r *Route) {
	if _, denied := m.deny[peer][r.Prefix]; denied {
		return
	}
	if !m.allowed(peer, r.Prefix) {
		m.breaches = append(m.breaches, fmt.Sprintf("after %q peer %s received %s", m.calls[len(m.calls)-1], peer, r.Prefix))
	}
	m.held[peer][r.Prefix] = r
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

func (m *model) SoftResetOut(peer string) error {
	if err := m.call("soft reset %s", peer); err != nil {
		return err
	}
	for _, r := range m.rib {
		m.send(peer, r)
	}
	return nil
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := settled(t, tc.from, tc.peers...)
			m := newModel(t, s)
			m.allowed = func(peer string, p netip.Prefix) bool {
				old, inOld := tc.from[p]
				r, inNew := tc.to[p]
				return inOld && old.Allows(peer) || inNew && r.Allows(peer)
			}
			if tc.fail != "" {
				m.fail = func(call string) bool { return strings.HasPrefix(call, tc.fail) }
			}
			err := s.Apply(tc.to, m)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Apply error = %v, want error: %v (calls %q)", err, tc.wantErr, m.calls)
			}
			for _, b := range m.breaches {
				t.Errorf("%s (calls %q)", b, m.calls)
			}
			// What Apply records is what the table and filters hold.
			if !maps.Equal(s.Applied, m.rib) {
				t.Errorf("State.Applied %v, table %v", s.Applied, m.rib)
			}
			for peer := range s.Denied {
				if !maps.Equal(s.Denied[peer], m.deny[peer]) {
					t.Errorf("State.Denied[%s] %v, filter %v", peer, s.Denied[peer], m.deny[peer])
				}
			}
			if err != nil {
				return
			}
			for _, peer := range tc.peers {
				var want, got []netip.Prefix
				for p, r := range tc.to {
					if r.Allows(peer) {
						want = append(want, p)
					}
				}
				for p := range m.held[peer] {
					got = append(got, p)
				}
				slices.SortFunc(want, netip.Prefix.Compare)
				slices.SortFunc(got, netip.Prefix.Compare)
				if !slices.Equal(want, got) {
					t.Errorf("peer %s holds %v, want %v (calls %q)", peer, got, want, m.calls)
				}
			}
		})
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
