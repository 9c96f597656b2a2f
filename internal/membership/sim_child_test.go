package membership

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/heraldlb/herald/internal/election"
)

// simChild runs members lo..hi-1 of a cluster of n until told to quit.
func simChild() int {
	var n, lo, hi int
	if _, err := fmt.Sscanf(os.Getenv(simChildEnv), "%d:%d:%d", &n, &lo, &hi); err != nil {
		fmt.Fprintln(os.Stderr, "bad", simChildEnv, err)
		return 2
	}
	timing, err := simTiming()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Each join is a broadcast every member receives a dozen times, and
	// the joiner re-broadcasts everyone it learns: 250 members joining
	// within seconds overload two shared CPUs (not real nodes, which each
	// pay for their own). 300 ms apart, the last joins still take half of
	// them.
	stagger := 300 * time.Millisecond
	if v := os.Getenv("HERALD_SIM_STAGGER"); v != "" {
		if stagger, err = time.ParseDuration(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	var peers []netip.AddrPort
	for i := range n {
		peers = append(peers, netip.AddrPortFrom(simAddr(i), DefaultPort))
	}
	keys := make([]netip.Addr, simAddresses)
	for i := range keys {
		keys[i] = netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i % 256)})
	}

	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	emit := func(format string, args ...any) {
		outMu.Lock()
		_, _ = fmt.Fprintf(out, format+"\n", args...)
		_ = out.Flush()
		outMu.Unlock()
	}

	type sim struct {
		c    *Cluster
		sent *atomic.Int64
		stop context.CancelFunc
		done chan struct{}
	}
	members := map[string]*sim{}
	// HERALD_SIM_LOG=1 also reports when this process's goroutines ran
	// late (GC stats alongside): a member that is not scheduled within a
	// probe timeout is suspected however idle its peers are.
	// HERALD_SIM_TRACE=FILE keeps an execution trace of the last seconds
	// of the process holding n000 and writes it at its first stall over
	// 300 ms (go tool trace FILE), to see what starved the members.
	if os.Getenv("HERALD_SIM_LOG") != "" {
		var fr *trace.FlightRecorder
		if os.Getenv("HERALD_SIM_TRACE") != "" && lo == 0 {
			fr = trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 10 * time.Second})
			if fr.Start() != nil {
				fr = nil
			}
		}
		go func() {
			var gcs debug.GCStats
			for {
				t := time.Now()
				time.Sleep(5 * time.Millisecond) // real members over real sockets
				d := time.Since(t)
				if d <= 40*time.Millisecond {
					continue
				}
				debug.ReadGCStats(&gcs)
				var pause time.Duration
				if len(gcs.Pause) > 0 {
					pause = gcs.Pause[0]
				}
				fmt.Fprintf(os.Stderr, "%s members %d..%d: a 5 ms sleep took %v (GC: %d cycles, last pause %v)\n",
					time.Now().Format("15:04:05.000"), lo, hi-1, d.Round(time.Millisecond), gcs.NumGC, pause)
				if d > 300*time.Millisecond && fr != nil {
					if fh, err := os.Create(os.Getenv("HERALD_SIM_TRACE")); err == nil {
						_, _ = fr.WriteTo(fh)
						_ = fh.Close()
					}
					fr.Stop()
					fr = nil
				}
			}
		}()
	}
	startMember := func(i int) error {
		name := simName(i)
		sent := &atomic.Int64{}
		cfg := timing
		cfg.NodeName, cfg.BindAddr, cfg.Port, cfg.Keys = name, simAddr(i), DefaultPort, [][]byte{simKey}
		cfg.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return newCountingTransport(t, sent)
		}
		// HERALD_SIM_LOG=1: each process's first member logs memberlist's
		// messages (suspicions, deaths) to stderr.
		if i == lo && os.Getenv("HERALD_SIM_LOG") != "" {
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
		c, err := Start(context.Background(), cfg)
		if err != nil {
			return err
		}
		// Healthy before joining, as a speaker is: its first health
		// check passes before its Node informer has synced and given it
		// peers, so the cluster hears of it once, not as unhealthy and
		// then again as healthy (each a broadcast to every member).
		if err := c.SetHealthy(context.Background(), true); err != nil {
			emit("log %s: %v", name, err)
		}
		c.SetPeers(peers)
		ctx, stop := context.WithCancel(context.Background())
		s := &sim{c: c, sent: sent, stop: stop, done: make(chan struct{})}
		members[name] = s
		go func() {
			defer close(s.done)
			var last [2]uint64
			for {
				if v := viewPrint(c); v != last {
					last = v
					emit("view %s %d %d %x", name, time.Now().UnixNano(), v[0], v[1])
				}
				select {
				case <-c.Changed():
				case <-ctx.Done():
					return
				}
			}
		}()
		return nil
	}
	// HERALD_SIM_JOINPROFILE=FILE: the process holding n000 profiles its
	// members' start (what joining costs).
	if f := os.Getenv("HERALD_SIM_JOINPROFILE"); f != "" && lo == 0 {
		if fh, err := os.Create(f); err == nil {
			_ = pprof.StartCPUProfile(fh)
		}
	}
	for i := lo; i < hi; i++ {
		if err := startMember(i); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(stagger) // members start apart, as speakers do
	}
	pprof.StopCPUProfile()

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "kill":
			s := members[f[1]]
			s.stop()
			<-s.done
			emit("killed %s %d", f[1], time.Now().UnixNano())
			if err := s.c.Shutdown(); err != nil {
				emit("log shutdown %s: %v", f[1], err)
			}
			delete(members, f[1])
		case "start":
			i, _ := strconv.Atoi(strings.TrimPrefix(f[1], "n"))
			if err := startMember(i); err != nil {
				emit("log start %s: %v", f[1], err)
			}
		case "owners":
			// Members with the same view elect the same owners: elect
			// once per distinct view (1 000 keys over 250 names for each
			// of 250 members would be a CPU-second on top of the
			// simulation it measures).
			byView := map[string][]string{}
			for name, s := range members {
				view := healthyNames(s.c.Members())
				id := strings.Join(view, ",")
				owners, ok := byView[id]
				if !ok {
					r := election.NewRanker(view)
					owners = make([]string, len(keys))
					for i, k := range keys {
						owners[i] = r.Owner(k)
					}
					byView[id] = owners
				}
				var owned []string
				for i, o := range owners {
					if o == name {
						owned = append(owned, strconv.Itoa(i))
					}
				}
				emit("owns %s %s", name, strings.Join(owned, ","))
			}
		case "bytes":
			for name, s := range members {
				emit("bytes %s %d", name, s.sent.Load())
			}
			var ru syscall.Rusage
			if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
				cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				emit("cpu %d %d %d", lo, len(members), cpu.Nanoseconds())
			}
		case "profile":
			// profile FILE NAME starts a CPU profile of this process,
			// profile NAME stops it (see HERALD_SIM_CPUPROFILE).
			if len(f) > 2 {
				fh, err := os.Create(f[1])
				if err == nil {
					err = pprof.StartCPUProfile(fh)
				}
				if err != nil {
					emit("log profile: %v", err)
				}
			} else {
				pprof.StopCPUProfile()
			}
		case "quit":
			for _, s := range members {
				s.stop()
				_ = s.c.Shutdown()
			}
			emit("ok")
			return 0
		}
		emit("ok")
	}
	return 0
}

