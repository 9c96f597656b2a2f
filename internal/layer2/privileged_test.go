//go:build privileged

package layer2

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const (
	helperEnv = "HL_L2_HELPER"
	probeEnv  = "HL_L2_PROBE"
	nsSwitch  = "hl-l2-sw"
	nsA       = "hl-l2-a"
	nsB       = "hl-l2-b"
	nsClient  = "hl-l2-client"
)

var (
	labVIP4 = netip.MustParseAddr("198.51.100.200")
	labVIP6 = netip.MustParseAddr("2001:db8:100::200")
	macA    = "02:00:5e:10:00:0a"
	macB    = "02:00:5e:10:00:0b"
	macC    = "02:00:5e:10:00:0c"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	if os.Getenv(probeEnv) != "" {
		os.Exit(runProbe(os.Getenv(probeEnv)))
	}
	goleak.VerifyTestMain(m)
}

// probe runs runProbe in the client namespace and returns the MACs that
// answered.
func probe(t *testing.T, dst string) []string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", nsClient, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), probeEnv+"="+dst)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe to %s: %v", dst, err)
	}
	var macs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if m, ok := strings.CutPrefix(l, "reply "); ok {
			macs = append(macs, m)
		}
	}
	return macs
}

// TestLayer2IgnoresUnicastProbes: a known pitfall. With MAC learning off on
// the switch, every unicast frame is flooded to every port, so node A sees
// the client's neighbour-cache probe addressed to B's MAC. A must not answer
// it (that would steal the address from B's point of view), but must answer
// the same request addressed to its own MAC or broadcast.
func TestLayer2IgnoresUnicastProbes(t *testing.T) {
	requireTools(t)
	buildLab(t)
	for _, port := range []string{"p-a", "p-b", "p-c"} {
		run(t, "ip", "-n", nsSwitch, "link", "set", "dev", port, "type", "bridge_slave", "learning", "off")
	}
	// Forget what was learnt before learning was turned off.
	run(t, "ip", "netns", "exec", nsSwitch, "bridge", "fdb", "flush", "dev", "br0", "dynamic")
	a := startHelper(t, nsA)
	a.set(t, labVIP4)

	if got := probe(t, macB); len(got) != 0 {
		t.Errorf("request unicast to B's MAC answered by %v", got)
	}
	if got := probe(t, macA); !slices.Equal(got, []string{macA}) {
		t.Errorf("request unicast to A's MAC answered by %v, want [%s]", got, macA)
	}
	if got := probe(t, "ff:ff:ff:ff:ff:ff"); !slices.Equal(got, []string{macA}) {
		t.Errorf("broadcast request answered by %v, want [%s]", got, macA)
	}
}

