package speaker

import (
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/plan"
)

// Event reasons on Services.
const (
	EventAnnouncing     = "Announcing"
	EventAnnounceFailed = "AnnounceFailed"
	// EventAddressConflict is another host answering for an address this
	// node owns (split brain, or a static address clash).
	EventAddressConflict = "AddressConflict"
)

// Event reasons on BGPPeers.
const (
	EventSessionUp   = "SessionUp"
	EventSessionDown = "SessionDown"
	// EventPeerConfig is a BGPPeer this node cannot use as written: its
	// password Secret is missing, it disagrees with the node's other peers
	// on the router ID, an address in it does not parse, or its router is
	// not of the kind its dynamicASN asks for.
	EventPeerConfig = "PeerConfigProblem"
)

// Announcing Events are rate limited: a burst of announceEventBurst, then
// announceEventRate a second. A node that takes over thousands of
// addresses at once (a failover, a first start) or a stream of new
// Services would otherwise queue an Event per Service behind its API
// client's rate limit (5 writes a second), delaying its Speaker reports
// for minutes and spending much of its CPU. The Speaker object and the
// log name every announcement either way.
const (
	announceEventBurst = 20
	announceEventRate  = 1
)

// Objects finds the API objects Events are recorded on (Informers does).
type Objects interface {
	Service(key string) *corev1.Service // nil when gone
	BGPPeer(name string) *heraldv1.BGPPeer
}

// Members is the membership as the report needs it.
type Members interface {
	Members() []membership.Member
}

// ReporterConfig wires a Reporter.
type ReporterConfig struct {
	NodeName string
	// NodeUID is the UID of this node's Node object; the Speaker object
	// is created owned by it, so that the garbage collector deletes it
	// with the Node. Empty: no owner (it then outlives its node).
	NodeUID  types.UID
	Recorder record.EventRecorder // nil: Events are dropped
	Objects  Objects
	// Herald writes this node's Speaker object; nil: none is written.
	Herald  versioned.Interface
	Members Members
	// Keys is this node's memberlist keyring, reported by fingerprint; nil
	// reports none (memberlist without encryption).
	Keys interface{ Keyring() membership.Keyring }
	Log  *slog.Logger
	// Clock paces the Speaker object's writes and dates announcements;
	// nil is the real clock.
	Clock clock.Clock
	// SessionReasons says, by BGPPeer name, why a session of this node
	// cannot come up (the BGP announcer's view); nil: never known.
	SessionReasons func() map[string]string
}

// Reporter tells people what this node does: Events on Services and
// BGPPeers, each change once and Announcing ones within a rate, and this
// node's Speaker object (status.go). It is built before the announcers,
// which report address conflicts and BGP sessions to it, and the speaker
// reports each applied plan.
type Reporter struct {
	cfg ReporterConfig
	log *slog.Logger

	announceEvents *rate.Limiter
	statusPoke     chan struct{}

	mu        sync.Mutex
	last      plan.Plan
	announced map[string]time.Time // "proto/addr" -> since when
	sessions  map[string]bool      // BGPPeer name -> session up
	// failing maps "protocol address" (or "protocol *" for a failure that
	// names no address) to the failure last reported, so that a failure
	// is reported when it starts or changes, not at every recompute.
	failing      map[string]string
	peerProblems map[string]string // BGPPeer name -> the problem last reported
	lastPeerErr  string            // the BGP announcer's last refusal of peers
}

