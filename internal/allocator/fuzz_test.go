package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"198.51.100.240/28", "198.51.100.10-198.51.100.20", "2001:db8::/120",
		"2001:db8::1-2001:db8::ff", " 198.51.100.1 - 198.51.100.1 ", "198.51.100.1/28",
		"::ffff:1.2.3.4/128", "fe80::1%eth0-fe80::2", "0.0.0.0/0", "::/0", "1.2.3.4-::1", "-", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if !r.From.IsValid() || !r.To.IsValid() || r.From.Is4() != r.To.Is4() || r.To.Less(r.From) {
			t.Fatalf("ParseRange(%q) = %v: not an ordered single-family range", s, r)
		}
		if !r.Contains(r.From) || !r.Contains(r.To) || r.Size().Sign() <= 0 {
			t.Fatalf("ParseRange(%q) = %v: bounds not contained", s, r)
		}
		back, err := ParseRange(r.String())
		if err != nil || back != r {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, r.String(), back, err)
		}
		if r.From.Is4() && r.buggyCount() < 0 {
			t.Fatalf("negative buggy count for %v", r)
		}
	})
}

func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{"198.51.100.1", "198.51.100.1,2001:db8::1", "198.51.100.1, 198.51.100.2", "", ",", "fe80::1%eth0", "::ffff:1.2.3.4", "198.51.100.1,198.51.100.1"} {
		f.Add(s, uint8(1))
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, s string, perFamily uint8) {
		n := int(perFamily % (MaxCount + 2))
		out, err := ParseAddressList(s, n)
		if err != nil {
			return
		}
		var count [2]int
		for i, a := range out {
			count[FamilyOf(a)]++
			if slices.Contains(out[:i], a) {
				t.Fatalf("ParseAddressList(%q, %d) = %v repeats %s", s, n, out, a)
			}
		}
		if len(out) == 0 || count[IPv4] > max(n, 1) || count[IPv6] > max(n, 1) {
			t.Fatalf("ParseAddressList(%q, %d) = %v", s, n, out)
		}
	})
}

func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"1", "3", "16", "17", "0", "-1", " 2 ", "3.0", "0x3", "", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseCount(s)
		if err != nil {
			return
		}
		if n < 1 || n > MaxCount || strconv.Itoa(n) != strings.TrimLeft(strings.TrimSpace(s), "+0") {
			t.Fatalf("ParseCount(%q) = %d", s, n)
		}
	})
}

// FuzzAllocator drives random operations on a small pool set and checks the
// invariants after each: no address is held by two Services that may not
// share it, bookkeeping agrees with itself, and everything released can be
// handed out again.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{3, 3, 3, 3, 200, 201, 202, 17, 40, 90, 255, 0, 7, 7, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		pools := []PoolConfig{
			{Name: "a", AutoAssign: true, Addresses: []string{"198.51.100.0/29", "2001:db8::/126"}, Created: t0},
			{Name: "b", AutoAssign: false, AvoidBuggyIPs: true, Addresses: []string{"198.51.100.254-198.51.101.2"}, Created: t0},
			{Name: "c", AutoAssign: true, Addresses: []string{"198.51.100.4/30"}, Created: t0.Add(1)}, // overlaps a
		}
		a := New()
		a.SetPools(pools)
		for i := 0; i+2 < len(ops); i += 3 {
			op, x, y := ops[i]%8, ops[i+1], ops[i+2]
			key := fmt.Sprintf("ns/s%d", x%6)
			s := &Service{Key: key, Namespace: "ns", Families: []Family{IPv4}}
			if y&1 != 0 {
				s.SharingKey = "k"
			}
			s.Ports = []Port{{"TCP", int32(80 + y%3)}}
			if y&8 != 0 {
				s.Local, s.BackendKey = true, fmt.Sprint(y%2)
			}
			s.Count = int(y>>4) % 4
			var err error
			switch op {
			case 0, 1, 2:
				_, err = a.Allocate(s)
			case 3:
				s.Requested = []netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, y % 12})}
				if s.Count > 1 {
					s.Requested = append(s.Requested, netip.AddrFrom4([4]byte{198, 51, 100, x % 12}))
				}
				_, err = a.Allocate(s)
			case 4:
				s.Pool = []string{"a", "b", "c", "zz"}[y%4]
				_, err = a.Allocate(s)
			case 5:
				s.Families, s.Policy = []Family{IPv6, IPv4}, FamilyPolicy(y%3)
				_, err = a.Allocate(s)
			case 6:
				a.Release(key)
			case 7:
				// Shrink, grow or reorder pools; nothing may move.
				before, had := a.Assigned(key)
				cfgs := append([]PoolConfig(nil), pools...)
				if y&1 != 0 {
					cfgs[0].Addresses = []string{"198.51.100.2/31"}
				}
				if y&2 != 0 {
					cfgs = cfgs[1:]
				}
				a.SetPools(cfgs)
				after, has := a.Assigned(key)
				if had != has || fmt.Sprint(before.Addrs) != fmt.Sprint(after.Addrs) {
					t.Fatalf("SetPools moved %s: %v -> %v", key, before, after)
				}
			}
			if op <= 5 && err == nil {
				checkCount(t, a, s)
			}
			checkInvariants(t, a)
		}
		// Release everything: every pool must be whole again.
		for k := range a.services {
			a.Release(k)
		}
		checkInvariants(t, a)
		for name, p := range a.pools {
			if p.state.Ready {
				for fam := range p.taken {
					if p.taken[fam] != 0 {
						t.Fatalf("pool %s family %d: %d still taken after releasing all", name, fam, p.taken[fam])
					}
				}
			}
		}
	})
}

