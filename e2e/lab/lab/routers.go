package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
)

// startRouters runs FRR (zebra + bgpd, and bfdd when its config has a bfd
// block) and BIRD with the configs the
// topology binds into them.
func (l *Lab) startRouters(ctx context.Context) error {
	for _, n := range l.Topo.ByRole(topology.RoleRouter) {
		var err error
		switch n.Router {
		case "frr":
			err = l.startFRR(ctx, n)
		case "bird":
			err = l.startBIRD(ctx, n)
		}
		if err != nil {
			return fmt.Errorf("router %s: %w", n.Name, err)
		}
	}
	return nil
}

// frrRunDir is FRR's run directory for pathspace ns (`-N ns`): vtysh
// finds the daemons there with `vtysh -N ns`.
func frrRunDir(ns string) string { return filepath.Join("/var/run/frr", ns) }

func (l *Lab) startFRR(ctx context.Context, n *topology.Node) error {
	conf := n.Binds["/etc/frr/frr.conf"]
	if conf == "" {
		return fmt.Errorf("no bind for /etc/frr/frr.conf")
	}
	dir := filepath.Join(l.StateDir, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw, err := os.ReadFile(conf)
	if err != nil {
		return err
	}
	// The daemons drop to user frr and must read their config.
	local := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(local, raw, 0o644); err != nil {
		return err
	}
	run := frrRunDir(n.Namespace)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	if _, err := netns.Run(ctx, "", "chown", "frr:frr", run); err != nil {
		return err
	}
	zserv := filepath.Join(run, "zserv.api")
	common := []string{"-N", n.Namespace, "-f", local, "-z", zserv, "-A", "127.0.0.1", "-P", "0", "--log", "stdout"}
	if _, err := l.start(n.Name, "zebra", append([]string{"/usr/lib/frr/zebra"}, common...)...); err != nil {
		return err
	}
	if err := poll(ctx, 10*time.Second, func() (bool, error) {
		_, err := os.Stat(zserv)
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("zebra did not open %s", zserv)
	}
	// bfdd before bgpd, which registers its neighbours' BFD sessions
	// with it as they come up.
	if bytes.Contains(raw, []byte("\nbfd\n")) {
		if _, err := l.start(n.Name, "bfdd", append([]string{"/usr/lib/frr/bfdd"}, common...)...); err != nil {
			return err
		}
	}
	if _, err := l.start(n.Name, "bgpd", append([]string{"/usr/lib/frr/bgpd"}, common...)...); err != nil {
		return err
	}
	return poll(ctx, 15*time.Second, func() (bool, error) {
		out, err := netns.Run(ctx, n.Namespace, "vtysh", "-N", n.Namespace, "-c", "show bgp summary")
		return err == nil && !strings.Contains(out, "not running"), nil
	})
}

func (l *Lab) startBIRD(ctx context.Context, n *topology.Node) error {
	conf := n.Binds["/etc/bird/bird.conf"]
	if conf == "" {
		return fmt.Errorf("no bind for /etc/bird/bird.conf")
	}
	dir := filepath.Join(l.StateDir, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sock := filepath.Join(dir, "bird.ctl")
	if _, err := l.start(n.Name, "bird", "bird", "-f", "-c", conf, "-s", sock); err != nil {
		return err
	}
	return poll(ctx, 15*time.Second, func() (bool, error) {
		_, err := netns.Run(ctx, n.Namespace, "birdc", "-s", sock, "show", "status")
		return err == nil, nil
	})
}

// RouterCommand returns the command line that queries router node (vtysh
// for FRR, birdc for BIRD) with the given words.
func (l *Lab) RouterCommand(node string, words ...string) []string {
	n := l.Node(node)
	switch n.Router {
	case "frr":
		return []string{"vtysh", "-N", n.Namespace, "-c", strings.Join(words, " ")}
	default:
		return append([]string{"birdc", "-s", filepath.Join(l.StateDir, n.Name, "bird.ctl")}, words...)
	}
}

// RouterQuery runs RouterCommand(node, words...) inside the router's
// namespace and returns its output.
func (l *Lab) RouterQuery(ctx context.Context, node string, words ...string) (string, error) {
	return netns.Run(ctx, l.Node(node).Namespace, l.RouterCommand(node, words...)...)
}

// KernelRoute returns the gateways of the kernel route for prefix in
// node's main table (several for an ECMP route), sorted; none if there
// is no such route.
func (l *Lab) KernelRoute(ctx context.Context, node string, prefix netip.Prefix) ([]netip.Addr, error) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := exec.CommandContext(ctx, "ip", family, "-n", l.Node(node).Namespace, "-j", "route", "show", "exact", prefix.String()).Output()
	if err != nil {
		return nil, fmt.Errorf("reading the route to %s on %s: %w", prefix, node, err)
	}
	type hop struct {
		Gateway string `json:"gateway"`
	}
	var routes []struct {
		hop
		Nexthops []hop `json:"nexthops"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("parsing the route to %s on %s: %w (%s)", prefix, node, err, out)
	}
	var gws []netip.Addr
	for _, r := range routes {
		for _, h := range append([]hop{r.hop}, r.Nexthops...) {
			if a, err := netip.ParseAddr(h.Gateway); err == nil {
				gws = append(gws, a)
			}
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	return slices.Compact(gws), nil
}

// KernelRouteCount counts the routes of protocol proto (e.g. "bgp",
// "bird") in node's main table that lie within prefix (an ECMP route
// counts once).
func (l *Lab) KernelRouteCount(ctx context.Context, node string, within netip.Prefix, proto string) (int, error) {
	family := "-4"
	if within.Addr().Is6() {
		family = "-6"
	}
	out, err := exec.CommandContext(ctx, "ip", family, "-n", l.Node(node).Namespace,
		"route", "show", "root", within.String(), "proto", proto).Output()
	if err != nil {
		return 0, fmt.Errorf("listing %s routes on %s: %w", proto, node, err)
	}
	n := 0
	for line := range bytes.Lines(out) {
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' { // ECMP hops are indented
			n++
		}
	}
	return n, nil
}
