//go:build privileged

package bfd

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab/netns"
)

// The interop test runs FRR's bfdd in one network namespace and a Manager
// in another, joined by a veth, and measures how long each side takes to
// notice a silent cut of the link. It needs root and FRR; without FRR it
// fails, so that a missing package does not pass for a working BFD.

const (
	frrDir        = "/usr/lib/frr"
	interopTx     = 100 * time.Millisecond
	interopDetect = 3 * interopTx
)

var (
	frrAddr4    = netip.MustParseAddr("198.51.100.1")
	heraldAddr4 = netip.MustParseAddr("198.51.100.2")
	frrAddr6    = netip.MustParseAddr("2001:db8:bfd::1")
	heraldAddr6 = netip.MustParseAddr("2001:db8:bfd::2")
)

// frrPeer is the part of `show bfd peers json` the test reads.
type frrPeer struct {
	Peer     string `json:"peer"`
	Multihop bool   `json:"multihop"`
	Status   string `json:"status"`
	Diag     string `json:"diagnostic"`
	Rx       int    `json:"receive-interval"`
	Tx       int    `json:"transmit-interval"`
	RemRx    int    `json:"remote-receive-interval"`
	RemTx    int    `json:"remote-transmit-interval"`
}

// name is how the test logs and counts FRR's peers.
func (p frrPeer) name() string {
	if p.Multihop {
		return p.Peer + " multihop"
	}
	return p.Peer
}

type interopLab struct {
	t              *testing.T
	ctx            context.Context
	frrNS, herNS   string
	frrDev, herDev string
	procs          []*exec.Cmd
}

