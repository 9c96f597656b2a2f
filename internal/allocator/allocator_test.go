package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func poolCfg(name string, auto bool, addresses ...string) PoolConfig {
	return PoolConfig{Name: name, Addresses: addresses, AutoAssign: auto, Created: t0}
}

func svc(key string, mods ...func(*Service)) *Service {
	s := &Service{Key: key, Namespace: "default", Families: []Family{IPv4}, Ports: []Port{{"TCP", 80}}}
	for _, m := range mods {
		m(s)
	}
	return s
}

func requested(a ...string) func(*Service) { return func(s *Service) { s.Requested = addrs(a...) } }
func inPool(p string) func(*Service)       { return func(s *Service) { s.Pool = p } }
func shareKey(k string) func(*Service)     { return func(s *Service) { s.SharingKey = k } }
func ports(ps ...int32) func(*Service) {
	return func(s *Service) {
		s.Ports = nil
		for _, p := range ps {
			s.Ports = append(s.Ports, Port{"TCP", p})
		}
	}
}
func local(backend string) func(*Service) {
	return func(s *Service) { s.Local, s.BackendKey = true, backend }
}
func families(policy FamilyPolicy, fs ...Family) func(*Service) {
	return func(s *Service) { s.Policy, s.Families = policy, fs }
}

func newAlloc(t *testing.T, pools ...PoolConfig) *Allocator {
	t.Helper()
	a := New()
	for name, st := range a.SetPools(pools) {
		if !st.Ready {
			t.Logf("pool %s not ready: %s %s", name, st.Reason, st.Message)
		}
	}
	return a
}

func mustAlloc(t *testing.T, a *Allocator, s *Service) Assignment {
	t.Helper()
	as, err := a.Allocate(s)
	if err != nil {
		t.Fatalf("Allocate(%s): %v", s.Key, err)
	}
	return as
}

func wantAddrs(t *testing.T, got Assignment, pool string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(Assignment{Addrs: addrs(want...), Pool: pool}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("assignment (-want +got):\n%s", diff)
	}
}

func TestAutoAssignLowestFirstAndKeep(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.10-198.51.100.12"))
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.10")
	wantAddrs(t, mustAlloc(t, a, svc("ns/b")), "lan", "198.51.100.11")
	// Re-syncing keeps the address, however often.
	for range 3 {
		wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.10")
	}
	// Deleting a does not move b.
	if got := a.Release("ns/a"); !cmp.Equal(got, addrs("198.51.100.10"), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })) {
		t.Errorf("Release returned %v", got)
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/b")), "lan", "198.51.100.11")
	// The released address is allocatable again.
	wantAddrs(t, mustAlloc(t, a, svc("ns/c")), "lan", "198.51.100.10")
	wantAddrs(t, mustAlloc(t, a, svc("ns/d")), "lan", "198.51.100.12")
	_, err := a.Allocate(svc("ns/e"))
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("full pool: got %v, want ErrPoolExhausted", err)
	}
}

func TestErrors(t *testing.T) {
	nsSel, _ := labels.Parse("team=blue")
	svcSel, _ := labels.Parse("expose=yes")
	pools := []PoolConfig{
		poolCfg("lan", true, "198.51.100.0/28", "2001:db8::/124"),
		poolCfg("manual", false, "198.51.100.32/28"),
		{Name: "blue", Addresses: []string{"198.51.100.64/28"}, NamespaceSelector: nsSel, Created: t0},
		{Name: "tagged", Addresses: []string{"198.51.100.80/28"}, ServiceSelector: svcSel, Created: t0},
		{Name: "only-prod", Addresses: []string{"198.51.100.96/28"}, Namespaces: []string{"prod"}, Created: t0},
		poolCfg("v4only", false, "203.0.113.0/28"),
		poolCfg("broken", false, "203.0.113.200-203.0.113.100"),
		{Name: "late", Addresses: []string{"198.51.100.8/29"}, Created: t0.Add(time.Hour)},
	}
	tests := []struct {
		name string
		svc  *Service
		want error
	}{
		{"outside every pool", svc("ns/x", requested("203.0.113.250")), ErrNotInPool},
		{"requested in another pool than named", svc("ns/x", requested("198.51.100.33"), inPool("lan")), ErrNotInPool},
		{"requested in an overlapping pool", svc("ns/x", requested("198.51.100.20"), inPool("late")), ErrNotInPool},
		{"requested in a pool that is not ready", svc("ns/x", requested("203.0.113.150")), ErrNotInPool},
		{"wrong family", svc("ns/x", requested("2001:db8::5")), ErrWrongFamily},
		{"two addresses of one family", svc("ns/x", requested("198.51.100.1", "198.51.100.2"), families(PreferDualStack, IPv4, IPv6)), ErrInvalidRequest},
		{"unknown pool", svc("ns/x", inPool("nope")), ErrPoolNotFound},
		{"overlapping pool", svc("ns/x", inPool("late")), ErrPoolNotReady},
		{"namespace selector", svc("ns/x", inPool("blue")), ErrPoolNotAllowed},
		{"service selector", svc("ns/x", inPool("tagged")), ErrPoolNotAllowed},
		{"namespaces list", svc("ns/x", inPool("only-prod")), ErrPoolNotAllowed},
		{"require dual stack from v4-only pool", svc("ns/x", inPool("v4only"), families(RequireDualStack, IPv4, IPv6)), ErrPoolExhausted},
		{"require dual stack with one family", svc("ns/x", families(RequireDualStack, IPv4)), ErrInvalidRequest},
		{"ipv6 single stack from v4-only pool", svc("ns/x", inPool("v4only"), families(SingleStack, IPv6)), ErrPoolExhausted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, pools...)
			_, err := a.Allocate(tc.svc)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err.Error() == tc.want.Error() {
				t.Errorf("error %q carries no detail", err)
			}
			if _, ok := a.Assigned(tc.svc.Key); ok {
				t.Errorf("failed allocation left an assignment")
			}
		})
	}
}

