package speaker

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/plan"
)

// recordingL2 is a layer-2 announcer that announces nothing: it keeps the
// announcements it was last given and when, so tests watch decisions.
type recordingL2 struct {
	mu      sync.Mutex
	cur     []plan.L2Announcement
	changed time.Time
}

func (r *recordingL2) Set(_ context.Context, want []plan.L2Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = slices.Clone(want)
	r.changed = time.Now()
	return nil
}

// Current returns the last announcements and when they were set.
func (r *recordingL2) Current() ([]plan.L2Announcement, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cur), r.changed
}

// recordingBGP is a BGP announcer that keeps the last peers and router ID
// it was given.
type recordingBGP struct {
	mu       sync.Mutex
	routerID netip.Addr
	peers    []bgpplan.Peer
}

func (r *recordingBGP) SetPaths(context.Context, []bgpplan.Path) error { return nil }
func (r *recordingBGP) Sessions() map[string]bool                      { return nil }
func (r *recordingBGP) SetPeers(_ context.Context, routerID netip.Addr, peers []bgpplan.Peer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routerID, r.peers = routerID, slices.Clone(peers)
	return nil
}

// get returns the router ID and the peer names last given.
func (r *recordingBGP) get() (netip.Addr, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, p := range r.peers {
		names = append(names, p.Name)
	}
	return r.routerID, names
}
