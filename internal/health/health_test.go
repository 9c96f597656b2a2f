package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestHealth(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(code.Load())) }))
	defer srv.Close()
	link := true
	var linkErr error
	h := &Health{KubeProxyURL: srv.URL, LinkUp: func() (bool, error) { return link, linkErr }}
	ctx := context.Background()
	step := func(want bool) {
		t.Helper()
		if got, why := h.Check(ctx); got != want {
			t.Fatalf("healthy = %v (%s), want %v", got, why, want)
		}
	}
	step(true)
	code.Store(503)
	step(false)
	code.Store(200)
	step(true)
	link = false
	step(false)
	link, linkErr = true, errors.New("no such interface")
	step(false)
	linkErr = nil
	// Once kube-proxy has answered, silence is failure.
	srv.Close()
	step(false)

	// A kube-proxy that never answered leaves the check off.
	h2 := &Health{KubeProxyURL: "http://127.0.0.1:1/healthz"}
	if ok, why := h2.Check(ctx); !ok {
		t.Fatalf("never-answering kube-proxy made the node unhealthy: %s", why)
	}
	// Disabled check.
	if ok, _ := (&Health{}).Check(ctx); !ok {
		t.Fatal("no checks configured, yet unhealthy")
	}
}

// TestRunPublishesChanges: Run checks once per interval of its clock and
// publishes the first verdict and each change, nothing else.
func TestRunPublishesChanges(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	var up atomic.Bool
	up.Store(true)
	h := &Health{LinkUp: func() (bool, error) { return up.Load(), nil }, Clock: clk}
	published := make(chan bool, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(ctx, func(_ context.Context, ok bool) error { published <- ok; return nil })
	}()
	next := func(want bool) {
		t.Helper()
		if got := <-published; got != want {
			t.Fatalf("published %v, want %v", got, want)
		}
	}
	// step advances one interval once Run waits on the clock again, and
	// so returns once the previous check is done.
	step := func() {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 10*time.Second, true,
			func(context.Context) (bool, error) { return clk.HasWaiters(), nil }); err != nil {
			t.Fatal("Run never waited for its next check")
		}
		clk.Step(500 * time.Millisecond)
	}
	next(true)
	up.Store(false)
	step()
	next(false)
	step() // unchanged: nothing published
	up.Store(true)
	step()
	next(true)
	cancel()
	<-done
	if len(published) != 0 {
		t.Errorf("published %d more times", len(published))
	}
}