func TestNoPoolEligible(t *testing.T) {
	sel, _ := labels.Parse("team=blue")
	a := newAlloc(t, poolCfg("manual", false, "198.51.100.0/28"), PoolConfig{Name: "blue", AutoAssign: true, Addresses: []string{"198.51.100.16/28"}, NamespaceSelector: sel, Created: t0})
	if _, err := a.Allocate(svc("ns/x")); !errors.Is(err, ErrNoPool) {
		t.Fatalf("got %v, want ErrNoPool", err)
	}
	// Naming a pool works even with autoAssign false.
	wantAddrs(t, mustAlloc(t, a, svc("ns/x", inPool("manual"))), "manual", "198.51.100.0")
	// The namespace's labels admit it to the selective pool.
	s := svc("ns/y")
	s.NamespaceLabels = map[string]string{"team": "blue"}
	wantAddrs(t, mustAlloc(t, a, s), "blue", "198.51.100.16")
}

func TestPoolOrder(t *testing.T) {
	one, five := int32(1), int32(5)
	sel, _ := labels.Parse("tier=web")
	pools := []PoolConfig{
		poolCfg("a-catchall", true, "198.51.100.0/30"),
		poolCfg("b-catchall", true, "198.51.100.4/30"),
		{Name: "c-web", AutoAssign: true, Addresses: []string{"198.51.100.8/30"}, ServiceSelector: sel, Created: t0},
		{Name: "z-prio5", AutoAssign: true, Addresses: []string{"198.51.100.12/30"}, Priority: &five, Created: t0},
		{Name: "y-prio1", AutoAssign: true, Addresses: []string{"198.51.100.16/30"}, Priority: &one, Created: t0},
		{Name: "x-prio1", AutoAssign: true, Addresses: []string{"198.51.100.20/30"}, Priority: &one, Created: t0},
	}
	a := newAlloc(t, pools...)
	var got []string
	for i := range 24 {
		s := svc("ns/s" + string(rune('a'+i)))
		s.Labels = map[string]string{"tier": "web"}
		got = append(got, mustAlloc(t, a, s).Pool)
	}
	want := []string{}
	for _, p := range []string{"x-prio1", "y-prio1", "z-prio5", "c-web", "a-catchall", "b-catchall"} {
		want = append(want, p, p, p, p)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pool order (-want +got):\n%s", diff)
	}
}

func TestRequestedAndSharing(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	wantAddrs(t, mustAlloc(t, a, svc("ns/web", requested("198.51.100.5"), shareKey("k"), ports(80))), "lan", "198.51.100.5")
	// Same key, other port: shares even without asking for the address.
	wantAddrs(t, mustAlloc(t, a, svc("ns/dns", shareKey("k"), ports(53))), "lan", "198.51.100.5")
	// Without the key the address is taken.
	if _, err := a.Allocate(svc("ns/other", requested("198.51.100.5"), ports(22))); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("no key: got %v, want ErrAddressInUse", err)
	}
	// Another key: taken too.
	if _, err := a.Allocate(svc("ns/other", requested("198.51.100.5"), shareKey("j"), ports(22))); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("other key: got %v, want ErrAddressInUse", err)
	}
	// Same key, colliding port.
	if _, err := a.Allocate(svc("ns/other", requested("198.51.100.5"), shareKey("k"), ports(80))); !errors.Is(err, ErrPortCollision) {
		t.Errorf("collision: got %v, want ErrPortCollision", err)
	}
	// Same key, colliding port, no request: lands on a fresh address instead.
	wantAddrs(t, mustAlloc(t, a, svc("ns/web2", shareKey("k"), ports(80))), "lan", "198.51.100.0")
	// UDP 80 does not collide with TCP 80.
	udp := svc("ns/udp", requested("198.51.100.5"), shareKey("k"))
	udp.Ports = []Port{{"UDP", 80}}
	wantAddrs(t, mustAlloc(t, a, udp), "lan", "198.51.100.5")
	// The address stays while one sharer remains.
	a.Release("ns/web")
	a.Release("ns/dns")
	if got := a.Release("ns/udp"); len(got) != 1 {
		t.Errorf("last sharer's release freed %v", got)
	}
}

