package membership

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

func (c *Cluster) rejoinLoop(ctx context.Context) {
	defer close(c.loopDone)
	t := c.cfg.Clock.NewTimer(c.rejoinWait())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-t.C():
		}
		c.rejoin(ctx)
		t.Reset(c.rejoinWait())
	}
}

// rejoinWait is the wait before the next rejoin round: RejoinInterval, or
// with more than rejoinFanIn known peers that times peers/rejoinFanIn,
// randomised ±50% so that members do not rejoin in lockstep.
func (c *Cluster) rejoinWait() time.Duration {
	c.peersMu.Lock()
	n := len(c.peers)
	c.peersMu.Unlock()
	if n <= rejoinFanIn {
		return c.cfg.RejoinInterval
	}
	scaled := float64(c.cfg.RejoinInterval) * float64(n) / rejoinFanIn
	return time.Duration(scaled * (0.5 + rand.Float64()))
}

// rejoin joins known peer addresses that no live member advertises. It
// tries them in random order, a few at a time, and stops at the first round
// of attempts in which one answers: joining one member of a cluster brings
// in all of it (push/pull, then gossip), and anything still missing is
// tried again next interval. Joining every missing peer at once would make
// a whole cluster of speakers starting together (a fresh install) sync
// full state with each other hundreds of times a second; random order keeps
// them from all syncing with the same peer.
func (c *Cluster) rejoin(ctx context.Context) {
	live := c.liveAddrs()
	now := c.cfg.Clock.Now()
	var missing []netip.AddrPort
	c.peersMu.Lock()
	for _, p := range c.peers {
		if !live[p] && now.After(c.answered[p]) {
			missing = append(missing, p)
		}
	}
	c.peersMu.Unlock()
	rand.Shuffle(len(missing), func(i, j int) { missing[i], missing[j] = missing[j], missing[i] })

	for len(missing) > 0 && ctx.Err() == nil {
		n := min(len(missing), maxParallelJoins)
		var (
			wg      sync.WaitGroup
			reached atomic.Bool
		)
		for _, p := range missing[:n] {
			wg.Go(func() {
				if c.join(ctx, p) {
					reached.Store(true)
				}
			})
		}
		wg.Wait()
		if reached.Load() {
			return
		}
		missing = missing[n:]
	}
}

// join joins one peer address and reports whether the peer answered. After
// a partition the two sides hold each other dead at incarnations the other
// side has not exceeded, so the first push/pull only makes both sides refute
// (bump their incarnations); a second one, once the refutations have been
// gossiped, brings them together. Hence the follow-up join.
func (c *Cluster) join(ctx context.Context, p netip.AddrPort) bool {
	for attempt := 1; ; attempt++ {
		if _, err := c.ml.Join([]string{p.String()}); err != nil {
			// A peer that is down fails here every round: debug only.
			c.log.Debug("joining memberlist peer failed", "peer", p.String(), "err", err)
			return attempt > 1
		}
		if c.liveAddrs()[p] {
			c.log.Info("joined memberlist peer", "peer", p.String())
			return true
		}
		if attempt == 2 {
			c.log.Debug("memberlist peer answered but is not a member at this address", "peer", p.String())
			c.peersMu.Lock()
			c.answered[p] = c.cfg.Clock.Now().Add(answeredBackoffRounds * c.cfg.RejoinInterval)
			c.peersMu.Unlock()
			return true
		}
		t := c.cfg.Clock.NewTimer(followUpGossipRounds * c.cfg.GossipInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return true
		case <-t.C():
		}
	}
}

// liveAddrs returns the advertised addresses of the live members.
func (c *Cluster) liveAddrs() map[netip.AddrPort]bool {
	c.membersMu.Lock()
	defer c.membersMu.Unlock()
	live := make(map[netip.AddrPort]bool, len(c.members))
	for _, m := range c.members {
		live[m.addr] = true
	}
	return live
}
