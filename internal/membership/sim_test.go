package membership

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The 250-speaker simulation: BenchmarkSimulation starts the
// members in child processes (this test binary run again with simChildEnv
// set; one process by default), each member with its own loopback address
// 127.1.x.y and the shipped port, all encrypted with one key, so a member
// costs what a speaker's memberlist costs. The parent drives the children
// over stdin/stdout:
//
//	parent -> child: kill NAME | start NAME | owners | bytes | quit
//	child -> parent: view NAME UNIXNANO N HASH   (a member's live, healthy set changed)
//	                 killed NAME UNIXNANO
//	                 owns NAME I,J,K             (indices of simAddresses NAME owns)
//	                 bytes NAME SENT             (bytes its transport sent so far)
//	                 ok                          (command done)
//
// A member's view is the set of members it counts as healthy candidates
// (sent as its size and a fingerprint, see viewPrint); the address owners
// follow from it (Owner is a pure function), so "every address has exactly
// one owner" is checked twice: every survivor reports the same view, and
// the owners each member claims from its own view cover every address
// exactly once.
const simChildEnv = "HERALD_SIM_CHILD"

// simAddresses is how many addresses the owner check spreads.
const simAddresses = 1000

// simKey encrypts the simulation's memberlist traffic like a real key.
var simKey = []byte("herald-sim-key-0123456789abcdef!")

func init() {
	if os.Getenv(simChildEnv) != "" {
		os.Exit(simChild())
	}
}

func simAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
}

func simName(i int) string { return fmt.Sprintf("n%03d", i) }

// simProbeTimeout is one of the two timing values the simulation tunes:
// 250 members on two shared CPUs answer a ping late whenever
// their process collects garbage or a burst of joins queues work, and with
// the shipped 50 ms every late ack started indirect and TCP probes, which
// added the load that made the next acks late: a storm of false suspicions
// the cluster never left. 80 ms leaves the indirect probes 20 ms (plenty on
// loopback) and does not change detection time, which the probe interval
// sets. Real speakers each have a node's CPUs; they keep the shipped 50 ms.
const simProbeTimeout = 80 * time.Millisecond

// simSuspicionMult is the simulation's other tuned value. At 250 members
// the suspicion timeout is the largest part of the time to agree on a
// death (mult × log10(250) × probe interval: 480 ms with the shipped 2),
// and with it the worst kills came close to the 1 s failover target; with
// 1 (240 ms) they stay well under it, and a falsely suspected
// member then has 240 ms to refute, which the simulation's steady window
// checks (any view change fails it).
const simSuspicionMult = 1

// simTiming is the memberlist timing the simulation runs with, from the
// environment (HERALD_SIM_PROBE_INTERVAL, ..._PROBE_TIMEOUT,
// ..._SUSPICION_MULT, ..._GOSSIP_INTERVAL); unset values are the shipped
// defaults, except the probe timeout (simProbeTimeout) and the suspicion
// multiplier (simSuspicionMult).
func simTiming() (Config, error) {
	var cfg Config
	var err error
	dur := func(name string, d *time.Duration) {
		if s := os.Getenv(name); s != "" && err == nil {
			*d, err = time.ParseDuration(s)
		}
	}
	dur("HERALD_SIM_PROBE_INTERVAL", &cfg.ProbeInterval)
	dur("HERALD_SIM_PROBE_TIMEOUT", &cfg.ProbeTimeout)
	dur("HERALD_SIM_GOSSIP_INTERVAL", &cfg.GossipInterval)
	if s := os.Getenv("HERALD_SIM_SUSPICION_MULT"); s != "" && err == nil {
		cfg.SuspicionMult, err = strconv.Atoi(s)
	}
	pi, _, _, gi := DefaultTiming()
	cfg.ProbeInterval = cmp.Or(cfg.ProbeInterval, pi)
	cfg.ProbeTimeout = cmp.Or(cfg.ProbeTimeout, simProbeTimeout)
	cfg.SuspicionMult = cmp.Or(cfg.SuspicionMult, simSuspicionMult)
	cfg.GossipInterval = cmp.Or(cfg.GossipInterval, gi)
	return cfg, err
}

