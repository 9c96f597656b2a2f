//go:build privileged

package layer2

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// requireTools fails, naming the Debian package, if a tool is missing.
func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("privileged tests built in but not running as root: network namespaces and raw sockets need root")
	}
	for tool, pkg := range map[string]string{"ip": "iproute2", "bridge": "iproute2", "arping": "iputils-arping", "bash": "bash", "sysctl": "procps"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install -y %s", tool, pkg)
		}
	}
}

// buildLab creates the namespaces and removes them in t.Cleanup.
func buildLab(t *testing.T) {
	t.Helper()
	all := []string{nsSwitch, nsA, nsB, nsClient}
	cleanup := func() {
		for _, ns := range all {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	cleanup() // leftovers of an interrupted run of this same test
	t.Cleanup(cleanup)
	for _, ns := range all {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// No multicast snooping: without an MLD querier in the lab, snooping
	// would only add nondeterminism to solicited-node multicast.
	run(t, "ip", "-n", nsSwitch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "ip", "-n", nsSwitch, "link", "set", "br0", "up")
	hosts := []struct {
		ns, port, mac string
		host          int
	}{{nsA, "p-a", macA, 11}, {nsB, "p-b", macB, 12}, {nsClient, "p-c", macC, 100}}
	for _, h := range hosts {
		run(t, "ip", "link", "add", h.port, "netns", nsSwitch, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
		run(t, "ip", "-n", nsSwitch, "link", "set", h.port, "master", "br0", "up")
		run(t, "ip", "-n", h.ns, "link", "set", "eth0", "address", h.mac)
		sysctls := []string{
			// Lab speed-up only: no DAD wait before the link-local address
			// (the NDP socket's source) is usable.
			"net.ipv6.conf.eth0.accept_dad=0",
			// A known pitfall: keep IPv6 addresses across link flaps.
			"net.ipv6.conf.eth0.keep_addr_on_down=1",
		}
		if h.ns == nsClient {
			// A normal client: the kernel defaults, stated explicitly. With
			// arp_accept=0 a gratuitous ARP cannot create an entry but does
			// update an existing one; drop_gratuitous_arp=0 and
			// drop_unsolicited_na=0 let the announcements in at all.
			sysctls = append(sysctls,
				"net.ipv4.conf.eth0.arp_accept=0",
				"net.ipv4.conf.eth0.drop_gratuitous_arp=0",
				"net.ipv6.conf.eth0.drop_unsolicited_na=0",
			)
		}
		run(t, "ip", append([]string{"netns", "exec", h.ns, "sysctl", "-q", "-w"}, sysctls...)...)
		run(t, "ip", "-n", h.ns, "addr", "add", fmt.Sprintf("198.51.100.%d/24", h.host), "dev", "eth0")
		run(t, "ip", "-n", h.ns, "addr", "add", fmt.Sprintf("2001:db8:100::%d/64", h.host), "dev", "eth0", "nodad")
		run(t, "ip", "-n", h.ns, "link", "set", "eth0", "up")
	}
}

// neighWatch records when the client's neighbour entries change.
type neighWatch struct {
	mu     sync.Mutex
	events []neighEvent
}

type neighEvent struct {
	at  time.Time
	ip  netip.Addr
	mac string
}

func watchNeighbours(t *testing.T) *neighWatch {
	t.Helper()
	h, err := netns.GetFromName(nsClient)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ch := make(chan netlink.NeighUpdate, 256)
	done := make(chan struct{})
	if err := netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{Namespace: &h}); err != nil {
		t.Fatal(err)
	}
	w := &neighWatch{}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for u := range ch {
			now := time.Now()
			ip, _ := netip.AddrFromSlice(u.IP)
			w.mu.Lock()
			w.events = append(w.events, neighEvent{now, ip.Unmap(), u.HardwareAddr.String()})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(done); <-finished })
	return w
}

// waitMAC returns the first time at or after since that ip's entry showed mac.
func (w *neighWatch) waitMAC(ip netip.Addr, mac string, since time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, e := range w.events {
			if e.ip == ip && e.mac == mac && !e.at.Before(since) {
				w.mu.Unlock()
				return e.at, true
			}
		}
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, false
}

func clientNeigh(t *testing.T, ip netip.Addr) string {
	t.Helper()
	return strings.TrimSpace(run(t, "ip", "-n", nsClient, "neigh", "show", ip.String(), "dev", "eth0"))
}

// resolve makes the client's kernel resolve ip (one UDP datagram to the
// discard port through bash's /dev/udp; nobody needs to answer it) and
// checks that the entry becomes usable with mac.
func resolve(t *testing.T, ip netip.Addr, mac string) {
	t.Helper()
	run(t, "ip", "netns", "exec", nsClient, "bash", "-c", fmt.Sprintf("echo x >/dev/udp/%s/9", ip))
	var got string
	for range 300 {
		got = clientNeigh(t, ip)
		if strings.Contains(got, "lladdr "+mac) && (strings.Contains(got, "REACHABLE") || strings.Contains(got, "STALE") || strings.Contains(got, "DELAY")) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("client neighbour entry for %v = %q, want a usable entry with %s", ip, got, mac)
}
