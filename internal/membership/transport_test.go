package membership

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// Packets arrive as exact-size copies (not slices of a shared or 64 KiB
// buffer) with their sender, and streams are accepted on the same port.
func TestTransportPacketsAndStreams(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := newTransport(lo, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Shutdown() }()
	b, err := newTransport(lo, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Shutdown() }()
	to := netip.AddrPortFrom(lo, uint16(a.port)).String()

	var got []*memberlist.Packet
	for _, msg := range []string{"first packet", "2nd"} {
		if _, err := b.WriteToAddress([]byte(msg), memberlist.Address{Addr: to}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-a.PacketCh():
			got = append(got, p)
		case <-time.After(5 * time.Second):
			t.Fatal("no packet")
		}
	}
	if string(got[0].Buf) != "first packet" || string(got[1].Buf) != "2nd" {
		t.Fatalf("packets %q, %q", got[0].Buf, got[1].Buf)
	}
	if cap(got[0].Buf) > 64 {
		t.Errorf("a 12-byte packet holds a %d-byte buffer", cap(got[0].Buf))
	}
	if want := netip.AddrPortFrom(lo, uint16(b.port)).String(); got[0].From.String() != want {
		t.Errorf("packet from %s, want %s", got[0].From, want)
	}
	if got[0].Timestamp.IsZero() {
		t.Error("packet without receive time")
	}

	c, err := b.DialTimeout(to, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	var s net.Conn
	select {
	case s = <-a.StreamCh():
	case <-time.After(5 * time.Second):
		t.Fatal("no stream")
	}
	defer func() { _ = s.Close() }()
	if _, err := c.Write([]byte("push/pull")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 9)
	if _, err := io.ReadFull(s, buf); err != nil || !bytes.Equal(buf, []byte("push/pull")) {
		t.Fatalf("stream read %q, %v", buf, err)
	}

	ip, port, err := a.FinalAdvertiseAddr("", 0)
	if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != a.port {
		t.Errorf("advertise %v:%d, %v; want 127.0.0.1:%d", ip, port, err, a.port)
	}
}

// Shutdown returns even while a packet waits for memberlist to take it.
func TestTransportShutdownWithPendingPacket(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := newTransport(lo, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteTo([]byte("x"), netip.AddrPortFrom(lo, uint16(a.port)).String()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the reader now blocks handing it over
	done := make(chan struct{})
	go func() { _ = a.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown hangs while a packet is pending")
	}
}