// simProc is one child process as the parent sees it.
type simProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lo    int
	hi    int
	acks  chan struct{}
}

// simCluster is the parent's picture of the whole simulation.
type simCluster struct {
	tb    testing.TB
	n     int
	procs []*simProc

	mu     sync.Mutex
	views  map[string]simView
	killed map[string]time.Time
	owns   map[string][]int
	bytes  map[string]int64
	cpu    map[string]time.Duration // per process (its first member's index)
	change chan struct{}
}

type simView struct {
	at   time.Time
	view string // "N HASH"
}

func startSim(tb testing.TB, n, procs int) *simCluster {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	s := &simCluster{tb: tb, n: n, views: map[string]simView{}, killed: map[string]time.Time{},
		owns: map[string][]int{}, bytes: map[string]int64{}, cpu: map[string]time.Duration{}, change: make(chan struct{}, 1)}
	per := (n + procs - 1) / procs
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%d:%d", simChildEnv, n, lo, hi))
		// One garbage collector serves all the members of a process, and
		// its mark phase slows every one of them at once: in traces of
		// 250 members in one process, each storm of false suspicions
		// began with a collection, and with the default GOGC there is one
		// every few hundred milliseconds. Real speakers, one per node,
		// never pause together; so the simulation collects less often
		// (GOGC=400) unless GOGC is set. (GOGC=off with a memory limit
		// was worse: fresh pages cost more CPU than collecting.)
		if os.Getenv("GOGC") == "" {
			cmd.Env = append(cmd.Env, "GOGC=400")
		}
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			tb.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		p := &simProc{cmd: cmd, stdin: stdin, lo: lo, hi: hi, acks: make(chan struct{}, 1)}
		s.procs = append(s.procs, p)
		go s.read(p, stdout)
	}
	tb.Cleanup(s.quit)
	return s
}

func (s *simCluster) read(p *simProc, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		s.mu.Lock()
		switch f[0] {
		case "view":
			ns, _ := strconv.ParseInt(f[2], 10, 64)
			s.views[f[1]] = simView{at: time.Unix(0, ns), view: f[3] + " " + f[4]}
		case "killed":
			ns, _ := strconv.ParseInt(f[2], 10, 64)
			s.killed[f[1]] = time.Unix(0, ns)
			delete(s.views, f[1])
		case "owns":
			var idx []int
			if len(f) > 2 {
				for _, x := range strings.Split(f[2], ",") {
					i, _ := strconv.Atoi(x)
					idx = append(idx, i)
				}
			}
			s.owns[f[1]] = idx
		case "bytes":
			b, _ := strconv.ParseInt(f[2], 10, 64)
			s.bytes[f[1]] = b
		case "cpu":
			ns, _ := strconv.ParseInt(f[3], 10, 64)
			s.cpu[f[1]] = time.Duration(ns)
		case "log":
			s.tb.Log(strings.Join(f[1:], " "))
		}
		s.mu.Unlock()
		if f[0] == "ok" {
			p.acks <- struct{}{}
			continue
		}
		select {
		case s.change <- struct{}{}:
		default:
		}
	}
}

// do sends cmd to the processes (all, or the one holding member name) and
// waits for their acknowledgements.
func (s *simCluster) do(cmd, name string) {
	s.tb.Helper()
	for _, p := range s.procs {
		if name != "" {
			i, _ := strconv.Atoi(strings.TrimPrefix(name, "n"))
			if i < p.lo || i >= p.hi {
				continue
			}
		}
		line := cmd
		if name != "" {
			line += " " + name
		}
		if _, err := fmt.Fprintln(p.stdin, line); err != nil {
			s.tb.Fatalf("%s: %v", line, err)
		}
		select {
		case <-p.acks:
		case <-time.After(time.Minute):
			s.tb.Fatalf("%s: no answer from members %d..%d", line, p.lo, p.hi-1)
		}
	}
}