func TestLayer2Lab(t *testing.T) {
	requireTools(t)
	buildLab(t)
	a := startHelper(t, nsA)
	b := startHelper(t, nsB)
	w := watchNeighbours(t)

	// Node A owns both addresses: the client resolves them to A.
	a.set(t, labVIP4, labVIP6)
	out := run(t, "ip", "netns", "exec", nsClient, "arping", "-c1", "-w3", "-I", "eth0", labVIP4.String())
	if !strings.Contains(strings.ToLower(out), macA) {
		t.Fatalf("arping %v answered by someone other than A (%s):\n%s", labVIP4, macA, out)
	}
	// An address nobody owns is not answered.
	if out, err := exec.Command("ip", "netns", "exec", nsClient, "arping", "-c1", "-w1", "-I", "eth0", "198.51.100.201").CombinedOutput(); err == nil {
		t.Fatalf("arping for an unowned address got an answer:\n%s", out)
	}
	resolve(t, labVIP4, macA)
	resolve(t, labVIP6, macA)

	// Move the addresses back and forth; the client's entries must follow
	// from the gratuitous ARP / unsolicited NA alone, without it asking.
	type move struct {
		from, to *helper
		mac      string
	}
	// The first move happens after A has owned the addresses for longer
	// than ConflictGrace: B's gratuitous packets reach A, which must not
	// report them, because it lets go right after (graceful handover).
	moves := []move{{a, b, macB}, {b, a, macA}, {a, b, macB}, {b, a, macA}, {a, b, macB}}
	var d4, d6 []time.Duration
	time.Sleep(DefaultConflictGrace)
	for i, m := range moves {
		time.Sleep(100 * time.Millisecond) // let the previous burst's first rounds pass
		t0 := m.to.set(t, labVIP4, labVIP6)
		m.from.set(t) // the old owner lets go after the new one took over, as in a graceful handover
		at4, ok4 := w.waitMAC(labVIP4, m.mac, t0, 5*time.Second)
		at6, ok6 := w.waitMAC(labVIP6, m.mac, t0, 5*time.Second)
		if !ok4 || !ok6 {
			t.Fatalf("move %d to %s: client entries did not move (IPv4 %v, IPv6 %v):\n%s\n%s", i, m.to.name, ok4, ok6,
				clientNeigh(t, labVIP4), clientNeigh(t, labVIP6))
		}
		d4, d6 = append(d4, at4.Sub(t0)), append(d6, at6.Sub(t0))
		for _, ip := range []netip.Addr{labVIP4, labVIP6} {
			if got := clientNeigh(t, ip); !strings.Contains(got, "lladdr "+m.mac) {
				t.Fatalf("move %d: ip neigh shows %q, want %s", i, got, m.mac)
			}
		}
	}
	t.Logf("neighbour move after Set, IPv4 (gratuitous ARP): %v (median %v)", d4, median(d4))
	t.Logf("neighbour move after Set, IPv6 (unsolicited NA): %v (median %v)", d6, median(d6))

	// B owns the addresses now; A must not answer any more.
	out = run(t, "ip", "netns", "exec", nsClient, "arping", "-c3", "-w3", "-I", "eth0", labVIP4.String())
	if strings.Contains(strings.ToLower(out), macA) || !strings.Contains(strings.ToLower(out), macB) {
		t.Fatalf("after the move, arping answered by A or not by B:\n%s", out)
	}
	// IPv6: forget the entry and resolve again; only B may answer. (Not
	// ndisc6: it drops answers whose source, our link-local address, has
	// a scope other than the global target's; the kernel accepts them.)
	run(t, "ip", "-n", nsClient, "neigh", "del", labVIP6.String(), "dev", "eth0")
	resolve(t, labVIP6, macB)

	time.Sleep(DefaultConflictGrace + 100*time.Millisecond)
	if len(a.conflicts)+len(b.conflicts) != 0 {
		t.Fatalf("conflicts reported during graceful moves: %q %q", a.conflicts, b.conflicts)
	}

	// Split brain: A claims the addresses while B still owns them (B has
	// owned them longer than ConflictGrace). B sees A's gratuitous packets
	// and reports a conflict for each family once A still claims them after
	// the grace.
	a.set(t, labVIP4, labVIP6)
	var got []string
	for range 2 {
		l := b.expect(t, "conflict ", 3*DefaultConflictGrace)
		got = append(got, l)
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("conflict %s eth0 %s", labVIP6, macA),
		fmt.Sprintf("conflict %s eth0 %s", labVIP4, macA),
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("conflict reports %q, want %q", got, want)
	}
}

// TestLayer2LinkFlap: when the announcing link goes down the addresses stop
// being announced there (Interfaces() says so: the speaker's health input);
// when it comes back, the responders reopen and announce again, which moves
// a client's entry that had gone elsewhere meanwhile back to this node.
func TestLayer2LinkFlap(t *testing.T) {
	requireTools(t)
	buildLab(t)
	a := startHelper(t, nsA)
	w := watchNeighbours(t)
	a.set(t, labVIP4, labVIP6)
	resolve(t, labVIP4, macA)
	resolve(t, labVIP6, macA)

	run(t, "ip", "-n", nsA, "link", "set", "eth0", "down")
	a.waitIfaces(t, "link down", func(m map[string][]string) bool { return len(m) == 0 })
	// The keep_addr_on_down pitfall, guarded by the lab's keep_addr_on_down=1: the
	// global address stays (the link-local one goes regardless and comes
	// back on link up; the NDP responder waits for it).
	if out := run(t, "ip", "-n", nsA, "-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, "2001:db8:100::11/64") {
		t.Fatalf("IPv6 address lost on link down despite keep_addr_on_down=1:\n%s", out)
	}
	// Meanwhile the client learnt another MAC for the addresses.
	const elsewhere = "02:00:5e:10:00:ee"
	for _, ip := range []netip.Addr{labVIP4, labVIP6} {
		run(t, "ip", "-n", nsClient, "neigh", "replace", ip.String(), "dev", "eth0", "lladdr", elsewhere, "nud", "stale")
	}

	t0 := time.Now()
	run(t, "ip", "-n", nsA, "link", "set", "eth0", "up")
	at4, ok4 := w.waitMAC(labVIP4, macA, t0, 5*time.Second)
	at6, ok6 := w.waitMAC(labVIP6, macA, t0, 5*time.Second)
	if !ok4 || !ok6 {
		t.Fatalf("after link up the client entries did not come back to A (IPv4 %v, IPv6 %v):\n%s\n%s", ok4, ok6,
			clientNeigh(t, labVIP4), clientNeigh(t, labVIP6))
	}
	t.Logf("client entry back on A after link up: IPv4 %v, IPv6 %v", at4.Sub(t0), at6.Sub(t0))
	a.waitIfaces(t, "link up", func(m map[string][]string) bool {
		return slices.Equal(m[labVIP4.String()], []string{"eth0"}) && slices.Equal(m[labVIP6.String()], []string{"eth0"})
	})
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
