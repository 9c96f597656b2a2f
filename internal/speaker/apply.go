package speaker

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/heraldlb/herald/internal/plan"
)

// apply hands the plan to the announcers, then reports: failures and
// BGPPeer problems as Events, the announcements in the Speaker object.
func (s *Speaker) apply(ctx context.Context, p plan.Plan) {
	if s.cfg.L2 != nil {
		err := s.cfg.L2.Set(ctx, p.L2)
		var byAddr map[netip.Addr][]string
		if err != nil { // a lookup for the Events only
			byAddr = make(map[netip.Addr][]string, len(p.L2))
			for _, a := range p.L2 {
				byAddr[a.Addr] = a.Services
			}
		}
		s.reportFailures("layer2", byAddr, err)
	}
	if s.cfg.BGP != nil {
		// Logged when the problem changes, not on every recompute.
		msg := ""
		if err := s.cfg.BGP.SetPeers(ctx, p.RouterID, p.BGPPeers); err != nil {
			msg = err.Error()
		}
		if msg != s.lastPeerErr && msg != "" {
			s.log.Error("bgp announcer refused some peers", "err", msg)
		}
		s.lastPeerErr = msg
		s.reportPeerProblems(p.Problems)
		paths, err := plan.Paths(p.BGP)
		if serr := s.cfg.BGP.SetPaths(ctx, paths); serr != nil {
			err = errors.Join(err, serr)
		}
		var byAddr map[netip.Addr][]string
		if err != nil {
			byAddr = make(map[netip.Addr][]string, len(p.BGP))
			for _, a := range p.BGP {
				byAddr[a.Addr] = a.Services
			}
		}
		s.reportFailures("bgp", byAddr, err)
	}
	s.announcedGauge.WithLabelValues("layer2").Set(float64(len(p.L2)))
	s.announcedGauge.WithLabelValues("bgp").Set(float64(len(p.BGP)))

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	next := map[string]time.Time{}
	withoutEvent := 0
	for _, a := range p.L2 {
		next["layer2/"+a.Addr.String()] = s.since("layer2/"+a.Addr.String(), now, a.Addr, a.Services, a.Interfaces, &withoutEvent)
	}
	for _, a := range p.BGP {
		next["bgp/"+a.Addr.String()] = s.since("bgp/"+a.Addr.String(), now, a.Addr, a.Services, a.Policy.Peers, &withoutEvent)
	}
	s.announced, s.last = next, p
	if withoutEvent > 0 {
		s.log.Info("more new announcements than the Event rate allows: the rest are in this node's Speaker object and the log",
			"withoutEvent", withoutEvent, "eventBurst", announceEventBurst, "eventsPerSecond", announceEventRate)
	}
	s.pokeReport()
}
