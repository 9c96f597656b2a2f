package cpvip

import (
	"net/netip"

	"github.com/heraldlb/herald/internal/election"
)

// Member is what the election needs to know of a memberlist member.
type Member struct {
	Name    string
	Healthy bool // its kube-apiserver answers /readyz
	Holding bool // it announces the address
}

// Owner returns the member that should hold the address key: the
// highest-ranked healthy member that already holds it, else the
// highest-ranked healthy member; "" when none is healthy. Ranks are
// internal/election's, so every member computes the same answer from the
// same membership.
func Owner(members []Member, key netip.Addr) string {
	var healthy, holders []string
	for _, m := range members {
		if !m.Healthy {
			continue
		}
		healthy = append(healthy, m.Name)
		if m.Holding {
			holders = append(holders, m.Name)
		}
	}
	if len(holders) > 0 {
		return election.Owner(holders, key)
	}
	return election.Owner(healthy, key)
}
