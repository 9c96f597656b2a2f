//go:build privileged

package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab/netns"
)

// The BGP variant of the control-plane lab: an FRR router on the
// control-plane segment learns the VIP from every node whose API server is
// ready and spreads a client behind it over them (ECMP).
const (
	cpRouter    = cpPrefix + "rt"
	cpBGPClient = cpPrefix + "bc"
	cpRouterASN = 64512
	cpNodesASN  = 64513
	cpBGPTrials = 5
)

var cpRouterAddr = netip.MustParseAddr("203.0.113.1")

// cpFRRConf peers with any address of the segment (the speakers dial in)
// and keeps a session's routes 3 s after it goes silent.
const cpFRRConf = `frr defaults datacenter
hostname cp-router
log stdout informational
!
router bgp %[1]d
 bgp router-id %[2]s
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor CP peer-group
 neighbor CP remote-as %[3]d
 neighbor CP timers 1 3
 bgp listen range 203.0.113.0/24 peer-group CP
 !
 address-family ipv4 unicast
  neighbor CP activate
  neighbor CP route-map NOTHING out
  maximum-paths 16
 exit-address-family
exit
!
route-map NOTHING deny 10
exit
!
`

// addRouter puts the router on the segment and a client behind it, and
// starts FRR (zebra and bgpd) in the router's namespace.
func (l *cpLab) addRouter(ctx context.Context) *http.Client {
	t := l.t
	addNS(ctx, t, cpRouter)
	addNS(ctx, t, cpBGPClient)
	attach(ctx, t, cpRouter, "prt", cpRouterAddr.String()+"/24")
	ipIn(ctx, t, cpRouter, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", cpBGPClient)
	ipIn(ctx, t, cpRouter, "addr", "add", "198.51.100.253/30", "dev", "eth1")
	ipIn(ctx, t, cpRouter, "link", "set", "eth1", "up")
	ipIn(ctx, t, cpBGPClient, "addr", "add", "198.51.100.254/30", "dev", "eth0")
	ipIn(ctx, t, cpBGPClient, "link", "set", "eth0", "up")
	ipIn(ctx, t, cpBGPClient, "route", "add", "default", "via", "198.51.100.253")
	// Hash on ports too, so that one client's connections spread over
	// every node.
	if _, err := netns.Run(ctx, cpRouter, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.nodes {
		ipIn(ctx, t, n.ns, "route", "add", "198.51.100.252/30", "via", cpRouterAddr.String())
	}

	dir, err := os.MkdirTemp("", "hl-cpv-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// The daemons drop to user frr and must read their configuration.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, cpFRRConf, cpRouterASN, cpRouterAddr, cpNodesASN), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join("/var/run/frr", cpRouter)
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(run) })
	if out, err := exec.Command("chown", "frr:frr", run).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v: %s", run, err, out)
	}
	zserv := filepath.Join(run, "zserv.api")
	common := []string{"-N", cpRouter, "-f", conf, "-z", zserv, "-A", "127.0.0.1", "-P", "0", "--log", "stdout"}
	for _, d := range []string{"zebra", "bgpd"} {
		l.startIn(cpRouter, d, append([]string{"/usr/lib/frr/" + d}, common...)...)
		if d == "zebra" {
			if err := pollUntil(10*time.Second, func() bool { _, err := os.Stat(zserv); return err == nil }); err != nil {
				t.Fatalf("zebra did not open %s", zserv)
			}
		}
	}
	if err := pollUntil(15*time.Second, func() bool {
		out, err := netns.Run(ctx, cpRouter, "vtysh", "-N", cpRouter, "-c", "show bgp summary")
		return err == nil && !strings.Contains(out, "not running")
	}); err != nil {
		t.Fatal("bgpd did not start")
	}

	return l.clientIn(cpBGPClient)
}

// nextHops are the router's kernel next hops for the IPv4 VIP.
func nextHops(ctx context.Context) []string {
	out, _ := netns.IP(ctx, "-n", cpRouter, "route", "show", cpVIP4.String()+"/32")
	var hops []string
	for f := range strings.FieldsSeq(out) {
		if a, err := netip.ParseAddr(f); err == nil && a != cpVIP4 {
			hops = append(hops, a.String())
		}
	}
	return hops
}

