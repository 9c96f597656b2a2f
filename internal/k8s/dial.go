package k8s

import (
	"context"
	"net"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// RedialInterval is how often an unreachable API server is dialled again.
const RedialInterval = 500 * time.Millisecond

// maxDialWait bounds how long one connection waits for the API server, so
// a request that nobody waits for any more cannot hold a goroutine forever
// (net/http detaches dials from their request's context).
const maxDialWait = 10 * time.Minute

// PatientDial makes cfg's connections wait for an unreachable API server
// instead of failing.
//
// client-go's reflectors back off exponentially on failed lists, up to 30 s
// plus as much jitter, and that backoff cannot be configured through shared
// informers: after a one-minute outage MetalLB was measured taking 56–74 s
// to notice new Services. A dial that waits for the server turns the outage
// into one slow request instead of a string of failures, so nothing backs
// off and the informers resume within a redial interval of the API
// server's return (SPEC §6). Requests still end when their own timeouts
// do, so leader election renewals behave as before.
func PatientDial(cfg *rest.Config) {
	g := &dialGate{d: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
	cfg.Dial = g.dial
}

// dialGate lets one prober redial a down server while every other dial
// waits for it, so an outage costs one connection attempt per interval,
// not one per pending request.
type dialGate struct {
	d  *net.Dialer
	mu sync.Mutex
	up chan struct{} // non-nil while the server is down; closed when it answers
}

func (g *dialGate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := g.d.DialContext(ctx, network, addr)
	if err == nil {
		return conn, nil
	}
	deadline := time.After(maxDialWait)
	for {
		select {
		case <-g.waitUp(network, addr):
		case <-ctx.Done():
			return nil, err
		case <-deadline:
			return nil, err
		}
		if conn, err = g.d.DialContext(ctx, network, addr); err == nil {
			return conn, nil
		}
	}
}

// waitUp returns a channel closed once addr accepts connections again,
// starting the prober if none runs.
func (g *dialGate) waitUp(network, addr string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.up != nil {
		return g.up
	}
	up := make(chan struct{})
	g.up = up
	go func() {
		for {
			time.Sleep(RedialInterval)
			conn, err := g.d.Dial(network, addr)
			if err == nil {
				_ = conn.Close()
				g.mu.Lock()
				g.up = nil
				g.mu.Unlock()
				close(up)
				return
			}
		}
	}()
	return up
}
