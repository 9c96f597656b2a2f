package speaker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
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
