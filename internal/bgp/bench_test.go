package bgp

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSetPaths10000 measures announcing 10 000 /32s to one router from
// an empty RIB: ns/op is the time from the SetPaths call until the router
// holds all 10 000; setpaths-ns/op is the SetPaths call alone. Each
// iteration then withdraws everything (outside the timer). Allocations and
// the peak RSS are those of the whole process, which includes the router.
func BenchmarkSetPaths10000(b *testing.B) {
	const n, myASN = 10000, 64500
	r := newRouter(b, "127.0.0.1", 64501, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN})
	a := startHerald(b, Config{NextHopV4: nhV4})
	ctx := context.Background()
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{r.peer("r1", myASN)}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "session up", func() bool { return sessionUp(a, "r1") })

	paths := make([]Path, n)
	base := netip.MustParseAddr("198.18.0.0") // addresses that exist only in this benchmark
	for i := range paths {
		paths[i] = Path{Prefix: netip.PrefixFrom(base, 32), Communities: []string{"64512:100"}}
		base = base.Next()
	}

	var callTotal time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := a.SetPaths(ctx, paths); err != nil {
			b.Fatal(err)
		}
		callTotal += time.Since(start)
		for r.count(false) != n {
			time.Sleep(time.Millisecond) // the router receives over a real BGP session
		}
		b.StopTimer()
		if err := a.SetPaths(ctx, nil); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "withdrawals", func() bool { return r.count(false) == 0 })
		b.StartTimer()
	}
	b.ReportMetric(float64(callTotal.Nanoseconds())/float64(b.N), "setpaths-ns/op")
	if hwm := peakRSS(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
}

// peakRSS is this process's VmHWM in bytes (0 if unknown).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