// checkCount checks that a Service's successful allocation holds, of each
// family, either none or exactly the number it asks for, all distinct.
func checkCount(t *testing.T, a *Allocator, s *Service) {
	t.Helper()
	as, _ := a.Assigned(s.Key)
	var count [2]int
	for i, ad := range as.Addrs {
		count[FamilyOf(ad)]++
		if slices.Contains(as.Addrs[:i], ad) {
			t.Fatalf("%s holds %s twice: %v", s.Key, ad, as.Addrs)
		}
	}
	for f, c := range count {
		if c != 0 && c != s.perFamily() {
			t.Fatalf("%s asks for %d per family and holds %d of family %d: %v", s.Key, s.perFamily(), c, f, as.Addrs)
		}
	}
	if count[IPv4]+count[IPv6] == 0 {
		t.Fatalf("%s: successful allocation holds nothing", s.Key)
	}
}

func checkInvariants(t *testing.T, a *Allocator) {
	t.Helper()
	for key, as := range a.services {
		for _, ad := range as.Addrs {
			st, ok := a.used[ad]
			if !ok || !st.has(key) {
				t.Fatalf("%s holds %s but the address does not list it", key, ad)
			}
		}
	}
	for ad, st := range a.used {
		if len(st.users) == 0 {
			t.Fatalf("%s used by nobody", ad)
		}
		var list []*Service
		for _, u := range st.users {
			if _, ok := a.services[u.Key]; !ok {
				t.Fatalf("%s lists %s, which holds nothing", ad, u.Key)
			}
			list = append(list, u)
		}
		for i := range list {
			for j := i + 1; j < len(list); j++ {
				x, y := list[i], list[j]
				if x.SharingKey == "" || x.SharingKey != y.SharingKey {
					t.Fatalf("%s held by %s and %s without a common sharing key", ad, x.Key, y.Key)
				}
				for _, p := range x.Ports {
					for _, q := range y.Ports {
						if p == q {
							t.Fatalf("%s: %s and %s both use %s", ad, x.Key, y.Key, p)
						}
					}
				}
				if (x.Local || y.Local) && (x.Local != y.Local || x.BackendKey != y.BackendKey) {
					t.Fatalf("%s: %s and %s share against the Local rule", ad, x.Key, y.Key)
				}
			}
		}
		if p := a.readyPoolFor(ad); p != nil && p.free[FamilyOf(ad)] != nil {
			if _, free := p.free[FamilyOf(ad)].containing(ad); free {
				t.Fatalf("%s is used and also free in pool %s", ad, p.cfg.Name)
			}
		}
	}
	// Free counters agree with the free sets (pools here are tiny).
	for name, p := range a.pools {
		if !p.state.Ready {
			continue
		}
		for fam, fs := range p.free {
			if fs == nil {
				continue
			}
			n := int64(0)
			fs.t.Ascend(func(iv interval) bool {
				for ad := iv.from; ; ad = ad.Next() {
					if !p.skips(ad) {
						n++
					}
					if ad == iv.to {
						break
					}
				}
				return true
			})
			if want := p.total[fam].Int64() - p.taken[fam]; n != want {
				t.Fatalf("pool %s family %d: %d free addresses in the set, counters say %d", name, fam, n, want)
			}
		}
	}
}
