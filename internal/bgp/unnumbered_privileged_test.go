//go:build privileged

package bgp

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// The unnumbered test runs on a veth between two network namespaces, each
// side in a process of its own started under `ip netns exec` (this test
// binary again, with HL_UNNUM_ROLE set): GoBGP opens its sockets from its
// own goroutines, which one thread switched into a namespace would not
// cover. The link carries link-local addresses only (no autoconfigured
// ones, no DAD), so neither kernel knows the other until a packet tells it.
const (
	unnumNSRouter = "hl-unnum-a"
	unnumNSHerald = "hl-unnum-b"
	unnumIfRouter = "hlu-a"
	unnumIfHerald = "hlu-b"
	unnumLLRouter = "fe80::a"
	unnumLLHerald = "fe80::b"
	unnumNH6      = "2001:db8:1::b" // herald's node's IPv6 next hop
	unnumPrefix6  = "2001:db8:113::10/128"
	unnumPrefix4  = "198.51.100.10/32"
	unnumHeraldAS = 64500
	unnumRouterAS = 64601
)

// TestUnnumberedSession: herald's Announcer with an interface peer finds a
// router that shows itself only after the speaker started (it reports why
// it waits until then), opens the session over the link-local addresses,
// and the router receives the IPv6 prefix with herald's next hop and no
// IPv4 prefix.
func TestUnnumberedSession(t *testing.T) {
	if os.Getenv("HL_UNNUM_ROLE") != "" {
		t.Skip("helper process")
	}
	if os.Geteuid() != 0 {
		t.Fatal("*** NOT RUN: TestUnnumberedSession needs root (it builds network namespaces); run the privileged tests as root ***")
	}
	setupUnnumberedLink(t)
	dir := t.TempDir()
	router := unnumHelper(t, unnumNSRouter, "router", dir)
	herald := unnumHelper(t, unnumNSHerald, "herald", dir)

	// herald runs and waits for a router nobody has seen yet.
	waitFile(t, filepath.Join(dir, "herald-waiting"), 30*time.Second)
	reason, _ := os.ReadFile(filepath.Join(dir, "herald-waiting"))
	if !strings.Contains(string(reason), "no IPv6 link-local neighbour on "+unnumIfHerald+" yet") {
		t.Errorf("reason while the router is unknown: %q", reason)
	}
	// The router speaks up (as an RA or NS would make it known).
	if err := os.WriteFile(filepath.Join(dir, "router-speak"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string]*exec.Cmd{"router": router, "herald": herald} {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s helper: %v", name, err)
			}
		case <-time.After(90 * time.Second):
			t.Errorf("%s helper did not finish", name)
		}
	}
	rib, err := os.ReadFile(filepath.Join(dir, "router-rib"))
	if err != nil {
		t.Fatalf("router's RIB: %v", err)
	}
	t.Logf("router's RIB: %s", rib)
	var got map[string]string
	if err := json.Unmarshal(rib, &got); err != nil {
		t.Fatal(err)
	}
	if got[unnumPrefix6] != unnumNH6 {
		t.Errorf("router has %s with next hop %q, want %s", unnumPrefix6, got[unnumPrefix6], unnumNH6)
	}
	if nh, ok := got[unnumPrefix4]; ok {
		t.Errorf("router got %s (next hop %s) over the link-local session", unnumPrefix4, nh)
	}
}

// setupUnnumberedLink creates the namespaces and the veth, and deletes
// them when the test ends, whatever happened.
func setupUnnumberedLink(t *testing.T) {
	t.Helper()
	cleanup := func() {
		for _, ns := range []string{unnumNSRouter, unnumNSHerald} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	cleanup() // a previous run killed before its clean-up
	t.Cleanup(cleanup)
	ipCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ipCmd("netns", "add", unnumNSRouter)
	ipCmd("netns", "add", unnumNSHerald)
	ipCmd("-n", unnumNSRouter, "link", "add", unnumIfRouter, "type", "veth", "peer", "name", unnumIfHerald, "netns", unnumNSHerald)
	for _, side := range []struct{ ns, dev, ll string }{
		{unnumNSRouter, unnumIfRouter, unnumLLRouter},
		{unnumNSHerald, unnumIfHerald, unnumLLHerald},
	} {
		// No EUI-64 address beside the chosen one, so "the router's
		// link-local address" is one address.
		ipCmd("-n", side.ns, "link", "set", side.dev, "addrgenmode", "none")
		ipCmd("-n", side.ns, "addr", "add", side.ll+"/64", "dev", side.dev, "nodad")
		ipCmd("-n", side.ns, "link", "set", side.dev, "up")
		ipCmd("-n", side.ns, "link", "set", "lo", "up")
	}
}

// unnumHelper starts this test binary in ns as the given role.
func unnumHelper(t *testing.T, ns, role, dir string) *exec.Cmd {
	t.Helper()
	run := map[string]string{"router": "TestUnnumberedRouterHelper", "herald": "TestUnnumberedHeraldHelper"}[role]
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+run+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "HL_UNNUM_ROLE="+role, "HL_UNNUM_DIR="+dir)
	out, err := os.Create(filepath.Join(dir, role+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the %s helper: %v", role, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = out.Close()
		if t.Failed() || testing.Verbose() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("%s helper's output:\n%s", role, log)
		}
	})
	return cmd
}