func TestInteropFRR(t *testing.T) {
	for _, bin := range []string{"bfdd", "zebra"} {
		if _, err := os.Stat(filepath.Join(frrDir, bin)); err != nil {
			t.Fatalf("FRR's %s is needed for the interop test and is missing: %v", bin, err)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Fatalf("FRR's vtysh is needed for the interop test and is missing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	suffix := fmt.Sprintf("%04x", rand.IntN(1<<16))
	l := &interopLab{
		t: t, ctx: ctx,
		frrNS: "hl-bfd-" + suffix + "-frr", herNS: "hl-bfd-" + suffix + "-herald",
		frrDev: "hlbfd" + suffix + "f", herDev: "hlbfd" + suffix + "h",
	}
	t.Cleanup(l.teardown)
	l.network()
	l.startFRR()

	rec := newRecorder()
	m, err := New(Config{OnChange: rec.onChange})
	if err != nil {
		t.Fatal(err)
	}
	profile := Profile{ReceiveInterval: interopTx, TransmitInterval: interopTx, DetectMultiplier: 3}
	sessions := []Session{
		{Peer: frrAddr4, Local: heraldAddr4, Interface: l.herDev, Profile: profile},
		{Peer: frrAddr6, Local: heraldAddr6, Interface: l.herDev, Profile: profile},
		// One router away as far as the TTL goes: FRR sends 255 and the
		// default minimum is 254.
		{Peer: frrAddr4, Local: heraldAddr4, Multihop: true, Profile: profile},
	}
	if err := m.Set(sessions); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- netns.Do(l.herNS, func() error { return m.Run(runCtx) }) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	// Both sides Up.
	l.waitUp(rec, t0, "initial", len(sessions))
	for _, p := range l.frrPeers() {
		t.Logf("FRR's view once Up: %+v", p)
	}

	// A silent cut: both ends drop everything they send, no carrier or
	// interface event that would tell either side.
	l.cut(true)
	cutAt := time.Now()
	herDown := map[Key]time.Duration{}
	frrDown := map[string]time.Duration{}
	for (len(herDown) < len(sessions) || len(frrDown) < len(sessions)) && time.Since(cutAt) < 10*interopDetect {
	drain:
		for {
			select {
			case e := <-rec.ch:
				if e.up {
					t.Errorf("%v came Up during the cut", e.key)
					continue
				}
				if e.diag != DiagTimeExpired {
					t.Errorf("%v: diag %v, want %v", e.key, e.diag, DiagTimeExpired)
				}
				herDown[e.key] = e.at.Sub(cutAt)
			default:
				break drain
			}
		}
		for _, p := range l.frrPeers() {
			if _, seen := frrDown[p.name()]; !seen && p.Status != "up" {
				frrDown[p.name()] = time.Since(cutAt)
				if p.Diag != "control detection time expired" {
					t.Errorf("FRR's diagnostic for %s: %q", p.name(), p.Diag)
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range sessions {
		d, ok := herDown[s.Key()]
		if !ok {
			t.Errorf("herald: %v did not go Down within %v of the cut", s.Key(), 10*interopDetect)
			continue
		}
		t.Logf("herald: %v Down %v after the cut (detection time %v)", s.Key(), d.Round(time.Millisecond), interopDetect)
		if d > interopDetect+200*time.Millisecond {
			t.Errorf("herald took %v, the detection time is %v", d, interopDetect)
		}
	}
	for _, a := range []string{heraldAddr4.String(), heraldAddr6.String(), heraldAddr4.String() + " multihop"} {
		d, ok := frrDown[a]
		if !ok {
			t.Errorf("FRR: %v did not go down within %v of the cut", a, 10*interopDetect)
			continue
		}
		t.Logf("FRR: %v down %v after the cut (polled with vtysh; detection time %v)", a, d.Round(time.Millisecond), interopDetect)
		if d > interopDetect+500*time.Millisecond {
			t.Errorf("FRR took %v, the detection time is %v", d, interopDetect)
		}
	}

	// Restored: both come back.
	l.cut(false)
	l.waitUp(rec, time.Now(), "after the link was restored", len(sessions))
}

// waitUp waits until both herald sessions reported Up and FRR shows both
// peers up, logging how long each took from t0.
func (l *interopLab) waitUp(rec *recorder, t0 time.Time, what string, n int) {
	t := l.t
	t.Helper()
	her := map[Key]bool{}
	frrUp := map[string]time.Duration{}
	deadline := time.Now().Add(20 * time.Second)
	for len(her) < n || len(frrUp) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not Up within 20s: herald %v, FRR %+v", what, her, l.frrPeers())
		}
	drain:
		for {
			select {
			case e := <-rec.ch:
				if !e.up {
					t.Fatalf("%s: %v went Down (%v) while coming Up", what, e.key, e.diag)
				}
				her[e.key] = true
				t.Logf("%s: herald: %v Up after %v", what, e.key, e.at.Sub(t0).Round(time.Millisecond))
			default:
				break drain
			}
		}
		for _, p := range l.frrPeers() {
			if _, seen := frrUp[p.name()]; !seen && p.Status == "up" {
				frrUp[p.name()] = time.Since(t0)
				t.Logf("%s: FRR: %s up after %v", what, p.name(), frrUp[p.name()].Round(time.Millisecond))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *interopLab) run(ns string, argv ...string) string {
	l.t.Helper()
	out, err := netns.Run(l.ctx, ns, argv...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (l *interopLab) network() {
	l.run("", "ip", "netns", "add", l.frrNS)
	l.run("", "ip", "netns", "add", l.herNS)
	l.run("", "ip", "link", "add", l.frrDev, "netns", l.frrNS, "type", "veth", "peer", "name", l.herDev, "netns", l.herNS)
	for _, side := range []struct {
		ns, dev string
		a4, a6  netip.Addr
	}{{l.frrNS, l.frrDev, frrAddr4, frrAddr6}, {l.herNS, l.herDev, heraldAddr4, heraldAddr6}} {
		l.run(side.ns, "ip", "link", "set", "lo", "up")
		l.run(side.ns, "ip", "addr", "add", side.a4.String()+"/24", "dev", side.dev)
		l.run(side.ns, "ip", "addr", "add", side.a6.String()+"/64", "dev", side.dev, "nodad")
		l.run(side.ns, "ip", "link", "set", side.dev, "up")
	}
}

// cut drops (or stops dropping) everything both ends send on the veth,
// with an nftables output rule in each namespace: silent, with no carrier
// or interface event that would tell either side. (netem would do, but
// the sch_netem module is not always there.)
func (l *interopLab) cut(on bool) {
	for _, side := range [][2]string{{l.frrNS, l.frrDev}, {l.herNS, l.herDev}} {
		if !on {
			l.run(side[0], "nft", "delete", "table", "inet", "hlbfdcut")
			continue
		}
		rules := fmt.Sprintf("table inet hlbfdcut {\n chain out {\n  type filter hook output priority 0; policy accept;\n  oifname %q drop\n }\n}\n", side[1])
		cmd := netns.Command(l.ctx, side[0], "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			l.t.Fatalf("nft in %s: %v: %s", side[0], err, out)
		}
	}
}

func (l *interopLab) runDir() string { return filepath.Join("/var/run/frr", l.frrNS) }

func (l *interopLab) startFRR() {
	t := l.t
	dir, err := os.MkdirTemp("", "hl-bfd-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"zebra.log", "bfdd.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
					t.Logf("%s:\n%s", name, b)
				}
			}
		}
		_ = os.RemoveAll(dir)
	})
	// The daemons drop to user frr and must read their config.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ms := interopTx.Milliseconds()
	conf := fmt.Sprintf(`frr defaults traditional
hostname %[1]s
!
bfd
 peer %[2]s local-address %[3]s interface %[4]s
  receive-interval %[7]d
  transmit-interval %[7]d
  detect-multiplier 3
 !
 peer %[5]s local-address %[6]s interface %[4]s
  receive-interval %[7]d
  transmit-interval %[7]d
  detect-multiplier 3
 !
 peer %[2]s multihop local-address %[3]s
  receive-interval %[7]d
  transmit-interval %[7]d
  detect-multiplier 3
 !
!
`, l.frrNS, heraldAddr4, frrAddr4, l.frrDev, heraldAddr6, frrAddr6, ms)
	confPath := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.runDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	l.run("", "chown", "frr:frr", l.runDir())
	zserv := filepath.Join(l.runDir(), "zserv.api")
	common := []string{"-N", l.frrNS, "-f", confPath, "-z", zserv, "-A", "127.0.0.1", "-P", "0", "--log", "stdout"}
	zebraConf := filepath.Join(dir, "zebra.conf")
	if err := os.WriteFile(zebraConf, []byte("frr defaults traditional\nhostname "+l.frrNS+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	zebraArgs := append([]string(nil), common...)
	zebraArgs[3] = zebraConf
	l.daemon(dir, "zebra", zebraArgs)
	poll(t, 10*time.Second, "zebra's "+zserv, func() bool {
		_, err := os.Stat(zserv)
		return err == nil
	}, nil)
	l.daemon(dir, "bfdd", common)
	var out string
	poll(t, 15*time.Second, "bfdd answering vtysh", func() bool {
		out, err = l.vtysh("show bfd peers json")
		if err != nil {
			out = err.Error()
		}
		return err == nil && strings.HasPrefix(strings.TrimSpace(out), "[")
	}, func() string { return out })
}

func (l *interopLab) daemon(dir, name string, args []string) {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	cmd := netns.Command(context.Background(), l.frrNS, append([]string{filepath.Join(frrDir, name)}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	// Killed with the test binary if it dies before the cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("starting %s: %v", name, err)
	}
	l.procs = append(l.procs, cmd)
}

// vtysh runs an FRR command and returns its standard output: vtysh
// warns on standard error that the pathspace has no vtysh.conf.
func (l *interopLab) vtysh(command string) (string, error) {
	cmd := netns.Command(l.ctx, l.frrNS, "vtysh", "-N", l.frrNS, "-c", command)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("vtysh -c %q: %w: %s", command, err, stderr.String())
	}
	return string(out), nil
}

func (l *interopLab) frrPeers() []frrPeer {
	out, err := l.vtysh("show bfd peers json")
	if err != nil {
		l.t.Logf("vtysh: %v", err)
		return nil
	}
	var ps []frrPeer
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		l.t.Logf("show bfd peers json: %v: %s", err, out)
		return nil
	}
	return ps
}

// teardown stops the daemons by PID and deletes the namespaces (and so
// the veth), whatever happened before.
func (l *interopLab) teardown() {
	for i := len(l.procs) - 1; i >= 0; i-- {
		p := l.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = p.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-waited
		}
	}
	for _, ns := range []string{l.frrNS, l.herNS} {
		if netns.Exists(ns) {
			if _, err := netns.Run(context.Background(), "", "ip", "netns", "del", ns); err != nil {
				l.t.Errorf("deleting namespace %s: %v", ns, err)
			}
		}
	}
	_ = os.RemoveAll(l.runDir())
}

func poll(t *testing.T, within time.Duration, what string, ok func() bool, last func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			msg := ""
			if last != nil {
				msg = ": " + last()
			}
			t.Fatalf("%s: not ready within %v%s", what, within, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
