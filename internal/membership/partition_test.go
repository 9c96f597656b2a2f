package membership

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// partition simulates a network partition between groups of loopback
// members: while split, every packet and connection from one side to the
// other is dropped (each side drops what it sends, so nothing crosses).
type partition struct {
	mu   sync.Mutex
	side map[uint16]int // port -> side; nil: no partition
}

func (p *partition) split(sides ...[]*Cluster) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.side = map[uint16]int{}
	for i, cs := range sides {
		for _, c := range cs {
			p.side[c.LocalAddr().Port()] = i + 1
		}
	}
}

func (p *partition) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.side = nil
}

func (p *partition) blocked(from uint16, to string) bool {
	ap, err := netip.ParseAddrPort(to)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a, b := p.side[from], p.side[ap.Port()]
	return a != 0 && b != 0 && a != b
}

// wrap is a Config.wrapTransport that applies the partition.
func (p *partition) wrap(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	return &partitionTransport{NodeAwareTransport: t, p: p, port: uint16(t.(*transport).port)}
}

type partitionTransport struct {
	memberlist.NodeAwareTransport
	p    *partition
	port uint16
}

var errPartitioned = errors.New("partitioned (test)")

func (t *partitionTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.p.blocked(t.port, addr) {
		return time.Now(), nil // lost on the wire
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *partitionTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.p.blocked(t.port, a.Addr) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

// dialBlocked waits like a connection attempt into a black hole.
func dialBlocked(timeout time.Duration) (net.Conn, error) {
	time.Sleep(min(timeout, tcpTimeout)) // memberlist's real dial timeout, as into a black hole
	return nil, errPartitioned
}

func (t *partitionTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.p.blocked(t.port, addr) {
		return dialBlocked(timeout)
	}
	return t.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (t *partitionTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.p.blocked(t.port, a.Addr) {
		return dialBlocked(timeout)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}

func memberNames(cs []*Cluster) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.cfg.NodeName)
	}
	slices.Sort(out)
	return out
}

// TestClusterPartitionHeals: both sides of a partition drop each other; after
// the partition heals the rejoin loop brings them together again (memberlist
// alone stops probing members it declared dead).
func TestClusterPartitionHeals(t *testing.T) {
	p := &partition{}
	cs := startN(t, 4, Config{wrapTransport: p.wrap})
	waitMembers(t, cs, "m1", "m2", "m3", "m4")

	p.split(cs[:2], cs[2:])
	waitMembers(t, cs[:2], "m1", "m2")
	waitMembers(t, cs[2:], "m3", "m4")
	time.Sleep(time.Second) // a few failed rejoin rounds of real members

	p.heal()
	waitMembers(t, cs, "m1", "m2", "m3", "m4")
}

// BenchmarkPartitionHeal measures, with the shipped defaults, the time from
// the end of a partition (2 | 2 members, lasting HERALD_PARTITION_HOLD beyond
// detection, default 1s) until every member lists all four again.
func BenchmarkPartitionHeal(b *testing.B) {
	trials := envInt(b, "HERALD_PARTITION_TRIALS", 10)
	hold := time.Second
	if s := os.Getenv("HERALD_PARTITION_HOLD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("HERALD_PARTITION_HOLD: %v", err)
		}
		hold = d
	}
	for b.Loop() {
		p := &partition{}
		cs := startN(b, 4, Config{wrapTransport: p.wrap})
		all := memberNames(cs)
		waitMembers(b, cs, all...)
		var out []time.Duration
		for trial := range trials {
			// Alternate which members are on which side.
			left, right := []*Cluster{cs[0], cs[1+trial%3]}, []*Cluster{}
			for _, c := range cs {
				if !slices.Contains(left, c) {
					right = append(right, c)
				}
			}
			p.split(left, right)
			waitMembers(b, left, memberNames(left)...)
			waitMembers(b, right, memberNames(right)...)
			time.Sleep(hold) // the partition lasts this long in real time
			t0 := time.Now()
			p.heal()
			waitMembersFast(b, cs, all)
			out = append(out, time.Since(t0))
			time.Sleep(500 * time.Millisecond) // real memberlist settles between trials
		}
		b.Logf("partition heal over %d trials: %v", trials, out)
		b.ReportMetric(float64(quantile(out, 0.5).Nanoseconds()), "ns/op")
		b.ReportMetric(quantile(out, 0.5).Seconds(), "median-s")
		b.ReportMetric(quantile(out, 1).Seconds(), "max-s")
	}
}

// waitMembersFast is waitMembers polling every millisecond, for measuring.
func waitMembersFast(tb testing.TB, cs []*Cluster, want []string) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok := true
		for _, c := range cs {
			if !slices.Equal(names(c.Members()), want) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for members %v", want)
		}
		time.Sleep(time.Millisecond) // polls real members, measuring real time
	}
}
