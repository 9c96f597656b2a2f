//go:build privileged

package layer2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// runHelper is the node-side process: an Announcer driven over stdin.
//
//	set ADDR...  → "set UNIXNANO-BEFORE-SET ok|ERR INTERFACES-JSON"
//	ifaces       → "ifaces INTERFACES-JSON"
//	conflicts are printed as "conflict ADDR IFACE MAC"
func runHelper() int {
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := New(Config{
		Log: log,
		OnConflict: func(addr netip.Addr, iface string, mac net.HardwareAddr) {
			say("conflict %s %s %s", addr, iface, mac)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for {
		a.mu.Lock()
		ready := a.state != nil
		a.mu.Unlock()
		if ready {
			break
		}
		select {
		case err := <-done:
			fmt.Fprintln(os.Stderr, "Run:", err)
			return 1
		case <-time.After(time.Millisecond):
		}
	}
	say("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 1 && f[0] == "ifaces" {
			ifs, _ := json.Marshal(a.Interfaces())
			say("ifaces %s", ifs)
			continue
		}
		if len(f) == 0 || f[0] != "set" {
			continue
		}
		var targets []Target
		for _, s := range f[1:] {
			targets = append(targets, Target{Addr: netip.MustParseAddr(s), Service: "lab/svc"})
		}
		t0 := time.Now()
		err := a.Set(ctx, targets)
		res := "ok"
		if err != nil {
			res = strconv.Quote(err.Error())
		}
		ifs, _ := json.Marshal(a.Interfaces())
		say("set %d %s %s", t0.UnixNano(), res, ifs)
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "Run:", err)
		return 1
	}
	return 0
}

// runProbe is the client-side process of TestLayer2IgnoresUnicastProbes:
// it sends one ARP request from the client (198.51.100.100, macC) for
// labVIP4 in an Ethernet frame addressed to dst, and prints "reply MAC" for
// every reply to it for labVIP4 within 500 ms.
func runProbe(dst string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	dstMAC, err := net.ParseMAC(dst)
	if err != nil {
		return fail(err)
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return fail(err)
	}
	c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = c.Close() }()
	req, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, netip.MustParseAddr("198.51.100.100"), zeroMAC, labVIP4)
	if err != nil {
		return fail(err)
	}
	pb, _ := req.MarshalBinary()
	fb, _ := (&ethernet.Frame{Destination: dstMAC, Source: ifi.HardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	if _, err := c.WriteTo(fb, &packet.Addr{HardwareAddr: dstMAC}); err != nil {
		return fail(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 1514)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return 0 // deadline
		}
		var f ethernet.Frame
		var p arp.Packet
		if f.UnmarshalBinary(buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil {
			continue
		}
		// Replies to us, not the announcer's gratuitous replies.
		if p.Operation == arp.OperationReply && p.SenderIP == labVIP4 && p.TargetIP == req.SenderIP {
			fmt.Printf("reply %s\n", p.SenderHardwareAddr)
		}
	}
}

// helper is the test side of a helper process.
type helper struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	log   *bytes.Buffer
	logMu *sync.Mutex

	conflicts []string // conflict lines skipped by expect
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

func startHelper(t *testing.T, ns string) *helper {
	t.Helper()
	h := &helper{name: ns, lines: make(chan string, 100), log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	h.cmd = exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	h.cmd.Env = append(os.Environ(), helperEnv+"=1")
	h.cmd.Stderr = lockedWriter{h.logMu, h.log}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting helper in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_ = h.stdin.Close()
		exited := make(chan struct{})
		go func() { _ = h.cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = h.cmd.Process.Kill() // by PID: the process this test started
			<-exited
		}
		if t.Failed() {
			h.logMu.Lock()
			t.Logf("announcer log in %s:\n%s", ns, h.log.String())
			h.logMu.Unlock()
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	h.expect(t, "ready", 10*time.Second)
	return h
}

// expect waits for a line starting with prefix; conflict lines seen on the
// way are kept in h.conflicts.
func (h *helper) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("%s: helper exited waiting for %q", h.name, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
			if strings.HasPrefix(l, "conflict") {
				h.conflicts = append(h.conflicts, l)
			}
		case <-deadline:
			t.Fatalf("%s: no %q within %v", h.name, prefix, timeout)
		}
	}
}

// set calls Set in the helper and returns the time just before the call.
func (h *helper) set(t *testing.T, addrs ...netip.Addr) time.Time {
	t.Helper()
	var b strings.Builder
	b.WriteString("set")
	for _, a := range addrs {
		b.WriteString(" " + a.String())
	}
	if _, err := io.WriteString(h.stdin, b.String()+"\n"); err != nil {
		t.Fatal(err)
	}
	l := h.expect(t, "set ", 10*time.Second)
	f := strings.SplitN(l, " ", 4)
	if len(f) != 4 || f[2] != "ok" {
		t.Fatalf("%s: Set(%v): %s", h.name, addrs, l)
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	var ifs map[string][]string
	if err := json.Unmarshal([]byte(f[3]), &ifs); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if !slices.Equal(ifs[a.String()], []string{"eth0"}) {
			t.Fatalf("%s: %v announced on %v, want [eth0]", h.name, a, ifs[a.String()])
		}
	}
	return time.Unix(0, ns)
}

// ifaces returns the helper's Interfaces().
func (h *helper) ifaces(t *testing.T) map[string][]string {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "ifaces\n"); err != nil {
		t.Fatal(err)
	}
	l := h.expect(t, "ifaces ", 10*time.Second)
	var ifs map[string][]string
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "ifaces ")), &ifs); err != nil {
		t.Fatal(err)
	}
	return ifs
}

// waitIfaces polls the helper until its Interfaces() satisfies ok.
func (h *helper) waitIfaces(t *testing.T, what string, ok func(map[string][]string) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.ifaces(t)
		if ok(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: Interfaces() = %v", h.name, what, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
