package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"

	"github.com/heraldlb/herald/e2e/lab/netns"
	"github.com/heraldlb/herald/e2e/lab/topology"
)

// Client returns the topology's client node name.
func (l *Lab) Client() string { return l.Topo.ByRole(topology.RoleClient)[0].Name }

// Reply is what a backend answered.
type Reply struct {
	Node   string // the backend's node
	Source string // the client address the backend saw
	Pod    string // the backend's Pod, in a kubelet lab
}

// HTTPClient returns an HTTP client whose connections start in node's
// namespace, one connection per request.
func (l *Lab) HTTPClient(node string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: netns.Dialer(l.Node(node).Namespace), DisableKeepAlives: true,
	}}
}

// Get requests http://addr:port/ through hc and parses the backend's
// "NODE SOURCE [POD]" reply.
func Get(ctx context.Context, hc *http.Client, addr netip.Addr, port int) (Reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(addr.String(), strconv.Itoa(port))+"/", nil)
	if err != nil {
		return Reply{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return Reply{}, err
	}
	f := strings.Fields(string(body))
	if resp.StatusCode != http.StatusOK || len(f) < 2 || len(f) > 3 {
		return Reply{}, fmt.Errorf("unexpected reply %s %q", resp.Status, body)
	}
	r := Reply{Node: f[0], Source: f[1]}
	if len(f) == 3 {
		r.Pod = f[2]
	}
	return r, nil
}

// Probe is one request of a Prober.
type Probe struct {
	Sent  time.Time
	Took  time.Duration
	Reply Reply
	Err   error
}

// ProbeEvery sends a request to addr:port from node every interval (each
// in its own goroutine, so a hanging request delays no other) until ctx
// ends, and returns all results in send order once the last has finished.
func (l *Lab) ProbeEvery(ctx context.Context, node string, addr netip.Addr, port int, interval, timeout time.Duration) []Probe {
	hc := l.HTTPClient(node, timeout)
	var probes []*Probe
	done := make(chan struct{}, 1<<16)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		p := &Probe{Sent: time.Now()}
		probes = append(probes, p)
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			p.Reply, p.Err = Get(rctx, hc, addr, port)
			p.Took = time.Since(p.Sent)
			done <- struct{}{}
		}()
		select {
		case <-ctx.Done():
			for range probes {
				<-done
			}
			out := make([]Probe, len(probes))
			for i, p := range probes {
				out[i] = *p
			}
			return out
		case <-tick.C:
		}
	}
}

// NeighborMAC returns the MAC node's neighbour table holds for addr, or "".
func (l *Lab) NeighborMAC(ctx context.Context, node string, addr netip.Addr) string {
	out, err := l.Exec(ctx, node, "ip", "neigh", "show", addr.String())
	if err != nil {
		return ""
	}
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// MAC returns the MAC address of node's interface on the switch.
func (l *Lab) MAC(ctx context.Context, node string) (string, error) {
	iface := l.Topo.Iface(node, topology.RoleSwitch)
	out, err := l.Exec(ctx, node, "cat", "/sys/class/net/"+iface+"/address")
	return strings.TrimSpace(out), err
}

// ARPReplies sends count ARP requests for addr from node's switch
// interface and returns the MAC of every reply (lower case, in order).
func (l *Lab) ARPReplies(ctx context.Context, node string, addr netip.Addr, count int) ([]string, error) {
	return l.ARPRepliesOn(ctx, node, l.Topo.Iface(node, topology.RoleSwitch), addr, count)
}

// ARPRepliesOn is ARPReplies from node's interface iface.
func (l *Lab) ARPRepliesOn(ctx context.Context, node, iface string, addr netip.Addr, count int) ([]string, error) {
	out, err := l.Exec(ctx, node, "arping", "-c", strconv.Itoa(count), "-w", strconv.Itoa(count+1), "-I", iface, addr.String())
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "reply from") {
			continue
		}
		if i, j := strings.IndexByte(line, '['), strings.IndexByte(line, ']'); i >= 0 && j > i {
			macs = append(macs, strings.ToLower(line[i+1:j]))
		}
	}
	if len(macs) == 0 && err != nil {
		return nil, err
	}
	return macs, nil
}

// NDPReplies sends two Neighbor Solicitations for the IPv6 addr from
// node's switch interface and returns the target link-layer address of
// every Neighbor Advertisement for addr received within 500 ms of each
// (lower case, in order). It reads the answers itself: ndisc6 drops those
// whose source (the responder's link-local address) has a scope other
// than the global target's, and the kernel's neighbour table keeps only
// the last of several answers.
func (l *Lab) NDPReplies(ctx context.Context, node string, addr netip.Addr) ([]string, error) {
	iface := l.Topo.Iface(node, topology.RoleSwitch)
	var (
		c   *ndp.Conn
		mac net.HardwareAddr
	)
	err := inNamespace(l.Node(node).Namespace, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		c, _, err = ndp.Listen(ifi, ndp.LinkLocal)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("NDP socket on %s: %w", node, err)
	}
	defer func() { _ = c.Close() }()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := c.SetICMPFilter(&f); err != nil {
		return nil, err
	}
	group, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return nil, err
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: addr,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}}
	var macs []string
	for range 2 {
		if err := ctx.Err(); err != nil {
			return macs, err
		}
		if err := c.WriteTo(ns, nil, group); err != nil {
			return macs, fmt.Errorf("sending a Neighbor Solicitation for %s: %w", addr, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			m, _, _, err := c.ReadFrom()
			if err != nil {
				break // the deadline
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != addr {
				continue
			}
			for _, o := range na.Options {
				if ll, ok := o.(*ndp.LinkLayerAddress); ok && ll.Direction == ndp.Target {
					macs = append(macs, strings.ToLower(ll.Addr.String()))
				}
			}
		}
	}
	return macs, nil
}

// NodeByMAC returns the node whose switch interface has mac, or "".
func (l *Lab) NodeByMAC(ctx context.Context, mac string) string {
	for _, n := range l.Nodes() {
		if m, err := l.MAC(ctx, n); err == nil && strings.EqualFold(m, mac) {
			return n
		}
	}
	return ""
}
