package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
)

// APIServer is a further kube-apiserver of the cluster, on the same etcd
// and with the same credentials, in a network namespace of its own: one of
// several control-plane nodes behind a VIP.
type APIServer struct {
	// Name tags its log; NetNS, Address and Port say where it serves.
	Name, NetNS, Address string
	Port                 int

	c    *Cluster
	args []string
	out  io.Writer // its log, kept across restarts
	proc *process  // nil while stopped
}

// StartAPIServerIn starts another kube-apiserver in netns, listening on
// every address of that namespace, IPv4 and IPv6 (a VIP made local there included), on
// port and advertising address, and returns once its /readyz answers.
// Options.EtcdAddress must be reachable from netns, and address (and any
// VIP) should be among Options.ServingIPs. Stop stops it with the rest.
func (c *Cluster) StartAPIServerIn(ctx context.Context, name, netns, address string, port int) (*APIServer, error) {
	if net.ParseIP(address) == nil {
		return nil, fmt.Errorf("starting %s: address %q is not an IP address", name, address)
	}
	extra := []string{
		"--bind-address=::",
		"--advertise-address=" + address,
		"--cert-dir=" + filepath.Join(c.DataDir, name+"-certs"),
	}
	out, closer, err := openLog(c.opts.Log, &c.logMu, c.DataDir, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.logClosers = append(c.logClosers, closer)
	c.mu.Unlock()
	a := &APIServer{Name: name, NetNS: netns, Address: address, Port: port, c: c, out: out,
		args: mergeFlags(c.apiserverFlags(port), extra)}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.more = append(c.more, a)
	c.mu.Unlock()
	return a, nil
}

// URL is https://ADDRESS:PORT.
func (a *APIServer) URL() string {
	return "https://" + net.JoinHostPort(a.Address, strconv.Itoa(a.Port))
}

// PID is the running process's id, 0 while stopped.
func (a *APIServer) PID() int {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.proc == nil {
		return 0
	}
	return a.proc.cmd.Process.Pid
}

// Stop kills it, as a crash would.
func (a *APIServer) Stop() error {
	a.c.mu.Lock()
	p := a.proc
	a.proc = nil
	a.c.mu.Unlock()
	if p == nil {
		return errors.New("stopping " + a.Name + ": not running")
	}
	return p.stop()
}

// Start starts it again (after Stop) and returns once /readyz answers.
func (a *APIServer) Start(ctx context.Context) error {
	a.c.mu.Lock()
	if a.c.stopped || a.proc != nil {
		a.c.mu.Unlock()
		return fmt.Errorf("starting %s: cluster stopped or already running", a.Name)
	}
	a.c.mu.Unlock()
	bin := filepath.Join(a.c.BinDir, binAPIServer)
	p, err := startProcess(a.Name, "ip", append([]string{"netns", "exec", a.NetNS, bin}, a.args...), a.out)
	if err != nil {
		return err
	}
	cfg := rest.CopyConfig(a.c.Config)
	cfg.Host = a.URL()
	cfg.Dial = a.c.opts.Dial
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		_ = p.stop()
		return err
	}
	hc.Timeout = 2 * time.Second
	ready := func(ctx context.Context) error { return httpOK(ctx, hc, a.URL()+"/readyz", a.c.secrets.adminToken, "") }
	if err := waitReady(ctx, p, apiserverStartTimeout, ready); err != nil {
		_ = p.stop()
		return fmt.Errorf("starting %s: %w", a.Name, err)
	}
	a.c.mu.Lock()
	a.proc = p
	a.c.mu.Unlock()
	return nil
}

// Token is the admin's bearer token, for clients built by hand (a prober
// that must not share connections).
func (c *Cluster) Token() string { return c.secrets.adminToken }
