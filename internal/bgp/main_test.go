package bgp

import (
	"testing"

	"go.uber.org/goleak"
)

// GoBGP v3 offers no way to end a server's event loop (see New), so each
// Announcer and each test router leaves it behind; everything else must
// end with its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve"))
}
