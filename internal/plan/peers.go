package plan

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/election"
)

// peers are the BGPPeers whose nodeSelector matches self, as the announcer
// takes them, with the router ID they agree on and the problems of those
// this node cannot use. A peer without its password is left out: a session
// with a wrong password would only flap.
func peers(self string, nodes []election.NodeInfo, all []Peer) ([]bgpplan.Peer, netip.Addr, []Problem) {
	i := slices.IndexFunc(nodes, func(n election.NodeInfo) bool { return n.Name == self })
	if i < 0 || len(all) == 0 {
		return nil, netip.Addr{}, nil
	}
	selfLabels := labels.Set(nodes[i].Labels)
	var (
		out      []bgpplan.Peer
		problems []Problem
		asked    = map[string]netip.Addr{}
	)
	for _, p := range slices.SortedFunc(slices.Values(all), func(a, b Peer) int { return strings.Compare(a.Name, b.Name) }) {
		if sel := p.Spec.NodeSelector; sel != nil {
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil {
				problems = append(problems, Problem{p.Name, fmt.Sprintf("nodeSelector: %v", err)})
				continue
			}
			if !s.Matches(selfLabels) {
				continue
			}
		}
		if p.PasswordProblem != "" {
			problems = append(problems, Problem{p.Name, p.PasswordProblem + ": no session until it does"})
			continue
		}
		bp, rid, err := bgpPeer(p)
		if err != nil {
			problems = append(problems, Problem{p.Name, err.Error()})
			continue
		}
		asked[p.Name] = rid
		out = append(out, bp)
	}
	rid, err := bgpplan.RouterID(asked)
	if err != nil {
		msg := "this node's BGP " + err.Error() + ": the node's default router ID is used for all"
		for _, name := range slices.Sorted(maps.Keys(asked)) {
			if asked[name].IsValid() {
				problems = append(problems, Problem{name, msg})
			}
		}
		slices.SortFunc(problems, func(a, b Problem) int { return strings.Compare(a.Peer, b.Peer) })
	}
	return out, rid, problems
}

// bgpPeer is the announcer's view of a BGPPeer, defaults filled in, and
// the router ID it asks for (the zero Addr for none).
func bgpPeer(p Peer) (bgpplan.Peer, netip.Addr, error) {
	s := p.Spec
	var (
		addr netip.Addr
		err  error
	)
	switch {
	case s.Interface != "" && s.PeerAddress != "":
		return bgpplan.Peer{}, netip.Addr{}, fmt.Errorf("both peerAddress %q and interface %q", s.PeerAddress, s.Interface)
	case s.Interface != "":
		if !bgpplan.ValidInterfaceName(s.Interface) {
			return bgpplan.Peer{}, netip.Addr{}, fmt.Errorf("interface %q is not an interface name", s.Interface)
		}
	default:
		if addr, err = netip.ParseAddr(s.PeerAddress); err != nil {
			return bgpplan.Peer{}, netip.Addr{}, fmt.Errorf("peerAddress %q: %w", s.PeerAddress, err)
		}
	}
	out := bgpplan.Peer{
		Name: p.Name, MyASN: s.MyASN, PeerASN: s.PeerASN, DynamicASN: bgpplan.DynamicASN(s.DynamicASN),
		Address: addr, Interface: s.Interface, Port: bgpplan.DefaultPort,
		HoldTime: duration(s.HoldTime, bgpplan.DefaultHoldTime), KeepaliveTime: duration(s.KeepaliveTime, 0),
		ConnectTime: duration(s.ConnectTime, bgpplan.DefaultConnectTime), EBGPMultiHop: s.EBGPMultiHop,
		Password: p.Password, GracefulRestart: s.GracefulRestart, VRF: s.VRF,
	}
	if s.PeerPort != nil {
		out.Port = uint16(*s.PeerPort)
	}
	if b := s.BFD; b != nil {
		out.BFD = bgpplan.BFD{Enabled: true, ReceiveInterval: duration(b.ReceiveInterval, 0),
			TransmitInterval: duration(b.TransmitInterval, 0), Passive: b.PassiveMode}
		if b.DetectMultiplier != nil {
			out.BFD.DetectMultiplier = uint8(*b.DetectMultiplier)
		}
		if b.MinimumTTL != nil {
			out.BFD.MinimumTTL = uint8(*b.MinimumTTL)
		}
		if b.EchoMode {
			return bgpplan.Peer{}, netip.Addr{}, errors.New("bfd.echoMode is not supported")
		}
	}
	if s.SourceAddress != "" {
		if out.SourceAddress, err = netip.ParseAddr(s.SourceAddress); err != nil {
			return bgpplan.Peer{}, netip.Addr{}, fmt.Errorf("sourceAddress %q: %w", s.SourceAddress, err)
		}
	}
	var rid netip.Addr
	if s.RouterID != "" {
		if rid, err = netip.ParseAddr(s.RouterID); err != nil || !rid.Unmap().Is4() {
			return bgpplan.Peer{}, netip.Addr{}, fmt.Errorf("routerID %q is not an IPv4 address", s.RouterID)
		}
		rid = rid.Unmap()
	}
	return out, rid, nil
}

func duration(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}
