package k8s

import (
	"context"
	"net"
	"time"

	"k8s.io/client-go/rest"
)

// RedialInterval is how often a connection to an unreachable API server is
// attempted again.
const RedialInterval = 500 * time.Millisecond

// PatientDial makes cfg's connections wait for an unreachable API server
// instead of failing.
//
// client-go's reflectors back off exponentially on failed lists, up to 30 s
// plus as much jitter, and that backoff cannot be configured through shared
// informers: after a one-minute outage MetalLB was measured taking 56–74 s
// to notice new Services. A dial that keeps retrying every RedialInterval
// turns the outage into one slow request instead of a string of failures,
// so nothing backs off and the informers resume within a redial interval
// of the API server's return (SPEC §6). Requests still end when their
// context does, so leader election renewals and timeouts behave as before.
func PatientDial(cfg *rest.Config) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		for {
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				return conn, nil
			}
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(RedialInterval):
			}
		}
	}
}
