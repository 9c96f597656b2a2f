//go:build !privileged

package localaddr

import (
	"os"
	"testing"
)

// TestPrivileged stands in for the privileged test (privileged_test.go:
// addresses added and removed in a network namespace of its own), compiled
// only with -tags privileged. It fails when it runs as root: a root run
// without the tag would otherwise pass without proving anything.
func TestPrivileged(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Fatal("running as root but built without -tags privileged: the namespace test did not run; use make test or go test -tags privileged")
	}
	t.Skip("PRIVILEGED TEST NOT RUN: run make test as root (go test -tags privileged)")
}
