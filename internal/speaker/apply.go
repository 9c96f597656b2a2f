package speaker

import (
	"context"
	"errors"

	"github.com/heraldlb/herald/internal/plan"
)

// apply hands the plan to the announcers and the outcome to the reporter.
func (s *Speaker) apply(ctx context.Context, p plan.Plan) {
	var out Outcome
	if s.cfg.L2 != nil {
		out.L2 = s.cfg.L2.Set(ctx, p.L2)
	}
	if s.cfg.BGP != nil {
		out.Peers = s.cfg.BGP.SetPeers(ctx, p.RouterID, p.BGPPeers)
		// An address plan.Paths cannot aggregate is left out and
		// reported with what SetPaths refuses.
		paths, err := plan.Paths(p.BGP)
		out.BGP = errors.Join(err, s.cfg.BGP.SetPaths(ctx, paths))
	}
	s.announcedGauge.WithLabelValues("layer2").Set(float64(len(p.L2)))
	s.announcedGauge.WithLabelValues("bgp").Set(float64(len(p.BGP)))
	s.mu.Lock()
	s.last = p
	s.mu.Unlock()
	s.cfg.Reporter.Applied(p, out)
}
