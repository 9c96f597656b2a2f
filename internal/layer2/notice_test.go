//go:build !privileged

package layer2

import (
	"os"
	"testing"
)

// TestPrivileged stands in for the privileged tests (privileged_test.go:
// real ARP/NDP sockets in network namespaces), which are compiled only with
// -tags privileged. It says so loudly, and fails when it runs as root: a
// root run without the tag would otherwise pass without proving anything.
func TestPrivileged(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Fatal("running as root but built without -tags privileged: the namespace tests did not run; use make test or go test -tags privileged")
	}
	t.Skip("PRIVILEGED TESTS NOT RUN: run make test as root (go test -tags privileged)")
}
