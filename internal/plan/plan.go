package plan

import (
	"net/netip"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/election"
)

// Input is everything a speaker decides from.
type Input struct {
	// Self is this node's name.
	Self string
	// Nodes are every node known from the API, with its membership state.
	Nodes    []election.NodeInfo
	Pools    []Pool
	Services []Service
	// Peers are every BGPPeer; those whose nodeSelector matches Self are
	// this node's. nil when the node runs no BGP.
	Peers []Peer
}

// Plan is what this node announces, and the problems found on the way.
type Plan struct {
	L2  []L2Announcement // sorted by address
	BGP []BGPAnnouncement
	// Refused are addresses in a Service's status that lie in no IPPool:
	// never announced, so that a status written by someone else cannot
	// hijack traffic (the CVE-2020-8554 class).
	Refused map[netip.Addr][]string
	// BGPPeers are the BGPPeers of this node that can be used, by name.
	BGPPeers []bgpplan.Peer
	// RouterID is the BGP identifier the peers agree on; the zero Addr
	// means the node's own (its IPv4 InternalIP).
	RouterID netip.Addr
	// Problems are BGPPeers this node cannot use as written, sorted.
	Problems []Problem
}

// Problem is a BGPPeer this node cannot use as written.
type Problem struct {
	Peer    string
	Message string
}

// Decide computes what in.Self announces and to which peers.
func Decide(in Input) Plan {
	p := announcements(in.Self, in.Nodes, in.Pools, in.Services)
	p.BGPPeers, p.RouterID, p.Problems = peers(in.Self, in.Nodes, in.Peers)
	return p
}

// Pool is what the speaker needs of an IPPool.
type Pool struct {
	Name    string
	Ranges  []allocator.Range
	Created time.Time
	// ExternalIPs: spec.externalIPs of any Service inside this pool may be announced.
	ExternalIPs bool
	// HeldOutsideSpec are the addresses the pool keeps outside its spec
	// (it shrank, and the controller keeps them with their Services), as
	// its status lists them: still the pool's to announce.
	HeldOutsideSpec []allocator.Range
	// OutsideSpecUnknown: the pool may keep addresses outside its spec
	// that HeldOutsideSpec does not list (the controller has not judged
	// its current spec yet, or lists none). A Service's pool hint naming
	// it is then trusted for any address, as the controller trusts it.
	OutsideSpecUnknown bool
	L2                 *L2Policy
	// BGP are the pool's BGP advertisements: announce.bgp's own fields
	// first, then its advertisements in order. Empty: no BGP.
	BGP []*BGPPolicy
	// Hold: the pool's addresses are its own (never refused) but not
	// announced.
	Hold bool
}

// L2Policy is a pool's announce.layer2.
type L2Policy struct {
	Interfaces   []string
	NodeSelector labels.Selector
}

// BGPPolicy is one BGP advertisement of a pool (announce.bgp's own fields
// or one of its advertisements).
type BGPPolicy struct {
	// Name is the advertisement's name; "" for announce.bgp's own fields.
	Name string
	// Peers are the peers' names (a peerSelector already resolved); empty:
	// every peer. An advertisement whose selector matches no peer is left
	// out of Pool.BGP altogether.
	Peers               []string
	NodeSelector        labels.Selector
	Communities         []string
	LargeCommunities    []string
	LocalPref           *uint32
	AggregationLength   int
	AggregationLengthV6 int
}

// Service is what the speaker needs of a Service.
type Service struct {
	Key string
	// Addrs are the load-balancer addresses from its status.
	Addrs []netip.Addr
	// PoolHint is the herald.dev/pool-allocated annotation.
	PoolHint string
	// ExternalIPs are spec.externalIPs: announced only when they lie in a
	// pool with externalIPs: true and are no load balancer's address.
	ExternalIPs []netip.Addr
	// Local is externalTrafficPolicy: Local; LocalNodes then holds the
	// nodes with a ready or serving endpoint.
	Local      bool
	LocalNodes map[string]bool
}

// Peer is a BGPPeer object, with its password read from the Secret it
// names.
type Peer struct {
	Name     string
	Spec     heraldv1.BGPPeerSpec
	Password string
	// PasswordProblem says why the password could not be read; "" when
	// it was, or none is needed.
	PasswordProblem string
}

// L2Announcement is one address this node answers ARP/NDP for.
type L2Announcement struct {
	Addr       netip.Addr
	Interfaces []string
	Pool       string
	Services   []string
}

// BGPAnnouncement is one address this node advertises over BGP.
type BGPAnnouncement struct {
	Addr netip.Addr
	Pool string
	// Policies are the pool's advertisements whose nodes include this
	// one, in the pool's order; never empty.
	Policies []*BGPPolicy
	Services []string
}

// Peers are the names of the peers the address goes to (sorted when
// several advertisements name them); nil when it goes to every peer.
func (a *BGPAnnouncement) Peers() []string {
	if len(a.Policies) == 1 {
		// The common case, once per address at every recompute: no copy.
		return a.Policies[0].Peers
	}
	var out []string
	for _, p := range a.Policies {
		if len(p.Peers) == 0 {
			return nil
		}
		out = append(out, p.Peers...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