func TestSharingLocal(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	mustAlloc(t, a, svc("ns/a", shareKey("k"), ports(80), local("app=web")))
	if _, err := a.Allocate(svc("ns/b", requested("198.51.100.0"), shareKey("k"), ports(81), local("app=db"))); !errors.Is(err, ErrSharingIncompatible) {
		t.Errorf("local, other endpoints: got %v", err)
	}
	if _, err := a.Allocate(svc("ns/c", requested("198.51.100.0"), shareKey("k"), ports(82))); !errors.Is(err, ErrSharingIncompatible) {
		t.Errorf("cluster with local: got %v", err)
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/d", shareKey("k"), ports(83), local("app=web"))), "lan", "198.51.100.0")
}

func TestBadEditKeepsAddress(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	mustAlloc(t, a, svc("ns/a"))
	mustAlloc(t, a, svc("ns/b"))
	for _, bad := range []*Service{
		svc("ns/b", requested("198.51.100.0")), // in use
		svc("ns/b", requested("203.0.113.1")),  // outside pools
		svc("ns/b", inPool("nope")),            // no such pool
		svc("ns/b", requested("2001:db8::1")),  // wrong family
	} {
		if _, err := a.Allocate(bad); err == nil {
			t.Fatalf("bad edit %+v accepted", bad)
		}
		got, _ := a.Assigned("ns/b")
		wantAddrs(t, got, "lan", "198.51.100.1")
	}
	// A good edit moves it.
	wantAddrs(t, mustAlloc(t, a, svc("ns/b", requested("198.51.100.9"))), "lan", "198.51.100.9")
	wantAddrs(t, mustAlloc(t, a, svc("ns/c")), "lan", "198.51.100.1")
	// Dropping the request keeps the address: nothing asks to move it.
	wantAddrs(t, mustAlloc(t, a, svc("ns/b")), "lan", "198.51.100.9")
}

func TestDualStack(t *testing.T) {
	a := newAlloc(t,
		poolCfg("a-v4", true, "198.51.100.0/28"),
		poolCfg("b-dual", true, "203.0.113.0/28", "2001:db8::/120"),
		poolCfg("v6", false, "2001:db8:1::/120"),
	)
	// PreferDualStack looks past the v4-only pool (which sorts first) for one with both.
	wantAddrs(t, mustAlloc(t, a, svc("ns/p", families(PreferDualStack, IPv4, IPv6))), "b-dual", "203.0.113.0", "2001:db8::")
	wantAddrs(t, mustAlloc(t, a, svc("ns/r", families(RequireDualStack, IPv6, IPv4))), "b-dual", "2001:db8::1", "203.0.113.1")
	wantAddrs(t, mustAlloc(t, a, svc("ns/s6", families(SingleStack, IPv6))), "b-dual", "2001:db8::2")
	wantAddrs(t, mustAlloc(t, a, svc("ns/s4", families(SingleStack, IPv4))), "a-v4", "198.51.100.0")
	// Prefer from a single-family pool settles for it.
	wantAddrs(t, mustAlloc(t, a, svc("ns/p6", families(PreferDualStack, IPv4, IPv6), inPool("v6"))), "v6", "2001:db8:1::")
	// Requested dual-stack pair, in family order whatever the request's order.
	wantAddrs(t, mustAlloc(t, a, svc("ns/req", families(RequireDualStack, IPv4, IPv6), requested("2001:db8::9", "203.0.113.9"))), "b-dual", "203.0.113.9", "2001:db8::9")
	// Single -> dual keeps the IPv4 address and adds IPv6 from the same pool.
	wantAddrs(t, mustAlloc(t, a, svc("ns/d", inPool("b-dual"))), "b-dual", "203.0.113.2")
	wantAddrs(t, mustAlloc(t, a, svc("ns/d", families(RequireDualStack, IPv4, IPv6))), "b-dual", "203.0.113.2", "2001:db8::3")
	// Its pool has no IPv6: RequireDualStack fails and the IPv4 address stays.
	if _, err := a.Allocate(svc("ns/s4", families(RequireDualStack, IPv4, IPv6))); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("require dual in v4 pool: got %v", err)
	}
	got, _ := a.Assigned("ns/s4")
	wantAddrs(t, got, "a-v4", "198.51.100.0")
	// PreferDualStack in the same spot keeps the IPv4 address alone.
	wantAddrs(t, mustAlloc(t, a, svc("ns/s4", families(PreferDualStack, IPv4, IPv6))), "a-v4", "198.51.100.0")
	// Dual -> single drops the other family, which is free again.
	wantAddrs(t, mustAlloc(t, a, svc("ns/r", families(SingleStack, IPv6))), "b-dual", "2001:db8::1")
	wantAddrs(t, mustAlloc(t, a, svc("ns/n", inPool("b-dual"))), "b-dual", "203.0.113.1")
}

