package layer2

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// etherTypeARP is the EtherType of ARP (RFC 826), the protocol the packet
// socket is bound to.
const etherTypeARP = 0x0806

// zeroMAC is the target hardware address of a gratuitous ARP request
// (RFC 5227 §2.3: "not used ... SHOULD be set to zero").
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// arpResponder answers ARP requests for owned IPv4 addresses on one
// interface and sends gratuitous ARP.
//
// It reads and writes whole Ethernet frames through a net.PacketConn: a raw
// AF_PACKET socket in production (packet.Listen), an in-memory fake in tests.
// It parses with mdlayher/arp's Packet rather than arp.Client so that an
// interface without an IPv4 address of its own (arp.New refuses those) can
// still announce addresses; the frames are exactly what arp.Client would
// read and write.
type arpResponder struct {
	*ownerSet
	mac  net.HardwareAddr
	conn net.PacketConn
	done chan struct{}
}

// listenARP opens the raw packet socket for ARP on ifi, with arpFilter
// attached before it is bound.
func listenARP(ifi *net.Interface) (net.PacketConn, error) {
	c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: arpFilter})
	if err != nil {
		return nil, fmt.Errorf("opening ARP socket on %q: %w", ifi.Name, err)
	}
	return c, nil
}

// arpFilter drops, in the kernel, frames the responder must never act on:
// frames this host sends (PACKET_OUTGOING), frames addressed to another
// host's MAC (PACKET_OTHERHOST: a neighbour-cache probe of another host,
// flooded to us or seen on a promiscuous interface), and frames still
// carrying a VLAN tag (a request from a VLAN that has no interface here must
// not be answered untagged). handle checks the same in user space.
var arpFilter = mustAssemble([]bpf.Instruction{
	bpf.LoadExtension{Num: bpf.ExtVLANTagPresent},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 4},
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OTHERHOST, SkipTrue: 2},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
	bpf.RetConstant{Val: 1 << 16}, // accept (the whole frame: ARP is small)
	bpf.RetConstant{Val: 0},       // drop
})

func mustAssemble(insns []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(insns)
	if err != nil {
		panic(fmt.Sprintf("assembling BPF: %v", err))
	}
	return raw
}

// newARPResponder starts answering on conn for the interface with hardware
// address mac. It answers for nothing until set is called.
func newARPResponder(cfg ownerConfig, mac net.HardwareAddr, conn net.PacketConn) *arpResponder {
	r := &arpResponder{mac: mac, conn: conn, done: make(chan struct{})}
	r.ownerSet = newOwnerSet(cfg, r.announce)
	go r.serve()
	return r
}

func (r *arpResponder) setAddrs(want map[netip.Addr]string) { r.set(want, nil, nil) }

// close stops answering and waits for the reader to end.
func (r *arpResponder) close() {
	r.ownerSet.close()
	_ = r.conn.Close()
	<-r.done
}

func (r *arpResponder) serve() {
	defer close(r.done)
	buf := make([]byte, 1514)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				r.cfg.log.Debug("ARP socket read ended", "iface", r.cfg.iface, "err", err)
			}
			return
		}
		r.handle(buf[:n])
	}
}

// handle processes one received Ethernet frame. It never panics on any
// input (FuzzARPHandle).
func (r *arpResponder) handle(b []byte) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil || f.EtherType != ethernet.EtherTypeARP || f.VLAN != nil {
		return
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return
	}
	if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		len(p.SenderHardwareAddr) != 6 || !p.SenderIP.Is4() || !p.TargetIP.Is4() {
		return
	}
	if bytes.Equal(p.SenderHardwareAddr, r.mac) || bytes.Equal(f.Source, r.mac) {
		return // our own packets, looped back by the packet socket
	}

	// Another host claiming an address we own: a gratuitous request or reply
	// (sender IP = the address), or a reply to someone's request we happen to
	// see. Requests with sender IP = target IP are gratuitous, not questions.
	if r.owns(p.SenderIP) {
		r.conflict(p.SenderIP, p.SenderHardwareAddr)
		return
	}
	if p.Operation != arp.OperationRequest || !r.owns(p.TargetIP) {
		return
	}
	// A request sent unicast to another MAC is that host's neighbour-cache
	// probe (RFC 1122 unicast poll), seen here because the interface is
	// promiscuous (a bridge port, a VM tap, a packet capture). Answering it
	// would steal the address. Only broadcast or our own MAC are asked of us.
	if !bytes.Equal(f.Destination, ethernet.Broadcast) && !bytes.Equal(f.Destination, r.mac) {
		return
	}
	r.cfg.metrics.requests.Inc()
	reply, err := arp.NewPacket(arp.OperationReply, r.mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	if err != nil {
		return
	}
	if err := r.write(reply, p.SenderHardwareAddr); err != nil {
		r.cfg.log.Debug("sending ARP reply failed", "iface", r.cfg.iface, "ip", p.TargetIP, "err", err)
		return
	}
	r.cfg.metrics.replies.Inc()
}

// announce sends one gratuitous round for a: an ARP request and an ARP reply,
// both broadcast with sender = target = a. Linux treats the request form as
// gratuitous always and the reply form only if its target MAC equals its
// sender MAC (arp_is_garp), so the reply carries our MAC as target; other
// stacks only listen to one form or the other.
func (r *arpResponder) announce(a netip.Addr) int {
	sent := 0
	for _, op := range []struct {
		op  arp.Operation
		tha net.HardwareAddr
	}{{arp.OperationRequest, zeroMAC}, {arp.OperationReply, r.mac}} {
		p, err := arp.NewPacket(op.op, r.mac, a, op.tha, a)
		if err != nil {
			r.cfg.log.Error("building gratuitous ARP failed", "iface", r.cfg.iface, "ip", a, "err", err)
			return sent
		}
		if err := r.write(p, ethernet.Broadcast); err != nil {
			r.cfg.log.Warn("sending gratuitous ARP failed", "iface", r.cfg.iface, "ip", a, "err", err)
			return sent
		}
		sent++
	}
	return sent
}

func (r *arpResponder) write(p *arp.Packet, dst net.HardwareAddr) error {
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	f := ethernet.Frame{Destination: dst, Source: r.mac, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = r.conn.WriteTo(fb, &packet.Addr{HardwareAddr: dst})
	return err
}