func (s *simCluster) quit() {
	for _, p := range s.procs {
		_, _ = fmt.Fprintln(p.stdin, "quit")
		_ = p.stdin.Close()
	}
	for _, p := range s.procs {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				s.tb.Logf("simulation process of members %d..%d: %v", p.lo, p.hi-1, err)
			}
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			s.tb.Logf("simulation process of members %d..%d did not quit within 30 s: killed (%v)", p.lo, p.hi-1, <-done)
		}
	}
}

// waitConverged waits until every member in live reports a view of
// exactly len(live) members, all the same, and returns the latest instant
// at which one of them changed its view.
func (s *simCluster) waitConverged(live []string, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		var last time.Time
		same, first := true, ""
		for _, name := range live {
			v, ok := s.views[name]
			if !ok || !strings.HasPrefix(v.view, strconv.Itoa(len(live))+" ") {
				same = false
				break
			}
			if first == "" {
				first = v.view
			}
			if v.view != first {
				same = false
				break
			}
			if v.at.After(last) {
				last = v.at
			}
		}
		s.mu.Unlock()
		if same {
			return last, true
		}
		select {
		case <-s.change:
		case <-deadline:
			return time.Time{}, false
		}
	}
}

// describe summarises the views that differ from the majority's, for a
// failure message.
func (s *simCluster) describe(live []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	count := map[string]int{}
	for _, name := range live {
		count[s.views[name].view]++
	}
	return fmt.Sprint(count)
}

// checkOwners asks every member which addresses it owns and fails unless
// each address has exactly one owner.
func (s *simCluster) checkOwners() {
	s.tb.Helper()
	s.mu.Lock()
	clear(s.owns)
	s.mu.Unlock()
	s.do("owners", "")
	s.mu.Lock()
	defer s.mu.Unlock()
	owners := make([]int, simAddresses)
	for _, idx := range s.owns {
		for _, i := range idx {
			owners[i]++
		}
	}
	for i, c := range owners {
		if c != 1 {
			s.tb.Errorf("address %d has %d owners; want exactly 1", i, c)
			return
		}
	}
}

// sentBytes returns the bytes each member has sent and the CPU time all
// processes have used so far.
func (s *simCluster) sentBytes() (map[string]int64, time.Duration) {
	s.do("bytes", "")
	s.mu.Lock()
	defer s.mu.Unlock()
	var cpu time.Duration
	for _, c := range s.cpu {
		cpu += c
	}
	return maps.Clone(s.bytes), cpu
}