func TestAvoidBuggyIPs(t *testing.T) {
	a := newAlloc(t, PoolConfig{Name: "lan", AutoAssign: true, AvoidBuggyIPs: true, Addresses: []string{"198.51.100.254-198.51.101.1"}, Created: t0})
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.254")
	wantAddrs(t, mustAlloc(t, a, svc("ns/b")), "lan", "198.51.101.1")
	if _, err := a.Allocate(svc("ns/c")); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("got %v, want exhausted", err)
	}
	if _, err := a.Allocate(svc("ns/c", requested("198.51.101.0"))); !errors.Is(err, ErrPoolNotAllowed) {
		t.Errorf("requested .0: got %v", err)
	}
	u, _ := a.PoolUsage("lan")
	if u.Families[IPv4].Total.Int64() != 2 || u.Families[IPv4].Free.Int64() != 0 {
		t.Errorf("usage %+v, want total 2 free 0", u.Families[IPv4])
	}
	a.Release("ns/a")
	wantAddrs(t, mustAlloc(t, a, svc("ns/c")), "lan", "198.51.100.254")
}

func TestOverlapMovesNothing(t *testing.T) {
	a := newAlloc(t, poolCfg("old", true, "198.51.100.0/28"))
	mustAlloc(t, a, svc("ns/a"))
	late := PoolConfig{Name: "late", AutoAssign: true, Addresses: []string{"198.51.100.0/24"}, Created: t0.Add(time.Minute)}
	states := a.SetPools([]PoolConfig{poolCfg("old", true, "198.51.100.0/28"), late})
	if st := states["late"]; st.Ready || st.Reason != ReasonOverlap {
		t.Fatalf("late pool state %+v, want Overlap", st)
	}
	if !states["old"].Ready {
		t.Fatalf("old pool lost readiness: %+v", states["old"])
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "old", "198.51.100.0")
	wantAddrs(t, mustAlloc(t, a, svc("ns/b")), "old", "198.51.100.1")
	u, _ := a.PoolUsage("late")
	if u.Families[IPv4].Free.Sign() != 0 {
		t.Errorf("overlapping pool reports free addresses: %v", u.Families[IPv4].Free)
	}
}

func TestShrinkKeepsInUse(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	for _, k := range []string{"ns/a", "ns/b", "ns/c"} {
		mustAlloc(t, a, svc(k))
	}
	a.SetPools([]PoolConfig{poolCfg("lan", true, "198.51.100.1/32", "198.51.100.8/29")})
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.0")
	wantAddrs(t, mustAlloc(t, a, svc("ns/c")), "lan", "198.51.100.2")
	u, _ := a.PoolUsage("lan")
	if diff := cmp.Diff(addrs("198.51.100.0", "198.51.100.2"), u.OutsideSpec, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("outside spec (-want +got):\n%s", diff)
	}
	if got := u.Families[IPv4]; got.Allocated != 3 || got.Total.Int64() != 9 || got.Free.Int64() != 8 {
		t.Errorf("usage allocated=%d total=%v free=%v, want 3/9/8", got.Allocated, got.Total, got.Free)
	}
	// An address outside the spec does not come back when released.
	a.Release("ns/a")
	wantAddrs(t, mustAlloc(t, a, svc("ns/d")), "lan", "198.51.100.8")
}

