package lab

import (
	"context"
	"fmt"
	"strings"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
)

// Sysctls set in every non-switch namespace before its links exist, so
// that new interfaces inherit them (the default.* entries).
var nodeSysctls = []string{
	// IPv6 addresses must survive a link going down (the failover tests
	// cut links), and duplicate address detection would hold new
	// addresses "tentative" for a second or more.
	"net.ipv6.conf.all.keep_addr_on_down=1",
	"net.ipv6.conf.default.keep_addr_on_down=1",
	"net.ipv6.conf.all.accept_dad=0",
	"net.ipv6.conf.default.accept_dad=0",
	"net.ipv6.conf.default.dad_transmits=0",
}

// Nodes forward what kube-proxy DNATs to other nodes' endpoints (routers
// turn forwarding on in their own exec lines).
var forwardSysctls = []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}

func (l *Lab) addNamespace(ctx context.Context, ns string) error {
	// Recorded before it exists, so a failure half-way still cleans up.
	l.mu.Lock()
	l.state.Namespaces = append(l.state.Namespaces, ns)
	l.mu.Unlock()
	if err := l.saveState(); err != nil {
		return err
	}
	if _, err := netns.IP(ctx, "netns", "add", ns); err != nil {
		return err
	}
	_, err := netns.IP(ctx, "-n", ns, "link", "set", "lo", "up")
	return err
}

func (l *Lab) buildNetwork(ctx context.Context) error {
	for _, n := range l.Topo.Nodes {
		if err := l.addNamespace(ctx, n.Namespace); err != nil {
			return err
		}
		if n.Kind == "bridge" {
			// The switch itself must send nothing: no IPv6 on its ports,
			// no STP delay, no multicast snooping to get NDP wrong.
			if _, err := netns.Run(ctx, n.Namespace, "sysctl", "-qw",
				"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
				return err
			}
			if _, err := netns.IP(ctx, "-n", n.Namespace, "link", "add", n.Name, "type", "bridge",
				"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"); err != nil {
				return err
			}
			if _, err := netns.IP(ctx, "-n", n.Namespace, "link", "set", n.Name, "up"); err != nil {
				return err
			}
			continue
		}
		sysctls := nodeSysctls
		if n.Role == topology.RoleNode {
			sysctls = append(sysctls[:len(sysctls):len(sysctls)], forwardSysctls...)
		}
		if _, err := netns.Run(ctx, n.Namespace, append([]string{"sysctl", "-qw"}, sysctls...)...); err != nil {
			return err
		}
	}
	for _, lk := range l.Topo.Links {
		a, b := l.Topo.Node(lk.A.Node), l.Topo.Node(lk.B.Node)
		if _, err := netns.IP(ctx, "link", "add", "name", lk.A.Iface, "netns", a.Namespace, "type", "veth",
			"peer", "name", lk.B.Iface, "netns", b.Namespace); err != nil {
			return fmt.Errorf("creating link %s:%s-%s:%s: %w", lk.A.Node, lk.A.Iface, lk.B.Node, lk.B.Iface, err)
		}
		for _, ep := range []topology.Endpoint{lk.A, lk.B} {
			n := l.Topo.Node(ep.Node)
			if n.Kind == "bridge" {
				if _, err := netns.IP(ctx, "-n", n.Namespace, "link", "set", ep.Iface, "master", n.Name); err != nil {
					return err
				}
			}
			if _, err := netns.IP(ctx, "-n", n.Namespace, "link", "set", ep.Iface, "up"); err != nil {
				return err
			}
		}
	}
	for _, n := range l.Topo.Nodes {
		for _, c := range n.Exec {
			if _, err := netns.Run(ctx, n.Namespace, "sh", "-c", c); err != nil {
				return fmt.Errorf("node %s: exec: %w", n.Name, err)
			}
		}
	}
	return nil
}

// LinkDown takes node's interface on the switch down (a cut cable).
func (l *Lab) LinkDown(ctx context.Context, node string) error {
	n := l.Node(node)
	_, err := netns.IP(ctx, "-n", n.Namespace, "link", "set", l.Topo.Iface(node, topology.RoleSwitch), "down")
	return err
}

// LinkUp reverses LinkDown. The kernel dropped the routes through the
// link when it went down: the topology's own routes of the node (its exec
// lines that add one) and a kubelet lab's Pod and Service routes are
// added again.
func (l *Lab) LinkUp(ctx context.Context, node string) error {
	n := l.Node(node)
	if _, err := netns.IP(ctx, "-n", n.Namespace, "link", "set", l.Topo.Iface(node, topology.RoleSwitch), "up"); err != nil {
		return err
	}
	for _, c := range n.Exec {
		for _, add := range []string{"ip route add ", "ip -6 route add "} {
			if rest, ok := strings.CutPrefix(c, add); ok {
				if _, err := netns.Run(ctx, n.Namespace, "sh", "-c", strings.Replace(add, " add ", " replace ", 1)+rest); err != nil {
					return fmt.Errorf("node %s: restoring %q: %w", node, c, err)
				}
			}
		}
	}
	if l.kubelet() {
		return l.routeFrom(ctx, n)
	}
	return nil
}

// Exec runs argv in node's namespace and returns its output.
func (l *Lab) Exec(ctx context.Context, node string, argv ...string) (string, error) {
	return netns.Run(ctx, l.Node(node).Namespace, argv...)
}
