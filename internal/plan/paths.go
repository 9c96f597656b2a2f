package plan

import (
	"errors"
	"fmt"

	"github.com/heraldlb/herald/internal/bgpplan"
)

// Paths are the BGP paths of anns: each address aggregated to its pool's
// aggregationLength, with the pool's communities, local preference and
// peers. An address that cannot be aggregated is left out and reported.
func Paths(anns []BGPAnnouncement) ([]bgpplan.Path, error) {
	out := make([]bgpplan.Path, 0, len(anns))
	var errs []error
	for _, a := range anns {
		bits := a.Policy.AggregationLength
		if a.Addr.Is6() {
			bits = a.Policy.AggregationLengthV6
		}
		prefix, err := a.Addr.Prefix(bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("aggregating %s to /%d: %w", a.Addr, bits, err))
			continue
		}
		out = append(out, bgpplan.Path{
			Prefix: prefix, Communities: a.Policy.Communities, LargeCommunities: a.Policy.LargeCommunities,
			LocalPref: a.Policy.LocalPref, Peers: a.Policy.Peers,
		})
	}
	return out, errors.Join(errs...)
}
