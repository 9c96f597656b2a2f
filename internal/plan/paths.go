package plan

import (
	"errors"
	"fmt"

	"github.com/heraldlb/herald/internal/bgpplan"
)

// Paths are the BGP paths of anns: one per address and advertisement,
// each aggregated to the advertisement's aggregationLength, with its
// communities, local preference and peers (bgpplan merges the paths of a
// prefix per peer). An address that cannot be aggregated is left out and
// reported.
func Paths(anns []BGPAnnouncement) ([]bgpplan.Path, error) {
	n := 0
	for _, a := range anns {
		n += len(a.Policies)
	}
	out := make([]bgpplan.Path, 0, n)
	var errs []error
	for _, a := range anns {
		for _, pol := range a.Policies {
			bits := pol.AggregationLength
			if a.Addr.Is6() {
				bits = pol.AggregationLengthV6
			}
			prefix, err := a.Addr.Prefix(bits)
			if err != nil {
				errs = append(errs, fmt.Errorf("aggregating %s to /%d: %w", a.Addr, bits, err))
				continue
			}
			out = append(out, bgpplan.Path{
				Prefix: prefix, Communities: pol.Communities, LargeCommunities: pol.LargeCommunities,
				LocalPref: pol.LocalPref, Peers: pol.Peers,
			})
		}
	}
	return out, errors.Join(errs...)
}
