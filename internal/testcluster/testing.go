package testcluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// forTestTimeout bounds ForTest's start-up. A warm start takes seconds;
// this only has to beat a hung process by a wide margin.
const forTestTimeout = 3 * time.Minute

// ForTest starts a cluster for t and stops it when t ends. It fails t (never
// skips it) when the cluster cannot start, including when the binaries have
// not been built: CI builds them first, so a missing binary is a broken
// setup, not a reason to pass. If t fails, the processes' last output is
// logged before they are stopped.
func ForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), forTestTimeout)
	defer cancel()
	start := time.Now()
	c, err := Start(ctx, opts)
	if errors.Is(err, ErrBinariesMissing) {
		t.Fatalf("*** NOT RUN: %v ***", err)
	}
	if err != nil {
		t.Fatalf("starting test control plane: %v", err)
	}
	t.Logf("test control plane at %s up in %v (data in %s)", c.APIServerURL, time.Since(start).Round(time.Millisecond), c.DataDir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("test failed; control-plane output:\n%s", c.logTails(40))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping test control plane: %v", err)
		}
	})
	return c
}