// BenchmarkSimulation runs the 250-speaker simulation: HERALD_SIM_MEMBERS
// (250) speakers' memberlist in HERALD_SIM_PROCS (1) processes on
// loopback, started HERALD_SIM_STAGGER (300 ms) apart within a process,
// with the shipped timing except the probe timeout (simProbeTimeout) and
// the suspicion multiplier (simSuspicionMult) unless HERALD_SIM_* overrides
// it (see simTiming). It reports the steady
// memberlist traffic sent per node over HERALD_SIM_STEADY_SECONDS (60,
// long enough for the scaled push/pull period) and, over HERALD_SIM_TRIALS
// (10) kills of one member (no leave), the time until every survivor
// counts the same members again and every address has exactly one owner.
//
// One process, because it is the cheapest per member: 1.9 ms of CPU per
// member per second against 3.6–4.9 ms with 4 to 10 processes (each
// runtime polls, spins and collects for itself), and two shared CPUs have
// no room for more. Its garbage collector is tuned down (see startSim).
//
//	go test -run '^$' -bench Simulation -benchtime 1x -timeout 30m ./internal/membership/
func BenchmarkSimulation(b *testing.B) {
	n := envInt(b, "HERALD_SIM_MEMBERS", 250)
	procs := envInt(b, "HERALD_SIM_PROCS", 1)
	trials := envInt(b, "HERALD_SIM_TRIALS", 10)
	steady := time.Duration(envInt(b, "HERALD_SIM_STEADY_SECONDS", 60)) * time.Second
	timing, err := simTiming()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d members in %d processes; probe %v, timeout %v, suspicion ×%d, gossip %v",
		n, procs, timing.ProbeInterval, timing.ProbeTimeout, timing.SuspicionMult, timing.GossipInterval)
	for b.Loop() {
		t0 := time.Now()
		s := startSim(b, n, procs)
		all := make([]string, n)
		for i := range all {
			all[i] = simName(i)
		}
		if _, ok := s.waitConverged(all, 3*time.Minute); !ok {
			b.Fatalf("%d members did not converge in 3 min: views %s", n, s.describe(all))
		}
		b.Logf("all %d members see each other %v after the first start", n, time.Since(t0).Round(time.Millisecond))
		s.checkOwners()

		// Steady traffic: nothing changes for the whole window.
		time.Sleep(5 * time.Second) // real cluster settles
		// HERALD_SIM_CPUPROFILE=FILE: the process holding n000 profiles
		// itself over the steady window (what a member costs when nothing
		// happens).
		prof := os.Getenv("HERALD_SIM_CPUPROFILE")
		if prof != "" {
			s.do("profile "+prof, simName(0))
		}
		before, cpu0 := s.sentBytes()
		w0 := time.Now()
		time.Sleep(steady) // measures steady real traffic
		after, cpu1 := s.sentBytes()
		if prof != "" {
			s.do("profile", simName(0))
		}
		w := time.Since(w0)
		var rates []float64
		for name, a := range after {
			rates = append(rates, float64(a-before[name])/w.Seconds())
		}
		slices.Sort(rates)
		var sum float64
		for _, r := range rates {
			sum += r
		}
		mean, maxRate := sum/float64(len(rates)), rates[len(rates)-1]
		cpuPerMember := time.Duration(float64(cpu1-cpu0) / w.Seconds() / float64(n))
		b.Logf("steady memberlist traffic sent per node over %v: mean %.0f B/s, median %.0f B/s, max %.0f B/s; CPU %v per member per second",
			w.Round(time.Second), mean, rates[len(rates)/2], maxRate, cpuPerMember.Round(10*time.Microsecond))
		if _, ok := s.waitConverged(all, time.Second); !ok {
			b.Errorf("a view changed while nothing happened (false suspicion): %s", s.describe(all))
		}

		var took []time.Duration
		for trial := range trials {
			victim := simName((trial*37 + 11) % n)
			live := slices.DeleteFunc(slices.Clone(all), func(x string) bool { return x == victim })
			s.do("kill", victim)
			s.mu.Lock()
			killed := s.killed[victim]
			s.mu.Unlock()
			last, ok := s.waitConverged(live, time.Minute)
			if !ok {
				b.Fatalf("trial %d: survivors of %s's death did not agree within a minute: %s", trial, victim, s.describe(live))
			}
			s.checkOwners()
			took = append(took, last.Sub(killed))
			s.do("start", victim)
			if _, ok := s.waitConverged(all, time.Minute); !ok {
				b.Fatalf("trial %d: %s did not rejoin within a minute: %s", trial, victim, s.describe(all))
			}
			time.Sleep(2 * time.Second) // real cluster settles between kills
		}
		b.Logf("one member killed, every survivor agrees again after: %v", took)
		b.ReportMetric(quantile(took, 0.5).Seconds(), "median-s")
		b.ReportMetric(quantile(took, 1).Seconds(), "max-s")
		b.ReportMetric(mean, "mean-B/s")
		b.ReportMetric(maxRate, "max-B/s")
		b.ReportMetric(float64(cpuPerMember.Microseconds())/1000, "cpu-ms/s/member")
	}
}
