package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// Dir is where iproute2 keeps named namespaces.
const Dir = "/var/run/netns"

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	_, err := os.Stat(Dir + "/" + name)
	return err == nil
}

// List returns the names of the existing namespaces starting with prefix.
func List(prefix string) []string {
	entries, _ := os.ReadDir(Dir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// IP runs `ip args...` and returns its combined output; the error carries
// the command and its output.
func IP(ctx context.Context, args ...string) (string, error) {
	return Run(ctx, "", append([]string{"ip"}, args...)...)
}

// Run runs argv inside namespace ns ("" = the caller's) and returns its
// combined output.
func Run(ctx context.Context, ns string, argv ...string) (string, error) {
	cmd := Command(ctx, ns, argv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("running %s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Command returns a command running argv in namespace ns ("" = the
// caller's). `ip netns exec` execs argv, so the process keeps the pid.
func Command(ctx context.Context, ns string, argv ...string) *exec.Cmd {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// Dialer returns a DialContext that opens connections from inside ns: the
// socket is created on a thread switched into ns, and a socket stays in
// the namespace it was created in.
func Dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			c, err := dialIn(ctx, ns, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNamespace(ns, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		_ = c.Close()
		c = nil
	}
	return c, err
}

// Listen opens a listening socket inside ns, as Dialer opens connections.
func Listen(ns, network, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var l net.Listener
		err := inNamespace(ns, func() (err error) {
			l, err = net.Listen(network, addr)
			return err
		})
		if err != nil && l != nil {
			_ = l.Close()
			l = nil
		}
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

// Do runs f on a thread switched into ns and returns its error. Sockets
// f opens stay in ns, also when f hands them to other goroutines, so a
// long-running f (a server's Run) works from there as from a process
// started in ns; goroutines f starts run elsewhere and must not open
// sockets themselves.
func Do(ns string, f func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- inNamespace(ns, f) }()
	return <-ch
}

// inNamespace runs f on this goroutine's thread switched into ns. The
// caller must be a goroutine of its own: when the thread cannot be
// switched back it stays locked, so the runtime retires it when that
// goroutine ends instead of reusing a thread in the wrong place.
func inNamespace(ns string, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("reading current network namespace: %w", err)
	}
	defer func() { _ = orig.Close() }()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening network namespace %s: %w", ns, err)
	}
	defer func() { _ = target.Close() }()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %s: %w", ns, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
