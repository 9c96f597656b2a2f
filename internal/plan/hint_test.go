package plan

import (
	"net/netip"
	"testing"

	"github.com/heraldlb/herald/internal/allocator"
)

// A Service's pool hint is its own annotation, which anyone who may edit
// the Service can rewrite. It must not bring an address under a pool that
// never held it: not an address of another pool, not one outside all.
func TestPoolHintNeverClaimsAnAddressThePoolDidNotHold(t *testing.T) {
	nodes := threeNodes()
	shrunk := l2Pool("shrunk", "198.51.100.8/29")
	shrunk.HeldOutsideSpec = []allocator.Range{mustRange("198.51.100.1-198.51.100.1")} // kept for ns/kept
	shrunk.BGP = []*BGPPolicy{{}}
	other := l2Pool("other", "203.0.113.0/24")
	pools := []Pool{shrunk, other}
	svcs := []Service{
		{Key: "ns/kept", Addrs: addrs("198.51.100.1"), PoolHint: "shrunk"},
		// The owner of ns/moved rewrote the hint: its address is other's.
		{Key: "ns/moved", Addrs: addrs("203.0.113.5"), PoolHint: "shrunk"},
		// A status address no pool ever held, under the shrunk pool's name.
		{Key: "ns/foreign", Addrs: addrs("198.18.0.7"), PoolHint: "shrunk"},
	}
	d := Decide(Input{Self: "node-a", Nodes: nodes, Pools: pools, Services: svcs})
	for _, a := range d.BGP {
		if a.Addr != netip.MustParseAddr("198.51.100.1") {
			t.Errorf("%s announced over BGP under pool %s, which never held it", a.Addr, a.Pool)
		}
	}
	if o, _ := owners(nodes, pools, svcs); len(o[netip.MustParseAddr("203.0.113.5")]) != 1 {
		t.Errorf("203.0.113.5 not announced under its own pool: owners %v", o)
	}
	if got := d.Refused[netip.MustParseAddr("198.18.0.7")]; len(got) != 1 {
		t.Errorf("198.18.0.7 (in no pool) not refused: refused %v", d.Refused)
	}

	// While what the pool keeps outside its spec is not known (a shrink
	// the controller has not judged yet), the hint is trusted, so a kept
	// address is never withdrawn for that moment.
	shrunk.HeldOutsideSpec, shrunk.OutsideSpecUnknown = nil, true
	d = Decide(Input{Self: "node-a", Nodes: nodes, Pools: []Pool{shrunk, other}, Services: svcs[:1]})
	if len(d.BGP) != 1 {
		t.Errorf("kept address withdrawn while the pool's holdings are unknown: %v", d.BGP)
	}
}
