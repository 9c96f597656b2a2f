package allocator

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
)

// fill allocates n single-stack Services named s0..s(n-1).
func fill(b *testing.B, a *Allocator, n int, fam Family) []*Service {
	b.Helper()
	svcs := make([]*Service, n)
	for i := range svcs {
		svcs[i] = &Service{Key: fmt.Sprintf("ns/s%d", i), Namespace: "ns", Families: []Family{fam}, Ports: []Port{{"TCP", 80}}}
		if _, err := a.Allocate(svcs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return svcs
}

// BenchmarkAllocateSlash16 measures one allocation (and the release that
// keeps the pool at the same fill) from a /16 with 60 000 addresses in use.
func BenchmarkAllocateSlash16(b *testing.B) {
	for _, fragmented := range []bool{false, true} {
		b.Run(fmt.Sprintf("used=60000/fragmented=%v", fragmented), func(b *testing.B) {
			a := New()
			a.SetPools([]PoolConfig{{Name: "big", Addresses: []string{"198.18.0.0/16"}, AutoAssign: true}})
			svcs := fill(b, a, 60000, IPv4)
			if fragmented {
				// Free every other address of the first 10 000: 5 000 free
				// runs spread over the low end, then fill back to 60 000.
				for i := 0; i < 10000; i += 2 {
					a.Release(svcs[i].Key)
				}
				for i := range 5000 {
					s := &Service{Key: fmt.Sprintf("ns/t%d", i), Namespace: "ns", Families: []Family{IPv4}, Requested: []netip.Addr{addrAt(60000 + i)}}
					if _, err := a.Allocate(s); err != nil {
						b.Fatal(err)
					}
				}
			}
			allocateAndReturn(b, a, IPv4)
			b.ReportMetric(float64(a.pools["big"].free[IPv4].intervals()), "free-runs")
		})
	}
}

func addrAt(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
}

// BenchmarkAllocateSlash64 allocates from an IPv6 /64 that is never enumerated.
func BenchmarkAllocateSlash64(b *testing.B) {
	a := New()
	a.SetPools([]PoolConfig{{Name: "v6", Addresses: []string{"2001:db8:0:1::/64"}, AutoAssign: true}})
	fill(b, a, 10000, IPv6)
	allocateAndReturn(b, a, IPv6)
}

// allocateAndReturn times Allocate alone: batches of 500 new Services are
// allocated with the timer running and released with it stopped, so the
// pool stays at the same fill and the timer's own cost is amortised.
func allocateAndReturn(b *testing.B, a *Allocator, fam Family) {
	const batch = 500
	svcs := make([]*Service, batch)
	for i := range svcs {
		svcs[i] = &Service{Key: fmt.Sprintf("ns/bench%d", i), Namespace: "ns", Families: []Family{fam}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		if _, err := a.Allocate(svcs[n]); err != nil {
			b.Fatal(err)
		}
		if n++; n == batch {
			b.StopTimer()
			for _, s := range svcs {
				a.Release(s.Key)
			}
			n = 0
			b.StartTimer()
		}
	}
	// Wall time per op inflates when other processes share the CPU; the
	// process's own CPU time (release batches included, so an upper bound)
	// does not, which makes runs on a busy machine comparable.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRestore10000 replays 10 000 existing assignments into a fresh
// allocator, as the controller does at start, then rebuilds the pool.
func BenchmarkRestore10000(b *testing.B) {
	pools := []PoolConfig{{Name: "big", Addresses: []string{"198.18.0.0/16"}, AutoAssign: true}}
	svcs := make([]*Service, 10000)
	for i := range svcs {
		svcs[i] = &Service{Key: fmt.Sprintf("ns/s%d", i), Namespace: "ns", Families: []Family{IPv4}}
	}
	b.ReportAllocs()
	for b.Loop() {
		a := New()
		a.SetPools(pools)
		for i, s := range svcs {
			if _, err := a.Restore(s, []netip.Addr{addrAt(i * 3)}, "big"); err != nil {
				b.Fatal(err)
			}
		}
	}
}