func (l *cpLab) waitNextHops(ctx context.Context, timeout time.Duration, want ...*cpNode) {
	l.t.Helper()
	var got []string
	if err := pollUntil(timeout, func() bool {
		got = nextHops(ctx)
		if len(got) != len(want) {
			return false
		}
		for _, n := range want {
			if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+n.v4.String()+" ") {
				return false
			}
		}
		return true
	}); err != nil {
		l.t.Fatalf("the router's next hops for the VIP are %v after %v; want the nodes %v", got, timeout, nodeNames(want))
	}
}

func nodeNames(ns []*cpNode) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.name)
	}
	return out
}

func without(ns []*cpNode, not *cpNode) []*cpNode {
	var out []*cpNode
	for _, n := range ns {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

// TestControlPlaneVIPBGP is the control-plane mode with --bgp-peers: every
// node whose API server is ready routes the VIP to itself, an API server
// that fails is withdrawn at its next check, a node that goes silent when
// the router's hold time runs out, and the client behind the router keeps
// being served by the others meanwhile.
func TestControlPlaneVIPBGP(t *testing.T) {
	l := startCPLab(t)
	ctx := t.Context()
	bc := l.addRouter(ctx)
	margs := l.manifestArgs("--vip", cpVIP4.String(), "--bgp-peers", cpRouterAddr.String(),
		"--bgp-asn", fmt.Sprint(cpNodesASN), "--bgp-peer-asn", fmt.Sprint(cpRouterASN))
	for _, n := range l.nodes {
		// The router's 3 s hold time is proposed by the speakers too.
		l.startSpeakerWith(n, margs, "--bgp-hold-time=3s")
	}
	for _, n := range l.nodes {
		srv, err := l.cluster.StartAPIServerIn(ctx, "kube-apiserver-"+n.name, n.ns, n.v4.String(), cpPort)
		if err != nil {
			t.Fatal(err)
		}
		n.server = srv
	}
	l.waitNextHops(ctx, 30*time.Second, l.nodes...)
	if err := l.getWith(ctx, bc, cpVIP4); err != nil {
		t.Fatalf("through the router: %v", err)
	}

	measure := func(what string, fail func(*cpNode), restore func(*cpNode)) {
		var withdrawn, outages []time.Duration
		failedAll := 0
		for i := range cpBGPTrials {
			n := l.nodes[i%len(l.nodes)]
			p := l.probeWith(bc, cpVIP4)
			time.Sleep(300 * time.Millisecond)
			at := time.Now()
			fail(n)
			l.waitNextHops(ctx, 10*time.Second, without(l.nodes, n)...)
			w := time.Since(at)
			time.Sleep(time.Second)
			probes := p.finish()
			d, failed, why := outage(probes, at)
			if d < 0 {
				t.Fatalf("%s trial %d: requests through the router still failing at the end (%d failed; first: %s)", what, i, failed, why)
			}
			t.Logf("%s trial %d (%s): route withdrawn after %v; requests all succeed again after %v; %d of %d failed (first: %s)",
				what, i, n.name, w.Round(time.Millisecond), d.Round(time.Millisecond), failed, len(probes), why)
			withdrawn, outages = append(withdrawn, w), append(outages, d)
			failedAll += failed
			restore(n)
			l.waitNextHops(ctx, 30*time.Second, l.nodes...)
		}
		t.Logf("FIGURE control-plane VIP over BGP, %s: route withdrawn %s; requests all succeed again %s; %d requests failed in all",
			what, summary(withdrawn), summary(outages), failedAll)
	}
	measure("a node's kube-apiserver killed", func(n *cpNode) {
		if err := n.server.Stop(); err != nil {
			t.Fatal(err)
		}
	}, func(n *cpNode) {
		if err := n.server.Start(ctx); err != nil {
			t.Fatal(err)
		}
	})
	measure("a node's link cut", func(n *cpNode) {
		ipIn(ctx, t, n.ns, "link", "set", "eth0", "down")
	}, func(n *cpNode) {
		ipIn(ctx, t, n.ns, "link", "set", "eth0", "up")
		// The node's own route to the client went with the link.
		if _, err := netns.IP(ctx, "-n", n.ns, "route", "replace", "198.51.100.252/30", "via", cpRouterAddr.String()); err != nil {
			t.Fatal(err)
		}
	})
}