func TestDeletedPoolKeepsAddresses(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"), poolCfg("other", true, "203.0.113.0/28"))
	mustAlloc(t, a, svc("ns/a"))
	a.SetPools([]PoolConfig{poolCfg("other", true, "203.0.113.0/28")})
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.0")
	if _, err := a.Allocate(svc("ns/b", inPool("lan"))); !errors.Is(err, ErrPoolNotFound) {
		t.Errorf("deleted pool by name: got %v", err)
	}
	// Recreated: the address is still accounted to it and not handed out.
	a.SetPools([]PoolConfig{poolCfg("lan", true, "198.51.100.0/28")})
	wantAddrs(t, mustAlloc(t, a, svc("ns/b")), "lan", "198.51.100.1")
	if u, _ := a.PoolUsage("lan"); u.Families[IPv4].Allocated != 2 {
		t.Errorf("allocated = %d, want 2", u.Families[IPv4].Allocated)
	}
}

func TestInvalidPools(t *testing.T) {
	states := New().SetPools([]PoolConfig{
		poolCfg("reversed6", true, "2001:db8::ff-2001:db8::1"),
		poolCfg("selfoverlap", true, "198.51.100.0/28", "198.51.100.8-198.51.100.20"),
		poolCfg("hostbits", true, "198.51.100.1/28"),
		poolCfg("good", true, "198.51.100.64/28"),
	})
	for name, st := range states {
		if want := name == "good"; st.Ready != want {
			t.Errorf("%s: ready=%v (%s: %s), want %v", name, st.Ready, st.Reason, st.Message, want)
		}
		if name != "good" && st.Reason != ReasonInvalidAddresses {
			t.Errorf("%s: reason %s", name, st.Reason)
		}
	}
}

func TestRestore(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	// Existing assignments are replayed first, in any order.
	if p, err := a.Restore(svc("ns/b"), addrs("198.51.100.1"), "lan"); err != nil || p != "lan" {
		t.Fatalf("restore b: %q %v", p, err)
	}
	if _, err := a.Restore(svc("ns/a", shareKey("k")), addrs("198.51.100.7"), ""); err != nil {
		t.Fatal(err)
	}
	// A duplicate without a sharing key is refused.
	if _, err := a.Restore(svc("ns/dup"), addrs("198.51.100.1"), "lan"); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("duplicate restore: got %v", err)
	}
	// An address in no pool is kept and never handed out.
	if p, err := a.Restore(svc("ns/orphan"), addrs("203.0.113.5"), ""); err != nil || p != "" {
		t.Fatalf("orphan restore: %q %v", p, err)
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/c")), "lan", "198.51.100.0")
	wantAddrs(t, mustAlloc(t, a, svc("ns/d")), "lan", "198.51.100.2")
	wantAddrs(t, mustAlloc(t, a, svc("ns/orphan")), "", "203.0.113.5")
	a.SetPools([]PoolConfig{poolCfg("lan", true, "198.51.100.0/28"), poolCfg("new", true, "203.0.113.0/28")})
	wantAddrs(t, mustAlloc(t, a, svc("ns/e", inPool("new"))), "new", "203.0.113.0")
	wantAddrs(t, mustAlloc(t, a, svc("ns/orphan")), "new", "203.0.113.5")
	for i := range 4 {
		if as := mustAlloc(t, a, svc("ns/f"+string(rune('0'+i)), inPool("new"))); as.Addrs[0] == netip.MustParseAddr("203.0.113.5") {
			t.Fatalf("orphan address handed out again")
		}
	}
}

func TestIPv6Slash64(t *testing.T) {
	a := newAlloc(t, poolCfg("v6", true, "2001:db8:0:1::/64"))
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", families(SingleStack, IPv6))), "v6", "2001:db8:0:1::")
	wantAddrs(t, mustAlloc(t, a, svc("ns/b", families(SingleStack, IPv6), requested("2001:db8:0:1:ffff:ffff:ffff:ffff"))), "v6", "2001:db8:0:1:ffff:ffff:ffff:ffff")
	u, _ := a.PoolUsage("v6")
	if got := u.Families[IPv6].Total.String(); got != "18446744073709551616" {
		t.Errorf("total = %s", got)
	}
	if got := u.Families[IPv6].Free.String(); got != "18446744073709551614" {
		t.Errorf("free = %s", got)
	}
}

func TestReason(t *testing.T) {
	_, err := newAlloc(t).Allocate(svc("ns/a"))
	if got := Reason(err); got != "NoPool" {
		t.Errorf("Reason = %q", got)
	}
	if got := Reason(errors.New("x")); got != "AllocationFailed" {
		t.Errorf("Reason = %q", got)
	}
}

// Regressions found in review.

func TestRestoreDuplicateStatusEntries(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	if _, err := a.Restore(svc("ns/a"), addrs("198.51.100.1", "198.51.100.1"), "lan"); err != nil {
		t.Fatal(err)
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.1")
	if _, err := a.Allocate(svc("ns/b", requested("198.51.100.1"))); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("got %v", err)
	}
}