// NewReporter builds a Reporter; the speaker runs its status writes.
func NewReporter(cfg ReporterConfig) *Reporter {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		cfg.Recorder = &record.FakeRecorder{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Reporter{
		cfg:            cfg,
		log:            cfg.Log,
		announceEvents: rate.NewLimiter(announceEventRate, announceEventBurst),
		statusPoke:     make(chan struct{}, 1),
		announced:      map[string]time.Time{},
		sessions:       map[string]bool{},
		failing:        map[string]string{},
		peerProblems:   map[string]string{},
	}
}

// Outcome is what the announcers said to one plan: nil errors when all of
// it was applied.
type Outcome struct {
	L2, BGP error
	// Peers is the BGP announcer's refusal of some peers.
	Peers error
}

// Applied records p as what this node now announces: Announcing Events for
// the new announcements, AnnounceFailed Events for new or changed
// failures, PeerConfigProblem Events for new or changed BGPPeer problems,
// and a Speaker object update.
func (r *Reporter) Applied(p plan.Plan, out Outcome) {
	r.failures("layer2", l2Services(p.L2), out.L2)
	r.failures("bgp", bgpServices(p.BGP), out.BGP)
	r.peers(p.Problems, out.Peers)

	r.mu.Lock()
	now := r.cfg.Clock.Now()
	next := make(map[string]time.Time, len(p.L2)+len(p.BGP))
	withoutEvent := 0
	for _, a := range p.L2 {
		next["layer2/"+a.Addr.String()] = r.since("layer2", now, a.Addr, a.Services, a.Interfaces, &withoutEvent)
	}
	for _, a := range p.BGP {
		next["bgp/"+a.Addr.String()] = r.since("bgp", now, a.Addr, a.Services, a.Peers(), &withoutEvent)
	}
	r.announced, r.last = next, p
	r.mu.Unlock()
	if withoutEvent > 0 {
		r.log.Info("more new announcements than the Event rate allows: the rest are in this node's Speaker object and the log",
			"withoutEvent", withoutEvent, "eventBurst", announceEventBurst, "eventsPerSecond", announceEventRate)
	}
	r.pokeStatus()
}

// since keeps the start time of a continuing announcement and records an
// Event for a new one: Events are written per change, never per recompute,
// and within the Event rate; one the rate leaves out counts in withoutEvent.
// r.mu is held.
func (r *Reporter) since(proto string, now time.Time, addr netip.Addr, svcs, via []string, withoutEvent *int) time.Time {
	if t, ok := r.announced[proto+"/"+addr.String()]; ok {
		return t
	}
	r.log.Info("announcing", "ip", addr, "protocol", proto, "service", svcs, "via", via)
	how := "interface chosen automatically"
	if proto == "bgp" {
		how = "to every peer"
	}
	if len(via) > 0 {
		how = "via " + strings.Join(via, ", ")
	}
	if !r.announceEvents.AllowN(now, 1) {
		(*withoutEvent)++
		return now
	}
	for _, key := range svcs {
		if svc := r.cfg.Objects.Service(key); svc != nil {
			r.cfg.Recorder.Eventf(svc, corev1.EventTypeNormal, EventAnnouncing, "%s announced by node %s over %s (%s)", addr, r.cfg.NodeName, proto, how)
		}
	}
	return now
}

func l2Services(anns []plan.L2Announcement) func() map[netip.Addr][]string {
	return func() map[netip.Addr][]string {
		out := make(map[netip.Addr][]string, len(anns))
		for _, a := range anns {
			out[a.Addr] = a.Services
		}
		return out
	}
}

func bgpServices(anns []plan.BGPAnnouncement) func() map[netip.Addr][]string {
	return func() map[netip.Addr][]string {
		out := make(map[netip.Addr][]string, len(anns))
		for _, a := range anns {
			out[a.Addr] = a.Services
		}
		return out
	}
}

// failures logs an announcer's failures and records AnnounceFailed Events
// for those that are new or changed: a failure that names its address
// (FailedAddr, as layer2.AddrError does) goes to that address's Services
// only, any other to all of the protocol's Services. byAddr builds the
// address-to-Services lookup, only when something failed.
func (r *Reporter) failures(proto string, byAddr func() map[netip.Addr][]string, err error) {
	now := map[string]string{}
	services := map[string][]string{}
	if err != nil {
		lookup := byAddr()
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
				add(proto+" "+a.FailedAddr().String(), e, func() []string { return lookup[a.FailedAddr()] })
				return
			}
			if j, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range j.Unwrap() {
					walk(x)
				}
				return
			}
			add(proto+" *", e, func() []string { return slices.Concat(slices.Collect(maps.Values(lookup))...) })
		}
		walk(err)
	}
	for key := range r.failing {
		if _, ok := now[key]; !ok && strings.HasPrefix(key, proto+" ") {
			delete(r.failing, key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(now)) {
		msg := now[key]
		if r.failing[key] == msg {
			continue
		}
		r.failing[key] = msg
		r.log.Error("announcer refused an announcement", "protocol", proto, "err", msg)
		for _, svc := range slices.Compact(slices.Sorted(slices.Values(services[key]))) {
			if obj := r.cfg.Objects.Service(svc); obj != nil {
				r.cfg.Recorder.Eventf(obj, corev1.EventTypeWarning, EventAnnounceFailed, "node %s cannot announce over %s: %s", r.cfg.NodeName, proto, msg)
			}
		}
	}
}

// peers reports each BGPPeer problem once per distinct message; a peer
// without a problem any more is cleared, so the same problem coming back
// is reported again. The announcer's refusal of peers is logged when it
// changes.
func (r *Reporter) peers(problems []plan.Problem, refused error) {
	now := make(map[string]string, len(problems))
	for _, p := range problems {
		now[p.Peer] = p.Message
		if r.peerProblems[p.Peer] != p.Message {
			r.log.Warn("BGP peer not usable as written", "peer", p.Peer, "problem", p.Message)
			r.peerEvent(p.Peer, corev1.EventTypeWarning, EventPeerConfig, "node %s: %s", r.cfg.NodeName, p.Message)
		}
	}
	r.peerProblems = now
	msg := ""
	if refused != nil {
		msg = refused.Error()
	}
	if msg != r.lastPeerErr && msg != "" {
		r.log.Error("bgp announcer refused some peers", "err", msg)
	}
	r.lastPeerErr = msg
}

// SessionChanged is the BGP announcer's report that this node's session
// with peer went up or down: an Event on the BGPPeer and a status refresh.
// It does not block.
func (r *Reporter) SessionChanged(peer string, up bool) {
	r.mu.Lock()
	r.sessions[peer] = up
	r.mu.Unlock()
	r.pokeStatus()
	if up {
		r.peerEvent(peer, corev1.EventTypeNormal, EventSessionUp, "BGP session from node %s established", r.cfg.NodeName)
	} else {
		r.peerEvent(peer, corev1.EventTypeWarning, EventSessionDown, "BGP session from node %s is down", r.cfg.NodeName)
	}
}

// PeerRefused is the BGP announcer's report that it shut the session with
// peer's router, which is not of the kind the BGPPeer's dynamicASN asks
// for: a Warning Event, once per refusal (the announcer does not dial the
// router again until the BGPPeer changes). It does not block.
func (r *Reporter) PeerRefused(peer, reason string) {
	r.log.Warn("BGP router refused", "peer", peer, "reason", reason)
	r.peerEvent(peer, corev1.EventTypeWarning, EventPeerConfig, "node %s: %s", r.cfg.NodeName, reason)
	r.pokeStatus()
}

// peerEvent records an Event on BGPPeer name, with its UID when the cache
// knows it, so that `kubectl describe bgppeer` shows it.
func (r *Reporter) peerEvent(name, eventType, reason, format string, args ...any) {
	ref := &corev1.ObjectReference{APIVersion: heraldv1.SchemeGroupVersion.String(), Kind: "BGPPeer", Name: name}
	if p := r.cfg.Objects.BGPPeer(name); p != nil {
		ref.UID, ref.ResourceVersion = p.UID, p.ResourceVersion
	}
	r.cfg.Recorder.Eventf(ref, eventType, reason, format, args...)
}

// Conflict is the layer-2 announcer's report that another MAC answered
// for addr, which this node announces: a Warning Event on every Service
// using it, once per conflict episode. It does not block.
func (r *Reporter) Conflict(addr netip.Addr, iface string, mac net.HardwareAddr) {
	r.mu.Lock()
	var svcs []string
	for _, a := range r.last.L2 {
		if a.Addr == addr {
			svcs = a.Services
		}
	}
	r.mu.Unlock()
	r.log.Warn("another host answers for an address this node owns", "ip", addr, "iface", iface, "mac", mac.String(), "service", svcs)
	for _, key := range svcs {
		if svc := r.cfg.Objects.Service(key); svc != nil {
			r.cfg.Recorder.Eventf(svc, corev1.EventTypeWarning, EventAddressConflict,
				"%s is owned by node %s but %s also answers for it on %s (split brain, or a host configured with the address)", addr, r.cfg.NodeName, mac, iface)
		}
	}
}
