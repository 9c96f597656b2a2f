package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// maxPacket is the largest UDP datagram; memberlist's own packets stay
// under its UDPBufferSize (1400 bytes), but a peer may send up to this.
const maxPacket = 65536

// udpReadBuffer is the socket receive buffer asked for: a burst of gossip
// (a cluster-wide change at 250 members) must not overflow the kernel's
// default of a few hundred kilobytes while the reader is descheduled.
const udpReadBuffer = 2 << 20

// transport is memberlist's UDP and TCP transport for one bind address.
//
// memberlist's NetTransport reads every datagram into a new 64 KiB buffer
// and hands memberlist a slice of it, so each ping (a few dozen bytes)
// costs 64 KiB of garbage, and every gossip message memberlist queues keeps
// its packet's 64 KiB alive: at the shipped probe rate, and more so in a
// large cluster, that is the bulk of a speaker's garbage. This transport
// reads into one buffer and hands memberlist an exact-size copy.
type transport struct {
	udp     *net.UDPConn
	tcp     *net.TCPListener
	port    int
	log     *slog.Logger
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport binds TCP and UDP on addr and port (0: a free port, the
// same for both).
func newTransport(addr netip.Addr, port int, log *slog.Logger) (*transport, error) {
	tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
	if err != nil {
		return nil, fmt.Errorf("listening on TCP %s: %w", net.JoinHostPort(addr.String(), fmt.Sprint(port)), err)
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("listening on UDP %s: %w", net.JoinHostPort(addr.String(), fmt.Sprint(port)), err)
	}
	// The kernel caps the buffer at net.core.rmem_max without an error;
	// a failure here means something else is wrong with the socket.
	if err := udp.SetReadBuffer(udpReadBuffer); err != nil {
		_, _ = tcp.Close(), udp.Close()
		return nil, fmt.Errorf("sizing the UDP receive buffer: %w", err)
	}
	t := &transport{
		udp: udp, tcp: tcp, port: port, log: log,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
	return t, nil
}

func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		return t.tcp.Addr().(*net.TCPAddr).IP, t.port, nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, 0, fmt.Errorf("advertise address %q: %w", ip, err)
	}
	return net.IP(a.Unmap().AsSlice()), port, nil
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		return time.Time{}, fmt.Errorf("memberlist peer address %q: %w", a.Addr, err)
	}
	_, err = t.udp.WriteToUDPAddrPort(b, to)
	return time.Now(), err
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

func (t *transport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		_, _ = t.udp.Close(), t.tcp.Close()
	})
	t.wg.Wait()
	return nil
}

func (t *transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		// The receive time as close to the read as possible: memberlist
		// measures round trips (and Lifeguard's awareness) with it.
		now := time.Now()
		if err != nil {
			if t.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Error("reading a memberlist packet", "err", err)
			continue
		}
		if n == 0 {
			continue // memberlist needs at least a message type byte
		}
		p := &memberlist.Packet{
			Buf:       append([]byte(nil), buf[:n]...),
			From:      net.UDPAddrFromAddrPort(from),
			Timestamp: now,
		}
		select {
		case t.packets <- p:
		case <-t.done:
			return
		}
	}
}

func (t *transport) acceptStreams() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as
			// accept would fail again at once.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Error("accepting a memberlist connection", "err", err, "retryIn", delay)
			select {
			case <-time.After(delay):
			case <-t.done:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.streams <- conn:
		case <-t.done:
			_ = conn.Close()
			return
		}
	}
}

func (t *transport) stopped() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}
