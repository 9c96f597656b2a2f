//go:build privileged

package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab/lab"
	"github.com/heraldlb/herald/internal/ctl"
)

// heraldctl runs heraldctl (the code behind cmd/heraldctl) against l's API
// server and returns its standard output; a failing run fails the test.
func heraldctl(t *testing.T, l *lab.Lab, args ...string) []byte {
	t.Helper()
	var out, errOut bytes.Buffer
	env := ctl.Env{Out: &out, Err: &errOut, Config: l.Config}
	if code := ctl.Main(context.Background(), env, args); code != 0 {
		t.Fatalf("heraldctl %v: exit %d: %s", args, code, errOut.String())
	}
	return out.Bytes()
}

// checkHeraldctl compares heraldctl status and pools with the live lab:
// vip is announced by exactly the nodes want over protocol, with no
// problem reported; every node is alive, healthy and sees all speakers;
// vip's pool counts it as allocated. It logs the table views.
func checkHeraldctl(t *testing.T, l *lab.Lab, vip netip.Addr, protocol string, want ...string) {
	t.Helper()
	// The speakers report at most once a second: give them a few.
	var problems []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		problems = heraldctlProblems(t, l, vip, protocol, want)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("heraldctl status:\n%s", heraldctl(t, l, "status"))
	t.Logf("heraldctl pools:\n%s", heraldctl(t, l, "pools"))
	for _, p := range problems {
		t.Error(p)
	}
}

func heraldctlProblems(t *testing.T, l *lab.Lab, vip netip.Addr, protocol string, want []string) []string {
	t.Helper()
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var rep ctl.StatusReport
	if err := json.Unmarshal(heraldctl(t, l, "status", "-o", "json"), &rep); err != nil {
		t.Fatal(err)
	}
	var pool string
	found := false
	for _, a := range rep.Addresses {
		if a.Address != vip.String() {
			continue
		}
		found, pool = true, a.Pool
		var nodes []string
		for _, an := range a.Announcers {
			if an.Protocol == protocol {
				nodes = append(nodes, an.Node)
			}
		}
		slices.Sort(nodes)
		if !slices.Equal(nodes, want) || len(a.Problems) > 0 {
			errorf("heraldctl status for %s: %s announcers %v, problems %v; want %v and none", vip, protocol, nodes, a.Problems, want)
		}
	}
	if !found {
		errorf("heraldctl status does not list %s", vip)
	}
	for _, n := range rep.Nodes {
		if !n.Alive || !n.Healthy || int(n.Members) != len(l.Nodes()) {
			errorf("heraldctl status: node %s alive %t healthy %t members %d; want true, true, %d", n.Node, n.Alive, n.Healthy, n.Members, len(l.Nodes()))
		}
	}
	if len(rep.Nodes) != len(l.Nodes()) {
		errorf("heraldctl status lists %d nodes, the lab has %d", len(rep.Nodes), len(l.Nodes()))
	}

	var pools struct {
		Pools []ctl.PoolUsage `json:"pools"`
	}
	if err := json.Unmarshal(heraldctl(t, l, "pools", "-o", "json"), &pools); err != nil {
		t.Fatal(err)
	}
	family := "IPv4"
	if vip.Is6() {
		family = "IPv6"
	}
	ok := false
	for _, p := range pools.Pools {
		if p.Pool == pool && p.Family == family && p.Allocated >= 1 && p.Ready == "True" {
			ok = true
		}
	}
	if !ok {
		errorf("heraldctl pools: no ready %s row for pool %q with an allocated address: %+v", family, pool, pools.Pools)
	}
	return problems
}
