//go:build !privileged

package scenarios

import "testing"

func TestLabScenarios(t *testing.T) {
	t.Skip("*** LAB TESTS NOT RUN: need root and -tags privileged (make e2e) ***")
}