func TestRestoreOutsideNamedPoolStays(t *testing.T) {
	a := newAlloc(t, poolCfg("p", true, "198.51.100.0/28"))
	// The pool shrank and the annotation was lost: the address stays.
	if p, err := a.Restore(svc("ns/a", inPool("p")), addrs("198.51.100.200"), ""); err != nil || p != "p" {
		t.Fatalf("restore: %q %v", p, err)
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", inPool("p"))), "p", "198.51.100.200")
}

func TestSharingStaysWithinPool(t *testing.T) {
	a := newAlloc(t, poolCfg("b", true, "198.51.100.0/28"))
	mustAlloc(t, a, svc("ns/first", shareKey("k"), ports(80)))
	// b shrinks; c now covers the address b still holds.
	a.SetPools([]PoolConfig{poolCfg("b", true, "198.51.100.8/29"), poolCfg("c", true, "198.51.100.0/29")})
	as := mustAlloc(t, a, svc("ns/second", shareKey("k"), ports(81), inPool("c")))
	if as.Addrs[0] == netip.MustParseAddr("198.51.100.0") {
		t.Fatalf("shared an address held from pool b while allocating from c")
	}
	if u, _ := a.PoolUsage("c"); u.Families[IPv4].Allocated != 1 {
		t.Errorf("pool c allocated = %d, want 1", u.Families[IPv4].Allocated)
	}
	if _, err := a.Allocate(svc("ns/third", shareKey("k"), ports(82), requested("198.51.100.0"))); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("requested shared address across pools: got %v", err)
	}
}

func TestExternalIPs(t *testing.T) {
	a := newAlloc(t,
		PoolConfig{Name: "ext", AutoAssign: true, ExternalIPs: true, Addresses: []string{"203.0.113.0/30"}, Created: t0},
		poolCfg("lan", true, "198.51.100.0/28"),
	)
	got, err := a.UseExternalIPs("ns/np", addrs("203.0.113.0", "198.51.100.5", "198.18.0.1"))
	if fmt.Sprint(got) != "[203.0.113.0]" {
		t.Fatalf("accepted %v", got)
	}
	if !errors.Is(err, ErrPoolNotAllowed) || !errors.Is(err, ErrNotInPool) {
		t.Fatalf("refusals: %v", err)
	}
	// Another Service may list the same externalIP.
	if got, err := a.UseExternalIPs("ns/np2", addrs("203.0.113.0")); err != nil || len(got) != 1 {
		t.Fatalf("shared externalIP: %v %v", got, err)
	}
	// A load balancer never gets it, not even by asking.
	wantAddrs(t, mustAlloc(t, a, svc("ns/lb", inPool("ext"))), "ext", "203.0.113.1")
	if _, err := a.Allocate(svc("ns/lb2", requested("203.0.113.0"))); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("requested an externalIP: %v", err)
	}
	// An externalIP colliding with a load-balancer address is refused.
	if _, err := a.UseExternalIPs("ns/np3", addrs("203.0.113.1")); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("collision: %v", err)
	}
	if u, _ := a.PoolUsage("ext"); u.Families[IPv4].Allocated != 2 {
		t.Errorf("pool ext allocated = %d, want 2 (one externalIP, one load balancer)", u.Families[IPv4].Allocated)
	}
	// Releasing: the address stays while one Service lists it.
	a.ReleaseExternalIPs("ns/np")
	if _, err := a.Allocate(svc("ns/lb3", requested("203.0.113.0"))); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("still listed by np2: %v", err)
	}
	if got, _ := a.UseExternalIPs("ns/np2", nil); len(got) != 0 || len(a.ExternalIPs("ns/np2")) != 0 {
		t.Errorf("emptied list kept %v", a.ExternalIPs("ns/np2"))
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/lb3", requested("203.0.113.0"))), "ext", "203.0.113.0")
}

func count(n int) func(*Service) { return func(s *Service) { s.Count = n } }

