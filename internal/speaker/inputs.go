package speaker

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/plan"
)

// This file reads the caches into plan's plain values. Listers of a
// synced cache never fail, so their errors are not checked.

// input is what the speaker decides from now.
func (s *Speaker) input(members []membership.Member) plan.Input {
	in := plan.Input{
		Self:     s.cfg.NodeName,
		Nodes:    s.nodeInfos(members),
		Pools:    s.poolInfos(),
		Services: s.serviceInfos(),
	}
	if s.inf.l().peers != nil {
		in.Peers = s.peerInfos()
	}
	return in
}

// nodeInfos joins the Node objects with the live members: a node whose
// speaker is not a member is not alive.
func (s *Speaker) nodeInfos(members []membership.Member) []election.NodeInfo {
	byName := make(map[string]membership.Member, len(members))
	for _, m := range members {
		byName[m.Name] = m
	}
	nodes, _ := s.inf.l().nodes.List(labels.Everything())
	out := make([]election.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		m, alive := byName[n.Name]
		_, excluded := n.Labels[k8s.LabelExcludeFromLB]
		info := election.NodeInfo{
			Name: n.Name, Labels: n.Labels, Excluded: excluded, Alive: alive, Healthy: alive && m.Healthy,
			InterfacesDown: m.Interfaces.Down, InterfacesUnlisted: m.Interfaces.Unlisted,
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
				info.NetworkUnavailable = true
			}
		}
		out = append(out, info)
	}
	return out
}

func (s *Speaker) poolInfos() []plan.Pool {
	pools, _ := s.inf.l().pools.List(labels.Everything())
	var peers []*heraldv1.BGPPeer
	if l := s.inf.l().peers; l != nil {
		peers, _ = l.List(labels.Everything())
	}
	out := make([]plan.Pool, 0, len(pools))
	for _, p := range pools {
		out = append(out, poolInfo(p, peers, s.log))
	}
	return out
}

// poolInfo reads a pool; peers are every BGPPeer, against which the
// advertisements' peer selectors are resolved into names.
func poolInfo(p *heraldv1.IPPool, peers []*heraldv1.BGPPeer, log *slog.Logger) plan.Pool {
	info := plan.Pool{Name: p.Name, Created: p.CreationTimestamp.Time, ExternalIPs: p.Spec.ExternalIPs, Hold: p.Spec.Hold}
	// Until the controller has judged this generation of the spec, the
	// pool still holds what it held: a shrunk spec arrives before the
	// status that lists the addresses kept outside it, and deciding in
	// between would withdraw them for that moment (k8s.OutsideSpec says
	// so: not known).
	held, known := k8s.OutsideSpec(p)
	info.HeldOutsideSpec, info.OutsideSpecUnknown = held, !known
	for _, a := range p.Spec.Addresses {
		r, err := allocator.ParseRange(a)
		if err != nil {
			// The controller reports the pool; an address it cannot
			// parse is simply never announced.
			continue
		}
		info.Ranges = append(info.Ranges, r)
	}
	sel := func(ls *metav1.LabelSelector) labels.Selector {
		if ls == nil {
			return nil
		}
		s, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			log.Warn("ignoring pool with a bad selector", "pool", p.Name, "err", err)
			return labels.Nothing()
		}
		return s
	}
	if l2 := p.Spec.Announce.Layer2; l2 != nil {
		info.L2 = &plan.L2Policy{Interfaces: l2.Interfaces, NodeSelector: sel(l2.NodeSelector)}
	}
	if b := p.Spec.Announce.BGP; b != nil {
		add := func(name string, ad *heraldv1.BGPAdvertisement) {
			pol := &plan.BGPPolicy{Name: name, Peers: ad.Peers, NodeSelector: sel(ad.NodeSelector), Communities: ad.Communities,
				LargeCommunities: ad.LargeCommunities, LocalPref: ad.LocalPref, AggregationLength: 32, AggregationLengthV6: 128}
			if ad.PeerSelector != nil {
				pol.Peers = selectPeers(sel(ad.PeerSelector), peers)
				if len(pol.Peers) == 0 {
					return // matches no peer: advertises to none, not to all
				}
			}
			if ad.AggregationLength != nil {
				pol.AggregationLength = int(*ad.AggregationLength)
			}
			if ad.AggregationLengthV6 != nil {
				pol.AggregationLengthV6 = int(*ad.AggregationLengthV6)
			}
			info.BGP = append(info.BGP, pol)
		}
		add("", &b.BGPAdvertisement)
		for i := range b.Advertisements {
			add(b.Advertisements[i].Name, &b.Advertisements[i].BGPAdvertisement)
		}
	}
	return info
}

// selectPeers are the names of the peers s selects, sorted; a nil s
// (a bad selector reads as labels.Nothing) selects none.
func selectPeers(s labels.Selector, peers []*heraldv1.BGPPeer) []string {
	var out []string
	for _, p := range peers {
		if s != nil && s.Matches(labels.Set(p.Labels)) {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Speaker) serviceInfos() []plan.Service {
	svcs, _ := s.inf.l().svcs.List(labels.Everything())
	out := make([]plan.Service, 0, len(svcs))
	for _, svc := range svcs {
		ours := s.cfg.Class.Handles(svc)
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && !ours {
			continue // another implementation's, externalIPs included
		}
		var addrs, ext []netip.Addr
		if ours {
			addrs = k8s.StatusAddrs(svc)
		}
		for _, e := range svc.Spec.ExternalIPs {
			if a, err := netip.ParseAddr(e); err == nil {
				ext = append(ext, a)
			}
		}
		if len(addrs) == 0 && len(ext) == 0 {
			continue
		}
		info := plan.Service{Key: svc.Namespace + "/" + svc.Name, Addrs: addrs, ExternalIPs: ext, PoolHint: svc.Annotations[k8s.AnnotationPoolAllocated]}
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			info.Local, info.LocalNodes = true, s.localNodes(svc)
		}
		out = append(out, info)
	}
	return out
}

// localNodes are the nodes with a ready or serving endpoint of svc.
func (s *Speaker) localNodes(svc *corev1.Service) map[string]bool {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	eps, _ := s.inf.l().slices.EndpointSlices(svc.Namespace).List(sel)
	out := map[string]bool{}
	for _, es := range eps {
		for _, ep := range es.Endpoints {
			if ep.NodeName == nil {
				continue
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ep.Conditions.Serving != nil && *ep.Conditions.Serving
			if ready || serving {
				out[*ep.NodeName] = true
			}
		}
	}
	return out
}

// peerInfos are every BGPPeer with its password read from the Secret it
// names.
func (s *Speaker) peerInfos() []plan.Peer {
	all, _ := s.inf.l().peers.List(labels.Everything())
	out := make([]plan.Peer, 0, len(all))
	for _, p := range all {
		info := plan.Peer{Name: p.Name, Spec: p.Spec}
		if ref := p.Spec.PasswordSecretRef; ref != nil {
			sec, err := s.inf.l().secrets.Secrets(s.inf.namespace).Get(ref.Name)
			if err != nil || len(sec.Data[ref.Key]) == 0 {
				info.PasswordProblem = fmt.Sprintf("password Secret %s/%s has no key %q", s.inf.namespace, ref.Name, ref.Key)
			} else {
				info.Password = string(sec.Data[ref.Key])
			}
		}
		out = append(out, info)
	}
	return out
}
