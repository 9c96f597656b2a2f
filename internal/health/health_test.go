package health

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
		h.Run(ctx, func(_ context.Context, st Status) error { published <- st.Healthy; return nil })
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

// TestRunPublishesInterfaces: the watched interfaces that are down are
// published beside health without making the node unhealthy; a new
// watched set and a kick are acted on at once, with no interval passing;
// interfaces that cannot be read all count as down.
func TestRunPublishesInterfaces(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	var mu sync.Mutex
	down := map[string]bool{}
	var readErr error
	h := &Health{Clock: clk, InterfacesDown: func(names []string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if readErr != nil {
			return names, readErr // as LinkStates: what cannot be read is down
		}
		var out []string
		for _, n := range names {
			if down[n] {
				out = append(out, n)
			}
		}
		return out, nil
	}}
	reg := prometheus.NewRegistry()
	h.Register(reg)
	published := make(chan Status, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(ctx, func(_ context.Context, st Status) error { published <- st; return nil })
	}()
	next := func(want Status) {
		t.Helper()
		select {
		case got := <-published:
			if got.Healthy != want.Healthy || got.Unknown != want.Unknown || !slices.Equal(got.Down, want.Down) {
				t.Fatalf("published %+v, want %+v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing published; want %+v", want)
		}
	}
	// Until the speaker says which interfaces matter, the node cannot
	// claim any.
	next(Status{Healthy: true, Unknown: true})
	mu.Lock()
	down["lan2"] = true
	mu.Unlock()
	h.SetWatched([]string{"lan2", "eth1", "lan2"})
	next(Status{Healthy: true, Down: []string{"lan2"}})
	if got := interfaceGauges(t, reg); !maps.Equal(got, map[string]float64{"eth1": 1, "lan2": 0}) {
		t.Errorf("herald_speaker_interface_up = %v; want eth1 1, lan2 0", got)
	}
	h.SetWatched([]string{"eth1", "lan2"}) // the same set: no check
	mu.Lock()
	delete(down, "lan2")
	mu.Unlock()
	h.Kick()
	next(Status{Healthy: true})
	mu.Lock()
	readErr = errors.New("netlink says no")
	mu.Unlock()
	h.Kick()
	next(Status{Healthy: true, Down: []string{"eth1", "lan2"}})
	mu.Lock()
	readErr = nil
	mu.Unlock()
	h.SetWatched([]string{"eth1"})
	next(Status{Healthy: true})
	if got := interfaceGauges(t, reg); !maps.Equal(got, map[string]float64{"eth1": 1}) {
		t.Errorf("herald_speaker_interface_up = %v after lan2 stopped being watched; want eth1 1 alone", got)
	}
	cancel()
	<-done
	if len(published) != 0 {
		t.Errorf("published %d more times", len(published))
	}
}

// interfaceGauges reads herald_speaker_interface_up by interface.
func interfaceGauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "herald_speaker_interface_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}