func TestCountAllOrNone(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/29", "2001:db8::/126"))
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", count(3))), "lan", "198.51.100.0", "198.51.100.1", "198.51.100.2")
	// Dual-stack: slot by slot, the first of each family first.
	wantAddrs(t, mustAlloc(t, a, svc("ns/d", count(2), families(RequireDualStack, IPv6, IPv4))), "lan",
		"2001:db8::", "198.51.100.3", "2001:db8::1", "198.51.100.4")
	// Three IPv4 addresses are left: asking for four gets none, and says so.
	_, err := a.Allocate(svc("ns/big", count(4)))
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "after 3 of the 4") {
		t.Fatalf("got %v, want ErrPoolExhausted after 3 of the 4", err)
	}
	if _, ok := a.Assigned("ns/big"); ok {
		t.Fatal("failed allocation left an assignment")
	}
	// Nothing was taken by the failed attempt.
	wantAddrs(t, mustAlloc(t, a, svc("ns/three", count(3))), "lan", "198.51.100.5", "198.51.100.6", "198.51.100.7")
	// PreferDualStack settles for the family the pool can give in full:
	// two IPv6 addresses are left, not three.
	a.Release("ns/three")
	wantAddrs(t, mustAlloc(t, a, svc("ns/p", count(3), families(PreferDualStack, IPv4, IPv6))), "lan", "198.51.100.5", "198.51.100.6", "198.51.100.7")
	if u, _ := a.PoolUsage("lan"); u.Families[IPv6].Allocated != 2 {
		t.Errorf("IPv6 allocated = %d, want 2: a PreferDualStack Service that got no IPv6 took some", u.Families[IPv6].Allocated)
	}
	// Released together.
	if got := a.Release("ns/d"); len(got) != 4 {
		t.Errorf("Release freed %v, want all four", got)
	}
}

func TestCountChangesKeepAddresses(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28", "2001:db8::/124"), poolCfg("other", true, "203.0.113.0/28"))
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.0")
	mustAlloc(t, a, svc("ns/b"))
	// More addresses: the one held stays first, the others are added from its pool.
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", count(3))), "lan", "198.51.100.0", "198.51.100.2", "198.51.100.3")
	// Fewer: the first ones stay, the last go back to the pool.
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", count(2))), "lan", "198.51.100.0", "198.51.100.2")
	wantAddrs(t, mustAlloc(t, a, svc("ns/c")), "lan", "198.51.100.3")
	// Fewer, with a request: the requested address is the one that stays.
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", count(1), requested("198.51.100.2"))), "lan", "198.51.100.2")
	// Dual-stack with a count adds IPv6 addresses from the same pool.
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", count(2), families(RequireDualStack, IPv4, IPv6))), "lan",
		"198.51.100.2", "2001:db8::", "198.51.100.0", "2001:db8::1")
	// A count the pool cannot reach fails and keeps everything held.
	_, err := a.Allocate(svc("ns/a", count(16), families(RequireDualStack, IPv4, IPv6)))
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("count beyond the pool: got %v", err)
	}
	got, _ := a.Assigned("ns/a")
	wantAddrs(t, got, "lan", "198.51.100.2", "2001:db8::", "198.51.100.0", "2001:db8::1")
	if u, _ := a.PoolUsage("lan"); u.Families[IPv4].Allocated != 4 || u.Families[IPv6].Allocated != 2 {
		t.Errorf("usage after a failed growth: %d IPv4, %d IPv6 allocated; want 4 and 2", u.Families[IPv4].Allocated, u.Families[IPv6].Allocated)
	}
}

func TestCountRequests(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"), poolCfg("other", true, "203.0.113.0/28"))
	// Requested addresses come first; the rest are allocated from their pool.
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", count(3), requested("198.51.100.9", "198.51.100.4"))), "lan", "198.51.100.9", "198.51.100.4", "198.51.100.0")
	for _, tc := range []struct {
		name string
		svc  *Service
		want error
	}{
		{"more requested than the count", svc("ns/x", count(2), requested("198.51.100.10", "198.51.100.11", "198.51.100.12")), ErrInvalidRequest},
		{"two of a family without a count", svc("ns/x", requested("198.51.100.10", "198.51.100.11")), ErrInvalidRequest},
		{"the same address twice", svc("ns/x", count(2), requested("198.51.100.10", "198.51.100.10")), ErrInvalidRequest},
		{"requests in two pools", svc("ns/x", count(2), requested("198.51.100.10", "203.0.113.1")), ErrInvalidRequest},
		{"one requested address in use", svc("ns/x", count(2), requested("198.51.100.10", "198.51.100.9")), ErrAddressInUse},
		{"count above the maximum", svc("ns/x", count(MaxCount+1)), ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.Allocate(tc.svc); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, ok := a.Assigned("ns/x"); ok {
				t.Fatal("failed allocation left an assignment")
			}
		})
	}
	if u, _ := a.PoolUsage("lan"); u.Families[IPv4].Allocated != 3 {
		t.Errorf("failed requests took addresses: %d allocated, want 3", u.Families[IPv4].Allocated)
	}
}

