package k8s

import (
	"context"
	"net"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
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
// informers: after a one-minute outage an informer may take another minute
// to notice new objects. A dial that waits for the server turns the outage
// into one slow request instead of a string of failures, so nothing backs
// off and the informers resume within a redial interval of the API
// server's return. Requests still end when their own timeouts do, so
// leader election renewals behave as before.
func PatientDial(cfg *rest.Config) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	cfg.Dial = newDialGate(d.DialContext, clock.RealClock{}).dial
}

// dialFunc dials a connection (net.Dialer.DialContext).
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialGate lets one prober redial a down server while every other dial
// waits for it, so an outage costs one connection attempt per interval,
// not one per pending request. The prober runs only while some dial
// waits: when the last one gives up, it stops.
type dialGate struct {
	dialer dialFunc
	clk    clock.Clock

	mu      sync.Mutex
	up      chan struct{} // non-nil while a prober runs; closed when the server answers
	waiting int           // dials waiting on up
}

func newDialGate(dialer dialFunc, clk clock.Clock) *dialGate {
	return &dialGate{dialer: dialer, clk: clk}
}

func (g *dialGate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := g.dialer(ctx, network, addr)
	if err == nil {
		return conn, nil
	}
	deadline := g.clk.NewTimer(maxDialWait)
	defer deadline.Stop()
	for {
		up := g.wait(network, addr)
		select {
		case <-up:
			g.leave()
		case <-ctx.Done():
			g.leave()
			return nil, err
		case <-deadline.C():
			g.leave()
			return nil, err
		}
		if conn, err = g.dialer(ctx, network, addr); err == nil {
			return conn, nil
		}
	}
}

// wait registers a waiting dial and returns a channel closed once addr
// accepts connections again, starting the prober if none runs.
func (g *dialGate) wait(network, addr string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting++
	if g.up == nil {
		g.up = make(chan struct{})
		go g.probe(g.up, network, addr)
	}
	return g.up
}

func (g *dialGate) leave() {
	g.mu.Lock()
	g.waiting--
	g.mu.Unlock()
}

// probe dials addr every RedialInterval until it answers (then it closes
// up) or no dial waits any more.
func (g *dialGate) probe(up chan struct{}, network, addr string) {
	t := g.clk.NewTimer(RedialInterval)
	defer t.Stop()
	for {
		<-t.C()
		g.mu.Lock()
		idle := g.waiting == 0
		if idle {
			g.up = nil
		}
		g.mu.Unlock()
		if idle {
			return
		}
		if conn, err := g.dialer(context.Background(), network, addr); err == nil {
			_ = conn.Close()
			g.mu.Lock()
			g.up = nil
			g.mu.Unlock()
			close(up)
			return
		}
		t.Reset(RedialInterval)
	}
}
