package speaker

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/plan"
)

// SessionsChanged tells the speaker a BGP session went up or down, so its
// report (and from it the BGPPeer's status) follows.
func (s *Speaker) SessionsChanged() { s.pokeReport() }

// SessionChanged is the BGP announcer's report that this node's session
// with peer went up or down: an Event on the BGPPeer and a status refresh.
func (s *Speaker) SessionChanged(peer string, up bool) {
	s.pokeReport()
	if up {
		s.peerEvent(peer, corev1.EventTypeNormal, EventSessionUp, "BGP session from node %s established", s.cfg.NodeName)
	} else {
		s.peerEvent(peer, corev1.EventTypeWarning, EventSessionDown, "BGP session from node %s is down", s.cfg.NodeName)
	}
}

// Events on BGPPeers.
const (
	EventSessionUp   = "SessionUp"
	EventSessionDown = "SessionDown"
	// EventPeerConfig is a BGPPeer this node cannot use as written: its
	// password Secret is missing, or it disagrees with the node's other
	// peers on the router ID.
	EventPeerConfig = "PeerConfigProblem"
)

// peerEvent records an Event on BGPPeer name, with its UID when the
// informer knows it, so that `kubectl describe bgppeer` shows it.
func (s *Speaker) peerEvent(name, eventType, reason, format string, args ...any) {
	ref := &corev1.ObjectReference{APIVersion: heraldv1.SchemeGroupVersion.String(), Kind: "BGPPeer", Name: name}
	if s.inf.peers != nil {
		if p, err := s.inf.peers.Get(name); err == nil {
			ref.UID, ref.ResourceVersion = p.UID, p.ResourceVersion
		}
	}
	s.cfg.Recorder.Eventf(ref, eventType, reason, format, args...)
}

// reportPeerProblems reports each BGPPeer problem of the plan once per distinct
// message (the plan is made at every recompute); a peer without a problem
// any more is cleared, so the same problem coming back is reported again.
func (s *Speaker) reportPeerProblems(problems []plan.Problem) {
	now := make(map[string]string, len(problems))
	for _, p := range problems {
		now[p.Peer] = p.Message
		if s.peerProblems[p.Peer] != p.Message {
			s.log.Warn("BGP peer not usable as written", "peer", p.Peer, "problem", p.Message)
			s.peerEvent(p.Peer, corev1.EventTypeWarning, EventPeerConfig, "node %s: %s", s.cfg.NodeName, p.Message)
		}
	}
	s.peerProblems = now
}

// Event reasons on Services.
const (
	EventAnnouncing     = "Announcing"
	EventAnnounceFailed = "AnnounceFailed"
)

// Announcing Events are rate limited: a burst of announceEventBurst, then
// announceEventRate a second. A node that takes over thousands of
// addresses at once (a failover, a first start) or a stream of new
// Services (10 000 created over minutes) would otherwise queue an Event
// per Service behind its API client's rate limit (5 writes a second): in
// the BGP scale scenario each speaker was still writing Events a minute
// after the last Service was created, delaying its Speaker reports and
// spending a third of its CPU. The Speaker object and the log name every
// announcement either way.
const (
	announceEventBurst = 20
	announceEventRate  = 1
)

// since keeps the start time of a continuing announcement and records an
// Event for a new one: Events are written per change, never per recompute,
// and within the Event rate; one the rate leaves out counts in withoutEvent.
func (s *Speaker) since(key string, now time.Time, addr netip.Addr, svcs, via []string, withoutEvent *int) time.Time {
	if t, ok := s.announced[key]; ok {
		return t
	}
	proto := key[:len(key)-len(addr.String())-1]
	s.log.Info("announcing", "ip", addr, "protocol", proto, "service", svcs, "via", via)
	how := "interface chosen automatically"
	if proto == "bgp" {
		how = "to every peer"
	}
	if len(via) > 0 {
		how = "via " + strings.Join(via, ", ")
	}
	if !s.announceEvents.Allow() {
		(*withoutEvent)++
		return now
	}
	for _, key := range svcs {
		if svc := s.service(key); svc != nil {
			s.cfg.Recorder.Eventf(svc, corev1.EventTypeNormal, EventAnnouncing, "%s announced by node %s over %s (%s)", addr, s.cfg.NodeName, proto, how)
		}
	}
	return now
}

// reportFailures logs an announcer's failures and records AnnounceFailed
// Events for those that are new or changed: a failure that names its
// address (FailedAddr, as layer2.AddrError does) goes to that address's
// Services only, any other to all of the protocol's Services (byAddr).
func (s *Speaker) reportFailures(proto string, byAddr map[netip.Addr][]string, err error) {
	now := map[string]string{}
	services := map[string][]string{}
	add := func(key string, e error, svcs func() []string) {
		if now[key] != "" {
			now[key] += "; "
		}
		now[key] += e.Error()
		if _, ok := services[key]; !ok {
			services[key] = svcs()
		}
	}
	var walk func(error)
	walk = func(e error) {
		if a, ok := e.(interface{ FailedAddr() netip.Addr }); ok {
			add(proto+" "+a.FailedAddr().String(), e, func() []string { return byAddr[a.FailedAddr()] })
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		add(proto+" *", e, func() []string { return slices.Concat(slices.Collect(maps.Values(byAddr))...) })
	}
	if err != nil {
		walk(err)
	}
	for key := range s.failing {
		if _, ok := now[key]; !ok && strings.HasPrefix(key, proto+" ") {
			delete(s.failing, key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(now)) {
		msg := now[key]
		if s.failing[key] == msg {
			continue
		}
		s.failing[key] = msg
		s.log.Error("announcer refused an announcement", "protocol", proto, "err", msg)
		for _, svc := range slices.Compact(slices.Sorted(slices.Values(services[key]))) {
			if obj := s.service(svc); obj != nil {
				s.cfg.Recorder.Eventf(obj, corev1.EventTypeWarning, EventAnnounceFailed, "node %s cannot announce over %s: %s", s.cfg.NodeName, proto, msg)
			}
		}
	}
}

func (s *Speaker) service(key string) *corev1.Service { return s.inf.Service(key) }

// EventAddressConflict is the Warning Event for another host answering
// for an address this node owns (split brain, or a static address clash).
const EventAddressConflict = "AddressConflict"

// ReportConflict records that another MAC answered for addr, which this
// node announces over layer 2: a Warning Event on every Service using it.
// The layer-2 announcer calls it once per conflict episode.
func (s *Speaker) ReportConflict(addr netip.Addr, iface string, mac net.HardwareAddr) {
	s.mu.Lock()
	var svcs []string
	for _, a := range s.last.L2 {
		if a.Addr == addr {
			svcs = a.Services
		}
	}
	s.mu.Unlock()
	s.log.Warn("another host answers for an address this node owns", "ip", addr, "iface", iface, "mac", mac.String(), "service", svcs)
	for _, key := range svcs {
		if svc := s.service(key); svc != nil {
			s.cfg.Recorder.Eventf(svc, corev1.EventTypeWarning, EventAddressConflict,
				"%s is owned by node %s but %s also answers for it on %s (split brain, or a host configured with the address)", addr, s.cfg.NodeName, mac, iface)
		}
	}
}
