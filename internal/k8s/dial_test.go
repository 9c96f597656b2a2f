package k8s

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeServer is an API server address that refuses connections until up.
type fakeServer struct {
	up    atomic.Bool
	dials atomic.Int32
}

var errRefused = errors.New("connection refused (test)")

func (s *fakeServer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	s.dials.Add(1)
	if !s.up.Load() {
		return nil, errRefused
	}
	a, b := net.Pipe()
	_ = b.Close()
	return a, nil
}

// waitFor polls cond: the gate's goroutines run on their own. The poll is
// real time; what the gate waits for is the fake clock.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestDialGateWaitsForTheServer: while the server refuses, every dial waits
// and one prober redials once per interval; once it answers, every waiting
// dial connects.
func TestDialGateWaitsForTheServer(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	srv := &fakeServer{}
	g := newDialGate(srv.dial, clk)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			conn, err := g.dial(context.Background(), "tcp", "api:6443")
			if err == nil {
				_ = conn.Close()
			}
			errs <- err
		})
	}
	// Three dials, three deadlines and one prober ticker on the clock.
	waitFor(t, "the dials to wait", func() bool { return clk.Waiters() == 4 })
	if n := srv.dials.Load(); n != 3 {
		t.Fatalf("%d dials before the first interval, want one per caller (3)", n)
	}
	clk.Step(RedialInterval)
	waitFor(t, "the prober's dial", func() bool { return srv.dials.Load() == 4 })
	srv.up.Store(true)
	// The prober re-arms its timer after the dial: step only then.
	waitFor(t, "the prober's next round", func() bool { return clk.Waiters() == 4 })
	clk.Step(RedialInterval)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("dial after the server came back: %v", err)
		}
	}
	// Every dial: 3 refused, 1 refused probe, 1 probe that answered, 3 redials.
	if n := srv.dials.Load(); n != 8 {
		t.Errorf("%d connection attempts, want 8", n)
	}
}

// TestDialGateProberStopsWhenNobodyWaits: a server that never returns does
// not keep a prober alive once every dial has given up (goleak checks).
func TestDialGateProberStopsWhenNobodyWaits(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	srv := &fakeServer{}
	g := newDialGate(srv.dial, clk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := g.dial(ctx, "tcp", "api:6443")
		done <- err
	}()
	waitFor(t, "the dial to wait", func() bool { return clk.Waiters() == 2 })
	cancel()
	if err := <-done; !errors.Is(err, errRefused) {
		t.Errorf("cancelled dial returned %v, want the refusal", err)
	}
	clk.Step(RedialInterval)
	waitFor(t, "the prober to stop", func() bool { return g.idle() && !clk.HasWaiters() })
}

func (g *dialGate) idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.up == nil
}

// TestDialGateGivesUpAfterMaxDialWait: a dial nobody cancels still ends.
func TestDialGateGivesUpAfterMaxDialWait(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	g := newDialGate((&fakeServer{}).dial, clk)
	done := make(chan error, 1)
	go func() {
		_, err := g.dial(context.Background(), "tcp", "api:6443")
		done <- err
	}()
	waitFor(t, "the dial to wait", func() bool { return clk.Waiters() == 2 })
	clk.Step(maxDialWait)
	if err := <-done; !errors.Is(err, errRefused) {
		t.Errorf("dial returned %v after maxDialWait, want the refusal", err)
	}
	// The same step woke the prober, which may have dialled once more
	// before it saw nobody waits: step it until it stops.
	waitFor(t, "the prober to stop", func() bool {
		if clk.HasWaiters() {
			clk.Step(RedialInterval)
		}
		return g.idle() && !clk.HasWaiters()
	})
}
