package main

import (
	"context"
	"net/netip"

	"github.com/heraldlb/herald/internal/bgp"
	"github.com/heraldlb/herald/internal/bgpplan"
)

// bgpAdapter feeds the speaker's plan to the BGP announcer.
type bgpAdapter struct{ a *bgp.Announcer }

func (b bgpAdapter) SetPeers(ctx context.Context, routerID netip.Addr, peers []bgpplan.Peer) error {
	return b.a.SetPeers(ctx, routerID, peers)
}

func (b bgpAdapter) SetPaths(ctx context.Context, paths []bgpplan.Path) error {
	return b.a.SetPaths(ctx, paths)
}

func (b bgpAdapter) Sessions() map[string]bool {
	out := map[string]bool{}
	for name, st := range b.a.Sessions() {
		out[name] = st.Up
	}
	return out
}
