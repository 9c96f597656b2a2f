package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/internal/bgp"
	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/speaker"
)

// bgpAdapter feeds the speaker's decisions to the BGP announcer.
type bgpAdapter struct{ a *bgp.Announcer }

func (b bgpAdapter) Set(ctx context.Context, want []speaker.BGPAnnouncement) error {
	paths := make([]bgp.Path, 0, len(want))
	for _, w := range want {
		bits := w.Policy.AggregationLength
		if w.Addr.Is6() {
			bits = w.Policy.AggregationLengthV6
		}
		prefix, err := w.Addr.Prefix(bits)
		if err != nil {
			return fmt.Errorf("aggregating %s to /%d: %w", w.Addr, bits, err)
		}
		paths = append(paths, bgp.Path{
			Prefix: prefix, Communities: w.Policy.Communities, LargeCommunities: w.Policy.LargeCommunities,
			LocalPref: w.Policy.LocalPref, Peers: w.Policy.Peers,
		})
	}
	return b.a.SetPaths(ctx, paths)
}

func (b bgpAdapter) SetPeers(ctx context.Context, peers []speaker.BGPPeer) error {
	out := make([]bgp.Peer, 0, len(peers))
	asked := map[string]netip.Addr{}
	var errs []error
	for _, p := range peers {
		addr, err := netip.ParseAddr(p.Spec.PeerAddress)
		if err != nil {
			errs = append(errs, fmt.Errorf("BGPPeer %s: peerAddress %q: %w", p.Name, p.Spec.PeerAddress, err))
			continue
		}
		peer := bgp.Peer{
			Name: p.Name, MyASN: p.Spec.MyASN, PeerASN: p.Spec.PeerASN, Address: addr, Port: bgpplan.DefaultPort,
			HoldTime: dur(p.Spec.HoldTime, bgpplan.DefaultHoldTime), KeepaliveTime: dur(p.Spec.KeepaliveTime, 0),
			ConnectTime: dur(p.Spec.ConnectTime, bgpplan.DefaultConnectTime), EBGPMultiHop: p.Spec.EBGPMultiHop,
			Password: p.Password, GracefulRestart: p.Spec.GracefulRestart,
		}
		if p.Spec.RouterID != "" {
			if asked[p.Name], err = netip.ParseAddr(p.Spec.RouterID); err != nil {
				errs = append(errs, fmt.Errorf("BGPPeer %s: routerID %q: %w", p.Name, p.Spec.RouterID, err))
				continue
			}
		}
		if p.Spec.PeerPort != nil {
			peer.Port = uint16(*p.Spec.PeerPort)
		}
		if p.Spec.SourceAddress != "" {
			if peer.SourceAddress, err = netip.ParseAddr(p.Spec.SourceAddress); err != nil {
				errs = append(errs, fmt.Errorf("BGPPeer %s: sourceAddress %q: %w", p.Name, p.Spec.SourceAddress, err))
				continue
			}
		}
		out = append(out, peer)
	}
	rid, err := bgpplan.RouterID(asked)
	return errors.Join(append(errs, err, b.a.SetPeers(ctx, rid, out))...)
}

func dur(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

func (b bgpAdapter) Sessions() map[string]bool {
	out := map[string]bool{}
	for name, st := range b.a.Sessions() {
		out[name] = st.Up
	}
	return out
}
