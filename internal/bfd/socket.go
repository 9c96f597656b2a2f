package bfd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// The UDP ports of RFC 5881 §4 and RFC 5883 §5, and the range our source
// ports must come from.
const (
	singleHopPort = 3784
	multihopPort  = 4784
	srcPortFirst  = 49152
	srcPortLast   = 65535
)

// maxTTL is what every packet is sent with, and what a single-hop packet
// must arrive with (RFC 5881 §5): a packet from further away than the
// link could not have it.
const maxTTL = 255

// listenKey identifies a receiving socket: one per local address (or the
// family's wildcard), port and device, shared by every session on it.
type listenKey struct {
	local  netip.Addr
	port   uint16
	device string
}

// listener is a receiving socket and the sessions that use it.
type listener struct {
	key      listenKey
	multihop bool
	conn     *net.UDPConn
	users    int
}

// inbound is a packet as the reader hands it to the Manager's loop.
type inbound struct {
	l        *listener
	src, dst netip.Addr
	ttl      int // -1 when the kernel did not say
	data     []byte
}

// control sets the socket options every BFD socket needs before bind:
// sending with TTL 255, receiving the TTL and destination of each packet,
// and the device when the session is tied to an interface or VRF.
func control(v6, reuse bool, device string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		set := func(fd, level, opt, v int) {
			if serr == nil {
				serr = unix.SetsockoptInt(fd, level, opt, v)
			}
		}
		err := c.Control(func(fd uintptr) {
			f := int(fd)
			if reuse {
				// A wildcard listener and address-bound ones may share
				// the port; the kernel delivers to the most specific.
				set(f, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
			if device != "" && serr == nil {
				serr = unix.SetsockoptString(f, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, device)
			}
			if v6 {
				set(f, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
				set(f, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, maxTTL)
				set(f, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
				set(f, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			} else {
				set(f, unix.IPPROTO_IP, unix.IP_TTL, maxTTL)
				set(f, unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
				set(f, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

func network(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

// listen opens the receiving socket for k.
func listen(ctx context.Context, k listenKey) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: control(k.local.Is6(), true, k.device)}
	pc, err := lc.ListenPacket(ctx, network(k.local), netip.AddrPortFrom(k.local, k.port).String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// dialSource opens a session's sending socket, bound to local (or the
// family's wildcard) and to a source port from the range RFC 5881 §4
// requires; the kernel's ephemeral range is usually not inside it, so the
// port is chosen here. The session keeps the socket, and so its port, for
// its lifetime, as the RFC asks.
func dialSource(ctx context.Context, local netip.Addr, device string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: control(local.Is6(), false, device)}
	var err error
	for range 64 {
		port := srcPortFirst + rand.IntN(srcPortLast-srcPortFirst+1)
		var pc net.PacketConn
		pc, err = lc.ListenPacket(ctx, network(local), netip.AddrPortFrom(local, uint16(port)).String())
		if err == nil {
			return pc.(*net.UDPConn), nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no free source port in %d-%d: %w", srcPortFirst, srcPortLast, err)
}

// read receives packets on l until its socket is closed, handing each to
// deliver with the TTL and destination address from the control messages.
func read(l *listener, deliver func(inbound) bool) {
	buf := make([]byte, 512)
	oob := make([]byte, 256)
	for {
		n, oobn, _, from, err := l.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		in := inbound{l: l, src: from.Addr().Unmap(), ttl: -1, data: append([]byte(nil), buf[:n]...)}
		parseControl(oob[:oobn], &in)
		if !deliver(in) {
			return
		}
	}
}

func parseControl(oob []byte, in *inbound) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL && len(m.Data) >= 4,
			m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
			in.ttl = int(binary.NativeEndian.Uint32(m.Data))
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's
			// destination).
			in.dst = netip.AddrFrom4([4]byte(m.Data[8:12]))
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			in.dst = netip.AddrFrom16([16]byte(m.Data[0:16]))
		}
	}
}
