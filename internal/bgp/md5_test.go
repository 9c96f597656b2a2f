//go:debug multipathtcp=0

package bgp

// The go:debug line above: Go (1.24+) makes listeners Multipath TCP by
// default, and MPTCP sockets refuse TCP_MD5SIG (ENOPROTOOPT), so the test
// routers' listeners must be plain TCP. "0" leaves dialers at their default
// (plain TCP), which is what herald, dialling only, uses in production.

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
)

// md5Supported reports whether this kernel accepts TCP_MD5SIG (Linux with
// CONFIG_TCP_MD5SIG; no privilege is needed).
func md5Supported(t *testing.T) error {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	sig := unix.TCPMD5Sig{Keylen: 4}
	copy(sig.Key[:], "test")
	sig.Addr.Family = unix.AF_INET
	copy(sig.Addr.Data[2:], net.IPv4(127, 0, 0, 1).To4())
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
	}); err != nil {
		return err
	}
	return serr
}

func TestMD5Password(t *testing.T) {
	if err := md5Supported(t); err != nil {
		t.Skipf("SKIPPED LOUDLY: TCP-MD5 (TCP_MD5SIG) is not available on this kernel: %v", err)
	}
	const myASN = 64500
	r1 := newRouter(t, "127.0.0.1", 64601, "10.255.0.1", routerNeighbor{addr: heraldAddr, asn: myASN, password: "s3cret"})
	r2 := newRouter(t, "127.0.0.2", 64602, "10.255.0.2", routerNeighbor{addr: heraldAddr, asn: myASN, password: "right"})
	var ev events
	a := startHerald(t, Config{NextHopV4: nhV4, OnSessionChange: ev.record})
	ctx := context.Background()

	p1 := r1.peer("r1", myASN)
	p1.Password = "s3cret"
	p2 := r2.peer("r2", myASN)
	p2.Password = "wrong"
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p1, p2}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "r1 up with the matching password", func() bool { return sessionUp(a, "r1") })

	// With the wrong key the router's kernel drops every SYN. Watch
	// several connect attempts (ConnectTime 1 s) and expect none to work.
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 4*time.Second, true,
		func(context.Context) (bool, error) { return sessionUp(a, "r2") || r2.established(), nil })
	if err == nil {
		t.Fatalf("session r2 came up with a mismatched TCP-MD5 password")
	}

	// Fixing the password (an UpdatePeer, which resets only r2) brings it up.
	p2.Password = "right"
	if err := a.SetPeers(ctx, netip.Addr{}, []Peer{p1, p2}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitFor(t, "r2 up after the password fix", func() bool { return sessionUp(a, "r2") })
	for _, e := range ev.get() {
		if e == "r1=false" {
			t.Errorf("r1 went down while r2's password changed: %v", ev.get())
		}
	}
}
