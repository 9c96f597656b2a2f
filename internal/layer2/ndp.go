package layer2

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// ndpConn is the part of *ndp.Conn the NDP responder uses; tests give it a
// fake. mdlayher/ndp v1.1.0 has no constructor over an arbitrary socket.
type ndpConn interface {
	ReadFrom() (ndp.Message, *ipv6.ControlMessage, netip.Addr, error)
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	JoinGroup(group netip.Addr) error
	LeaveGroup(group netip.Addr) error
	Close() error
}

var _ ndpConn = (*ndp.Conn)(nil)

// allNodes is ff02::1, where unsolicited Neighbor Advertisements go.
var allNodes = netip.MustParseAddr("ff02::1")

// listenNDP opens an ICMPv6 socket for NDP on ifi, bound to its link-local
// address (the source of every NA we send), receiving only Neighbor
// Solicitations and Advertisements. It fails while ifi has no link-local
// address, e.g. during DAD right after the link came up, or after a link
// flap without keep_addr_on_down; the announcer retries.
func listenNDP(ifi *net.Interface) (ndpConn, error) {
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("opening NDP socket on %q: %w", ifi.Name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := c.SetICMPFilter(&f); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("filtering ICMPv6 on %q: %w", ifi.Name, err)
	}
	return c, nil
}

// ndpResponder answers Neighbor Solicitations for owned IPv6 addresses on
// one interface and sends unsolicited Neighbor Advertisements.
//
// Only multicast Solicitations reach it (the solicited-node group of each
// owned address is joined): a unicast NUD probe to the address is not
// delivered to an ICMPv6 socket because the address is not on any
// interface, so a client's unicast probes go unanswered and it falls back
// to a multicast Solicitation, as with MetalLB.
type ndpResponder struct {
	*ownerSet
	mac  net.HardwareAddr
	conn ndpConn
	done chan struct{}

	groups map[netip.Addr]int // solicited-node group → owned addresses in it; guarded by ownerSet.mu
}

func newNDPResponder(cfg ownerConfig, mac net.HardwareAddr, conn ndpConn) *ndpResponder {
	r := &ndpResponder{mac: mac, conn: conn, done: make(chan struct{}), groups: map[netip.Addr]int{}}
	r.ownerSet = newOwnerSet(cfg, r.announce)
	go r.serve()
	return r
}

func (r *ndpResponder) setAddrs(want map[netip.Addr]string) { r.set(want, r.join, r.leave) }

// join joins a's solicited-node multicast group (shared by addresses with
// the same low 24 bits) so that Solicitations for a are received.
func (r *ndpResponder) join(a netip.Addr) {
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		return
	}
	if r.groups[g]++; r.groups[g] > 1 {
		return
	}
	if err := r.conn.JoinGroup(g); err != nil {
		r.cfg.log.Warn("joining solicited-node group failed", "iface", r.cfg.iface, "ip", a, "group", g, "err", err)
	}
}

func (r *ndpResponder) leave(a netip.Addr) {
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil || r.groups[g] == 0 {
		return
	}
	if r.groups[g]--; r.groups[g] > 0 {
		return
	}
	delete(r.groups, g)
	if err := r.conn.LeaveGroup(g); err != nil {
		r.cfg.log.Debug("leaving solicited-node group failed", "iface", r.cfg.iface, "group", g, "err", err)
	}
}

func (r *ndpResponder) close() {
	r.ownerSet.close()
	_ = r.conn.Close()
	<-r.done
}

func (r *ndpResponder) serve() {
	defer close(r.done)
	for {
		m, _, src, err := r.conn.ReadFrom()
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				r.cfg.log.Debug("NDP socket read ended", "iface", r.cfg.iface, "err", err)
			}
			return
		}
		r.handle(m, src)
	}
}

// handle processes one received NDP message from src. It never panics on
// any input (FuzzNDPHandle).
func (r *ndpResponder) handle(m ndp.Message, src netip.Addr) {
	switch m := m.(type) {
	case *ndp.NeighborSolicitation:
		r.handleNS(m, src)
	case *ndp.NeighborAdvertisement:
		if !r.owns(m.TargetAddress) {
			return
		}
		if mac := linkLayer(m.Options, ndp.Target); mac != nil && !bytes.Equal(mac, r.mac) {
			r.conflict(m.TargetAddress, mac)
		}
	}
}

func (r *ndpResponder) handleNS(ns *ndp.NeighborSolicitation, src netip.Addr) {
	if !r.owns(ns.TargetAddress) {
		return
	}
	if mac := linkLayer(ns.Options, ndp.Source); mac != nil && bytes.Equal(mac, r.mac) {
		return // our own kernel asking; it must not learn the address from us
	}
	r.cfg.metrics.requests.Inc()
	// RFC 4861 §7.2.4: answer a unicast source with a Solicited NA sent to
	// it; answer DAD (unspecified source) on all-nodes without Solicited.
	na := &ndp.NeighborAdvertisement{
		Solicited:     true,
		Override:      true,
		TargetAddress: ns.TargetAddress,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: r.mac}},
	}
	dst := src
	if !src.IsValid() || src.IsUnspecified() {
		na.Solicited, dst = false, allNodes
	}
	if !dst.Is6() || dst.Is4In6() {
		return
	}
	if err := r.conn.WriteTo(na, nil, dst); err != nil {
		r.cfg.log.Debug("sending Neighbor Advertisement failed", "iface", r.cfg.iface, "ip", ns.TargetAddress, "err", err)
		return
	}
	r.cfg.metrics.replies.Inc()
}

// announce sends one unsolicited NA with the Override flag for a to
// all-nodes, which moves existing neighbour entries to our MAC.
func (r *ndpResponder) announce(a netip.Addr) int {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: a,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: r.mac}},
	}
	if err := r.conn.WriteTo(na, nil, allNodes); err != nil {
		r.cfg.log.Warn("sending unsolicited Neighbor Advertisement failed", "iface", r.cfg.iface, "ip", a, "err", err)
		return 0
	}
	return 1
}

func linkLayer(opts []ndp.Option, dir ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == dir {
			return lla.Addr
		}
	}
	return nil
}