func TestCountSharing(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	wantAddrs(t, mustAlloc(t, a, svc("ns/web", count(3), shareKey("k"), ports(80))), "lan", "198.51.100.0", "198.51.100.1", "198.51.100.2")
	// Same key, other port: shares all three.
	wantAddrs(t, mustAlloc(t, a, svc("ns/dns", count(3), shareKey("k"), ports(53))), "lan", "198.51.100.0", "198.51.100.1", "198.51.100.2")
	// Same key, a port colliding on every shared address: three fresh ones.
	wantAddrs(t, mustAlloc(t, a, svc("ns/web2", count(3), shareKey("k"), ports(80))), "lan", "198.51.100.3", "198.51.100.4", "198.51.100.5")
	// Requesting one of them with a colliding port is refused for that address.
	if _, err := a.Allocate(svc("ns/x", count(2), shareKey("k"), ports(53), requested("198.51.100.6", "198.51.100.1"))); !errors.Is(err, ErrPortCollision) {
		t.Errorf("collision on the second address: got %v", err)
	}
	// The addresses stay while one sharer holds them.
	a.Release("ns/web")
	if got := a.Release("ns/dns"); len(got) != 3 {
		t.Errorf("last sharer's release freed %v, want three", got)
	}
}

func TestCountRestore(t *testing.T) {
	a := newAlloc(t, poolCfg("lan", true, "198.51.100.0/28"))
	// A status with three addresses restores all three, even when the
	// count annotation was lost: nothing is freed before the sync.
	if _, err := a.Restore(svc("ns/a"), addrs("198.51.100.5", "198.51.100.1", "198.51.100.9", "198.51.100.5"), "lan"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(svc("ns/b", requested("198.51.100.9"))); !errors.Is(err, ErrAddressInUse) {
		t.Errorf("restored address handed out: %v", err)
	}
	wantAddrs(t, mustAlloc(t, a, svc("ns/a", count(3))), "lan", "198.51.100.5", "198.51.100.1", "198.51.100.9")
	// The sync trims to what the spec asks.
	wantAddrs(t, mustAlloc(t, a, svc("ns/a")), "lan", "198.51.100.5")
	wantAddrs(t, mustAlloc(t, a, svc("ns/b", requested("198.51.100.9"))), "lan", "198.51.100.9")
}

func TestParseCount(t *testing.T) {
	for _, s := range []string{"1", " 3 ", "16"} {
		if _, err := ParseCount(s); err != nil {
			t.Errorf("ParseCount(%q): %v", s, err)
		}
	}
	for _, s := range []string{"0", "17", "-2", "three", "", "2.5"} {
		if _, err := ParseCount(s); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("ParseCount(%q) = %v, want ErrInvalidRequest", s, err)
		}
	}
}

// TestRestoreHintNeedsThePoolToHaveHeldTheAddress: the pool annotations
// are the Service's own, which its owner may rewrite. Once a pool's
// holdings outside its spec are known, an annotation naming it does not
// bring in an address it never held; the pool whose spec holds the address
// gets it, or none.
func TestRestoreHintNeedsThePoolToHaveHeldTheAddress(t *testing.T) {
	shrunk := poolCfg("shrunk", true, "198.51.100.8/29")
	shrunk.OutsideSpecKnown = true
	shrunk.HeldOutsideSpec = []Range{{From: netip.MustParseAddr("198.51.100.1"), To: netip.MustParseAddr("198.51.100.1")}}
	a := newAlloc(t, shrunk, poolCfg("other", true, "203.0.113.0/28"))
	for _, tc := range []struct {
		key, addr, hint, named, want string
	}{
		{"ns/kept", "198.51.100.1", "shrunk", "", "shrunk"},
		{"ns/moved", "203.0.113.5", "shrunk", "", "other"},
		{"ns/foreign", "198.18.0.7", "shrunk", "", ""},
		{"ns/named", "198.18.0.8", "", "shrunk", ""},
	} {
		s := svc(tc.key)
		if tc.named != "" {
			s = svc(tc.key, inPool(tc.named))
		}
		if p, err := a.Restore(s, addrs(tc.addr), tc.hint); err != nil || p != tc.want {
			t.Errorf("Restore(%s %s, hint %q) = %q, %v; want %q", tc.key, tc.addr, tc.hint, p, err, tc.want)
		}
	}
	// Holdings not known (no published list): the hint is trusted as it
	// always was, so nothing kept is lost on an upgrade.
	legacy := newAlloc(t, poolCfg("shrunk", true, "198.51.100.8/29"))
	if p, err := legacy.Restore(svc("ns/kept"), addrs("198.51.100.1"), "shrunk"); err != nil || p != "shrunk" {
		t.Errorf("legacy Restore = %q, %v; want shrunk", p, err)
	}
}

func TestCompact(t *testing.T) {
	got := Compact(addrs("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.7", "2001:db8::1"))
	var s []string
	for _, r := range got {
		s = append(s, r.String())
	}
	if want := "[198.51.100.1-198.51.100.3 198.51.100.7/32 2001:db8::1/128]"; fmt.Sprint(s) != want {
		t.Errorf("Compact = %v, want %s", s, want)
	}
}