// viewPrint is a member's view as its size and an order-independent
// fingerprint (the XOR of the names' hashes), read straight from the
// Cluster's member map: every member recomputes it at every change of the
// membership, and sorting 250 names for each of 250 members at every
// change was work the shared CPUs could not spare when a storm of
// suspicions changed the membership many times a second.
func viewPrint(c *Cluster) [2]uint64 {
	var v [2]uint64
	c.membersMu.Lock()
	defer c.membersMu.Unlock()
	for name, m := range c.members {
		if m.Healthy {
			h := uint64(14695981039346656037) // FNV-1a, without an allocation
			for i := range len(name) {
				h = (h ^ uint64(name[i])) * 1099511628211
			}
			v[0]++
			v[1] ^= h
		}
	}
	return v
}

func healthyNames(ms []Member) []string {
	var out []string
	for _, m := range ms {
		if m.Healthy {
			out = append(out, m.Name)
		}
	}
	return out
}

// countingTransport counts the bytes a member sends: UDP packets and both
// directions' writes on its TCP streams (push/pull answers included).
type countingTransport struct {
	memberlist.NodeAwareTransport
	sent    *atomic.Int64
	streams chan net.Conn
}

func newCountingTransport(t memberlist.NodeAwareTransport, sent *atomic.Int64) *countingTransport {
	ct := &countingTransport{NodeAwareTransport: t, sent: sent, streams: make(chan net.Conn)}
	go func() {
		for c := range t.StreamCh() {
			ct.streams <- countingConn{c, sent}
		}
	}()
	return ct
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.sent.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.sent.Add(int64(len(b)))
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return countingConn{c, t.sent}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return countingConn{c, t.sent}, nil
}

type countingConn struct {
	net.Conn
	sent *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(int64(n))
	return n, err
}