func waitFile(t testing.TB, path string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", path, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUnnumberedRouterHelper is the router: a GoBGP listening on port 179
// with herald's link-local address as a passive neighbour. When told to
// speak it sends herald one datagram (its kernel resolves herald's address
// with a neighbour solicitation, which herald's kernel learns the router
// from), then waits for herald's routes and writes its RIB.
func TestUnnumberedRouterHelper(t *testing.T) {
	if os.Getenv("HL_UNNUM_ROLE") != "router" {
		t.Skip("run by TestUnnumberedSession")
	}
	dir := os.Getenv("HL_UNNUM_DIR")
	r := newRouterOn(t, 179, unnumRouterAS, "10.255.0.1", routerNeighbor{addr: unnumLLHerald + "%" + unnumIfRouter, asn: unnumHeraldAS})
	waitFile(t, filepath.Join(dir, "router-speak"), 60*time.Second)
	c, err := net.Dial("udp6", net.JoinHostPort(unnumLLHerald+"%"+unnumIfRouter, "9"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("hello"))
	_ = c.Close()
	waitFor(t, "herald's IPv6 prefix", func() bool { return r.count(true) == 1 })
	// Give a wrongly sent IPv4 prefix the time to arrive too.
	time.Sleep(2 * time.Second)
	out := map[string]string{}
	for _, v6 := range []bool{false, true} {
		for pfx, rcv := range r.rib(v6) {
			out[pfx.String()] = rcv.NextHop.String()
		}
	}
	t.Logf("neighbour: %+v", r.neighbor().GetState())
	data, _ := json.Marshal(out)
	if err := os.WriteFile(filepath.Join(dir, "router-rib"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Stay up until herald has seen its session established.
	waitFile(t, filepath.Join(dir, "herald-done"), 30*time.Second)
}

// TestUnnumberedHeraldHelper is the node: herald's Announcer with one
// interface peer and an IPv4 and an IPv6 path.
func TestUnnumberedHeraldHelper(t *testing.T) {
	if os.Getenv("HL_UNNUM_ROLE") != "herald" {
		t.Skip("run by TestUnnumberedSession")
	}
	dir := os.Getenv("HL_UNNUM_DIR")
	var ev events
	a := startHerald(t, Config{
		NextHopV4: nhV4, NextHopV6: netip.MustParseAddr(unnumNH6),
		InterfaceRetry: 500 * time.Millisecond, OnSessionChange: ev.record,
	})
	ctx := context.Background()
	p := Peer{Name: "tor", MyASN: unnumHeraldAS, PeerASN: unnumRouterAS, Interface: unnumIfHerald, ConnectTime: time.Second}
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := a.SetPaths(ctx, []Path{{Prefix: netip.MustParsePrefix(unnumPrefix4)}, {Prefix: netip.MustParsePrefix(unnumPrefix6)}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	s := a.Sessions()["tor"]
	t.Logf("before the router spoke: %+v", s)
	if err := os.WriteFile(filepath.Join(dir, "herald-waiting"), []byte(s.Reason), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session", func() bool { return sessionUp(a, "tor") })
	t.Logf("session: %+v, events %v", a.Sessions()["tor"], ev.get())
	var peer *api.Peer
	_ = a.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { peer = p })
	t.Logf("GoBGP's neighbour: %s, local %s", peer.GetState().GetNeighborAddress(), peer.GetTransport().GetLocalAddress())
	if got := ev.get(); len(got) != 1 || got[0] != "tor=true" {
		t.Errorf("session events %v, want [tor=true]", got)
	}
	waitFor(t, "the router's RIB", func() bool { _, err := os.Stat(filepath.Join(dir, "router-rib")); return err == nil })
	if n := a.Sessions()["tor"].Advertised; n != 1 {
		t.Errorf("advertised %d, want 1", n)
	}
	if err := os.WriteFile(filepath.Join(dir, "herald-done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newRouterOn is newRouter listening on every address at port, as a
// router on its own namespace would.
func newRouterOn(t *testing.T, port uint16, asn uint32, id string, neighbors ...routerNeighbor) *router {
	t.Helper()
	r := &router{t: t, port: port, asn: asn}
	r.srv = server.NewBgpServer(server.LoggerOption(newSlogAdapter(slog.New(slog.NewTextHandler(os.Stderr, nil)).With("router", id))))
	go r.srv.Serve()
	ctx := context.Background()
	if err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: asn, RouterId: id, ListenPort: int32(port)}}); err != nil {
		t.Fatalf("starting router: %v", err)
	}
	t.Cleanup(r.Stop)
	for _, n := range neighbors {
		p := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: n.addr, PeerAsn: n.asn},
			Transport: &api.Transport{PassiveMode: true},
		}
		for _, f := range []*api.Family{familyV4, familyV6} {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
		}
		if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			t.Fatalf("router: adding neighbour %s: %v", n.addr, err)
		}
	}
	return r
}
