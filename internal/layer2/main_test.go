//go:build !privileged

package layer2

import (
	"testing"

	"go.uber.org/goleak"
)

// The privileged build has its own TestMain (privileged_test.go), which
// checks for leaks too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
