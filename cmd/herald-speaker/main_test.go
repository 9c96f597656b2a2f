package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/heraldlb/herald/internal/docref"
)

// With this variable set the test binary runs main's run() instead of the
// tests, so the real command line and exit codes are exercised.
const runMainEnv = "HERALD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	// GoBGP v3 cannot end its event loop (see bgp.New).
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve"))
}

func runSelf(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1", "NODE_NAME="), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	return 0, string(out)
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("c2hvcnQ=\n"), 0o600); err != nil { // "short": 5 bytes
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{nil, []string{"--help"}, 0, "-memberlist-key-file"},
		{nil, []string{"--bogus"}, 2, "flag provided but not defined"},
		{nil, []string{"--memberlist-insecure"}, 2, "--node-name (or $NODE_NAME) is required"},
		{[]string{"NODE_NAME=n1"}, nil, 2, "--memberlist-key-file is required"},
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-insecure", "--memberlist-key-file=/x"}, 2, "exclude each other"},
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-insecure", "--bind-addr=nope"}, 2, "not an IP address"},
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-insecure", "--memberlist-probe-interval=50ms", "--memberlist-probe-timeout=80ms"}, 2, "shorter than"},
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-insecure", "--memberlist-port=70000"}, 2, "not a port"},
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-insecure", "--log-level=loud"}, 2, "invalid --log-level"},
		// A key of the wrong size is refused before anything starts.
		// --run-as=: a root test process must not switch to another user
		// and lose access to the key file it wrote; --cache-dir=: nor make
		// the host's /var/lib/herald.
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-key-file=" + short, "--bind-addr=127.0.0.1", "--run-as=", "--cache-dir="}, 1, "is 5 bytes; want 16, 24 or 32"},
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-insecure", "--run-as=0:0"}, 2, "not UID:GID of a user other than root"},
		{[]string{"NODE_NAME=n1"}, []string{"--memberlist-insecure", "--run-as=speaker"}, 2, "not UID:GID"},
		{nil, []string{"--version"}, 0, "herald-speaker dev (revision "},
		{nil, []string{"control-plane", "--help"}, 0, "-apiserver-ca-file"},
		{nil, []string{"control-plane", "--version"}, 0, "herald-speaker control-plane dev (revision "},
		{nil, []string{"control-plane", "--memberlist-insecure", "--bind-addr=198.51.100.11"}, 2, "--vip: no VIP given"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--memberlist-port=7946"}, 2, "is the Service speakers'"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--peers=198.51.100.250"}, 2, "none of the peers' addresses is this node's"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100,198.51.100.101", "--bind-addr=198.51.100.11"}, 2, "at most one IPv4 and one IPv6"},
		{nil, []string{"control-plane", "--vip=198.51.100.100", "--bind-addr=198.51.100.11"}, 2, "--memberlist-key-file is required"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--interface=hl-no-such-if"}, 2, "--interface hl-no-such-if"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--apiserver-ca-file=/nonexistent", "--run-as="}, 1, "reading the API server's CA"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--apiserver-url=http://198.51.100.11:6443/readyz"}, 2, "want https://HOST:PORT/readyz"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--peers=2001:db8::12"}, 2, "is not of the family"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--bgp-peers=198.51.100.1"}, 2, "--bgp-asn 0: want 1 to 4294967295"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--bgp-asn=64513"}, 2, "need --bgp-peers"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--bgp-peers=198.51.100.1", "--bgp-asn=64513", "--interface=lo"}, 2, "--interface is for ARP/NDP"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--bgp-peers=198.51.100.1", "--bgp-asn=64513", "--bgp-hold-time=1s"}, 2, "at least 3s"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100", "--bind-addr=198.51.100.11", "--bgp-peers=198.51.100.1", "--bgp-asn=64513", "--bgp-router-id=2001:db8::1"}, 2, "is not an IPv4 address"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=198.51.100.100,2001:db8::100", "--bind-addr=198.51.100.11", "--bgp-peers=198.51.100.1", "--bgp-asn=64513"}, 2, "of the other family"},
		{nil, []string{"control-plane", "--memberlist-insecure", "--vip=2001:db8::100", "--bind-addr=2001:db8::11", "--bgp-peers=[2001:db8::1]:179", "--bgp-asn=64513"}, 2, "--bgp-router-id is required"},
	} {
		code, out := runSelf(t, tc.env, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v %v: exit %d, output %q; want exit %d containing %q", tc.env, tc.args, code, out, tc.code, tc.want)
		}
	}
	_, out := runSelf(t, nil, "--help")
	for _, f := range []string{"-node-name", "-bind-addr", "-memberlist-port", "7946", "-memberlist-insecure", "-kube-proxy-health-url", "http://127.0.0.1:10256/healthz",
		"-metrics-addr", ":7473", "-load-balancer-class", "-only-class", "-memberlist-probe-interval", "-memberlist-probe-timeout", "-memberlist-suspicion-mult", "-memberlist-gossip-interval", "-kubeconfig", "-log-level", "-run-as", "65532:65532", "-version"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help lacks %q", f)
		}
	}
}

// TestReference keeps the command-line block of docs/reference.md equal
// to --help.
func TestReference(t *testing.T) {
	_, out := runSelf(t, nil, "--help")
	docref.Check(t, "herald-speaker", out)
	_, out = runSelf(t, nil, "control-plane", "--help")
	docref.Check(t, "herald-speaker control-plane", out)
}
