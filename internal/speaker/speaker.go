package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/heraldlb/herald/internal/allocator"
	heraldv1 "github.com/heraldlb/herald/internal/apis/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	heraldinformers "github.com/heraldlb/herald/internal/client/informers"
	heraldlisters "github.com/heraldlb/herald/internal/client/listers/herald/v1alpha1"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/membership"
)

// L2Announcer answers ARP/NDP for exactly the addresses it was last given.
type L2Announcer interface {
	Set(ctx context.Context, want []L2Announcement) error
}

// BGPAnnouncer advertises exactly the addresses it was last given, to
// exactly the peers it was last given.
type BGPAnnouncer interface {
	Set(ctx context.Context, want []BGPAnnouncement) error
	SetPeers(ctx context.Context, peers []BGPPeer) error
	// Sessions reports, per BGPPeer name, whether the session is up.
	Sessions() map[string]bool
}

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
	if s.peers != nil {
		if p, err := s.peers.Get(name); err == nil {
			ref.UID, ref.ResourceVersion = p.UID, p.ResourceVersion
		}
	}
	s.cfg.Recorder.Eventf(ref, eventType, reason, format, args...)
}

// peerProblem reports a configuration problem with BGPPeer name once per
// distinct message (bgpPeers runs on every recompute); an empty message
// clears it, so the same problem coming back is reported again.
func (s *Speaker) peerProblem(name, msg string) {
	s.problemsMu.Lock()
	prev := s.peerProblems[name]
	if msg == "" {
		delete(s.peerProblems, name)
	} else {
		s.peerProblems[name] = msg
	}
	s.problemsMu.Unlock()
	if msg != "" && msg != prev {
		s.log.Warn("BGP peer not usable as written", "peer", name, "problem", msg)
		s.peerEvent(name, corev1.EventTypeWarning, EventPeerConfig, "node %s: %s", s.cfg.NodeName, msg)
	}
}

// BGPPeer is a BGPPeer object whose nodeSelector matches this node, with
// its password read from the referenced Secret.
type BGPPeer struct {
	Name     string
	Spec     heraldv1.BGPPeerSpec
	Password string
}

// Membership is the speakers' cluster as the decision needs it.
type Membership interface {
	Members() []membership.Member
	Changed() <-chan struct{}
	SetPeers(addrs []netip.AddrPort)
	SetHealthy(ctx context.Context, healthy bool) error
	Leave(timeout time.Duration) error
}

// Event reasons on Services.
const (
	EventAnnouncing     = "Announcing"
	EventAnnounceFailed = "AnnounceFailed"
)

// Config wires a Speaker.
type Config struct {
	NodeName       string
	MemberlistPort int
	Kube           kubernetes.Interface
	Herald         versioned.Interface
	Class          k8s.Class
	Membership     Membership
	L2             L2Announcer  // nil: layer-2 announcements are computed but not made
	BGP            BGPAnnouncer // nil: likewise for BGP
	// Namespace is herald's own namespace, where BGP password Secrets live.
	Namespace string
	Recorder  record.EventRecorder
	Log       *slog.Logger
	Registry  prometheus.Registerer
	// HandoverDelay is how long a stopping speaker keeps answering after
	// leaving the cluster, so the next owners take over before it goes quiet.
	HandoverDelay time.Duration
	// JoinWait bounds how long a starting speaker waits to join the others
	// before it decides on its own.
	JoinWait time.Duration
}

// Speaker decides and makes this node's announcements.
type Speaker struct {
	cfg Config
	log *slog.Logger

	kubeFactory   kubeinformers.SharedInformerFactory
	heraldFactory heraldinformers.SharedInformerFactory
	svcs          corelisters.ServiceLister
	slices        discoverylisters.EndpointSliceLister
	nodes         corelisters.NodeLister
	pools         heraldlisters.IPPoolLister
	peers         heraldlisters.BGPPeerLister
	// secrets is set only when a BGP announcer is configured: a speaker
	// without BGP needs no access to Secrets.
	secretFactory kubeinformers.SharedInformerFactory
	secrets       corelisters.SecretLister

	trigger    chan struct{}
	reportPoke chan struct{}
	peerCount  atomic.Int32 // known peers from the Node objects, set by nodesChanged

	lastPeerErr string // apply's last SetPeers error (apply runs on one goroutine)
	// failing maps "protocol address" (or "protocol *" for a failure
	// that names no address) to the failure last reported by an
	// AnnounceFailed Event, so that a failure is reported when it starts
	// or changes, not on every recompute (apply's goroutine only).
	failing map[string]string

	problemsMu   sync.Mutex
	peerProblems map[string]string // BGPPeer name -> the problem last reported

	mu        sync.Mutex
	announced map[string]time.Time // "proto/addr" -> since when, for Events and status
	last      Desired

	announceEvents *rate.Limiter // see announceEventBurst

	announcedGauge *prometheus.GaugeVec
	membersGauge   *prometheus.GaugeVec
	recomputes     prometheus.Counter
	refused        prometheus.Gauge
}

// New builds a Speaker; Run starts it.
func New(cfg Config) *Speaker {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		cfg.Recorder = &record.FakeRecorder{}
	}
	if cfg.HandoverDelay == 0 {
		cfg.HandoverDelay = 2 * time.Second
	}
	if cfg.JoinWait == 0 {
		cfg.JoinWait = 5 * time.Second
	}
	s := &Speaker{
		cfg:            cfg,
		log:            cfg.Log, // the caller's logger names the node
		trigger:        make(chan struct{}, 1),
		reportPoke:     make(chan struct{}, 1),
		announced:      map[string]time.Time{},
		failing:        map[string]string{},
		announceEvents: rate.NewLimiter(announceEventRate, announceEventBurst),
		peerProblems:   map[string]string{},
		announcedGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_speaker_announced_addresses",
			Help: "Addresses this node announces, by protocol.",
		}, []string{"protocol"}),
		recomputes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_speaker_recomputes_total",
			Help: "Full recomputations of this node's announcements.",
		}),
		membersGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_speaker_memberlist_members",
			Help: "Live speakers this node sees in memberlist (itself included) at its last recompute, by the health they publish.",
		}, []string{"healthy"}),
		refused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_speaker_refused_addresses",
			Help: "Service addresses not announced because they lie in no IPPool.",
		}),
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(s.announcedGauge, s.recomputes, s.refused, s.membersGauge)
	}
	s.kubeFactory = kubeinformers.NewSharedInformerFactoryWithOptions(cfg.Kube, 0, kubeinformers.WithTransform(slimObject))
	s.heraldFactory = heraldinformers.NewSharedInformerFactory(cfg.Herald, 0)
	svcInf := s.kubeFactory.Core().V1().Services()
	epsInf := s.kubeFactory.Discovery().V1().EndpointSlices()
	nodeInf := s.kubeFactory.Core().V1().Nodes()
	poolInf := s.heraldFactory.Herald().V1alpha1().IPPools()
	s.svcs, s.slices, s.nodes, s.pools = svcInf.Lister(), epsInf.Lister(), nodeInf.Lister(), poolInf.Lister()
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	informers := []cache.SharedIndexInformer{svcInf.Informer(), epsInf.Informer(), poolInf.Informer()}
	if cfg.BGP != nil {
		peerInf := s.heraldFactory.Herald().V1alpha1().BGPPeers()
		s.peers = peerInf.Lister()
		s.secretFactory = kubeinformers.NewSharedInformerFactoryWithOptions(cfg.Kube, 0, kubeinformers.WithNamespace(cfg.Namespace))
		secretInf := s.secretFactory.Core().V1().Secrets()
		s.secrets = secretInf.Lister()
		informers = append(informers, peerInf.Informer(), secretInf.Informer())
	}
	for _, inf := range informers {
		_, _ = inf.AddEventHandler(poke)
	}
	_, _ = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.nodesChanged() },
		UpdateFunc: func(oldObj, newObj any) {
			// Kubelets rewrite their Node every few seconds (heartbeats);
			// a full recompute at 10 000 Services costs tens of
			// milliseconds, so only what the decision reads counts.
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 || nodeMatters(o) != nodeMatters(n) {
				s.nodesChanged()
			}
		},
		DeleteFunc: func(any) { s.nodesChanged() },
	})
	return s
}

// nodeMatters is what the speaker reads of a Node (labels, InternalIPs,
// NetworkUnavailable), as a comparable string.
func nodeMatters(n *corev1.Node) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		b.WriteString(k + "=" + n.Labels[k] + "\n")
	}
	for _, ip := range k8s.NodeInternalIPs(n) {
		b.WriteString(ip.String() + "\n")
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			b.WriteString("NetworkUnavailable=" + string(c.Status))
		}
	}
	return b.String()
}

// slimObject drops from cached objects what the speaker never reads:
// managedFields (often the largest part of a small Service) and kubectl's
// last-applied copy of the whole object. At 10 000 Services the caches are
// a large part of a speaker's memory.
func slimObject(obj any) (any, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return obj, nil // a tombstone: left as it is
	}
	m.SetManagedFields(nil)
	if a := m.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
		a = maps.Clone(a)
		delete(a, corev1.LastAppliedConfigAnnotation)
		m.SetAnnotations(a)
	}
	return obj, nil
}

func (s *Speaker) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// nodesChanged refreshes the memberlist peers from the Nodes' InternalIPs:
// speakers run with hostNetwork, so a node's address is its speaker's.
func (s *Speaker) nodesChanged() {
	nodes, _ := s.nodes.List(labels.Everything())
	var peers []netip.AddrPort
	for _, n := range nodes {
		if n.Name == s.cfg.NodeName {
			continue
		}
		if ips := k8s.NodeInternalIPs(n); len(ips) > 0 {
			peers = append(peers, netip.AddrPortFrom(ips[0], uint16(s.cfg.MemberlistPort)))
		}
	}
	s.peerCount.Store(int32(len(peers)))
	s.cfg.Membership.SetPeers(peers)
	s.poke()
}

// Run starts the informers and reconciles until ctx ends; then it leaves
// the cluster, keeps answering for HandoverDelay and withdraws everything.
func (s *Speaker) Run(ctx context.Context) error {
	s.kubeFactory.Start(ctx.Done())
	s.heraldFactory.Start(ctx.Done())
	defer s.kubeFactory.Shutdown()
	defer s.heraldFactory.Shutdown()
	syncers := []k8s.Syncer{s.kubeFactory, s.heraldFactory}
	if s.secretFactory != nil {
		s.secretFactory.Start(ctx.Done())
		defer s.secretFactory.Shutdown()
		syncers = append(syncers, s.secretFactory)
	}
	if err := k8s.WaitForSync(ctx, syncers...); err != nil {
		return err
	}
	s.nodesChanged()
	s.awaitJoin(ctx)
	reportCtx, stopReports := context.WithCancel(context.Background())
	reportsDone := make(chan struct{})
	go func() {
		defer close(reportsDone)
		s.runReports(reportCtx)
	}()
	defer func() {
		stopReports()
		<-reportsDone
	}()
	for {
		select {
		case <-ctx.Done():
			err := s.shutdown()
			stopReports()
			<-reportsDone
			// A last report says this node announces nothing any more.
			final, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if werr := s.writeReport(final, s.report()); werr != nil {
				s.log.Warn("writing final Speaker status", "err", werr)
			}
			return err
		case <-s.trigger:
		case <-s.cfg.Membership.Changed():
		}
		cpu := processCPU()
		s.reconcile(ctx)
		// A full recompute at 10 000 Services takes tens of milliseconds;
		// while Services stream in (an install, a burst of creates) back
		// to back recomputes would each take a core away from the API
		// server. Pausing three times the last one's cost keeps a speaker
		// under a quarter of a core then; with a few hundred Services the
		// pause is well under a millisecond, so a single change is still
		// acted on at once. The cost is the process's CPU time across
		// the recompute (other goroutines' included, which errs towards
		// pausing), not wall time: with wall time, a speaker descheduled
		// for 80 ms during a sub-millisecond recompute on a busy node
		// would pause 240 ms before acting on the next change. That is
		// the likely cause of one CI run's ETP Local move reaching FRR
		// after 246 ms instead of the usual 64–73 ms.
		if pause := min(3*(processCPU()-cpu), maxRecomputePause); pause > 100*time.Microsecond {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}
}

// processCPU is the CPU time this process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRecomputePause bounds the pause after a recompute (see Run).
const maxRecomputePause = 300 * time.Millisecond

// awaitJoin holds the first decision until this speaker has joined the
// others (a join syncs the full membership) or JoinWait passes: deciding
// while it still sees only itself would make a restarting speaker claim
// every address and send gratuitous ARP for all of them.
func (s *Speaker) awaitJoin(ctx context.Context) {
	if s.peerCount.Load() == 0 {
		return
	}
	deadline := time.Now().Add(s.cfg.JoinWait)
	for len(s.cfg.Membership.Members()) < 2 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	if n := len(s.cfg.Membership.Members()); n < 2 {
		s.log.Warn("no other speaker answered; deciding alone", "waited", s.cfg.JoinWait.String(), "peers", s.peerCount.Load())
	}
}

// shutdown hands over gracefully: leaving first makes the other speakers
// re-elect while this one still answers, so clients never see a gap.
func (s *Speaker) shutdown() error {
	s.log.Info("leaving the speaker cluster for a graceful handover", "handover", s.cfg.HandoverDelay.String())
	if err := s.cfg.Membership.Leave(s.cfg.HandoverDelay); err != nil {
		s.log.Warn("leaving memberlist", "err", err)
	}
	time.Sleep(s.cfg.HandoverDelay)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.apply(ctx, Desired{})
	return nil
}

// Snapshot returns the last decision, for tests and status.
func (s *Speaker) Snapshot() Desired {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *Speaker) reconcile(ctx context.Context) {
	s.recomputes.Inc()
	d := Decide(s.cfg.NodeName, s.nodeInfos(), s.poolInfos(), s.serviceInfos())
	s.refused.Set(float64(len(d.Refused)))
	s.apply(ctx, d)
}

func (s *Speaker) apply(ctx context.Context, d Desired) {
	if s.cfg.L2 != nil {
		err := s.cfg.L2.Set(ctx, d.L2)
		var byAddr map[netip.Addr][]string
		if err != nil { // a lookup for the Events only
			byAddr = make(map[netip.Addr][]string, len(d.L2))
			for _, a := range d.L2 {
				byAddr[a.Addr] = a.Services
			}
		}
		s.reportFailures("layer2", byAddr, err)
	}
	if s.cfg.BGP != nil {
		if s.peers != nil {
			// Logged when the problem changes, not on every recompute.
			msg := ""
			if err := s.cfg.BGP.SetPeers(ctx, s.bgpPeers()); err != nil {
				msg = err.Error()
			}
			if msg != s.lastPeerErr && msg != "" {
				s.log.Error("bgp announcer refused some peers", "err", msg)
			}
			s.lastPeerErr = msg
		}
		err := s.cfg.BGP.Set(ctx, d.BGP)
		var byAddr map[netip.Addr][]string
		if err != nil {
			byAddr = make(map[netip.Addr][]string, len(d.BGP))
			for _, a := range d.BGP {
				byAddr[a.Addr] = a.Services
			}
		}
		s.reportFailures("bgp", byAddr, err)
	}
	s.announcedGauge.WithLabelValues("layer2").Set(float64(len(d.L2)))
	s.announcedGauge.WithLabelValues("bgp").Set(float64(len(d.BGP)))

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	next := map[string]time.Time{}
	withoutEvent := 0
	for _, a := range d.L2 {
		next["layer2/"+a.Addr.String()] = s.since("layer2/"+a.Addr.String(), now, a.Addr, a.Services, a.Interfaces, &withoutEvent)
	}
	for _, a := range d.BGP {
		next["bgp/"+a.Addr.String()] = s.since("bgp/"+a.Addr.String(), now, a.Addr, a.Services, a.Policy.Peers, &withoutEvent)
	}
	s.announced, s.last = next, d
	if withoutEvent > 0 {
		s.log.Info("more new announcements than the Event rate allows: the rest are in this node's Speaker object and the log",
			"withoutEvent", withoutEvent, "eventBurst", announceEventBurst, "eventsPerSecond", announceEventRate)
	}
	s.pokeReport()
}

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

func (s *Speaker) service(key string) *corev1.Service {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	svc, err := s.svcs.Services(ns).Get(name)
	if err != nil {
		return nil
	}
	return svc
}

func (s *Speaker) nodeInfos() []election.NodeInfo {
	members := map[string]membership.Member{}
	healthy := 0
	for _, m := range s.cfg.Membership.Members() {
		members[m.Name] = m
		if m.Healthy {
			healthy++
		}
	}
	s.membersGauge.WithLabelValues("false").Set(float64(len(members) - healthy))
	s.membersGauge.WithLabelValues("true").Set(float64(healthy))
	nodes, _ := s.nodes.List(labels.Everything())
	out := make([]election.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		m, alive := members[n.Name]
		_, excluded := n.Labels[k8s.LabelExcludeFromLB]
		info := election.NodeInfo{Name: n.Name, Labels: n.Labels, Excluded: excluded, Alive: alive, Healthy: alive && m.Healthy}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
				info.NetworkUnavailable = true
			}
		}
		out = append(out, info)
	}
	return out
}

func (s *Speaker) poolInfos() []Pool {
	pools, _ := s.pools.List(labels.Everything())
	out := make([]Pool, 0, len(pools))
	for _, p := range pools {
		out = append(out, poolInfo(p, s.log))
	}
	return out
}

func poolInfo(p *heraldv1.IPPool, log *slog.Logger) Pool {
	// Until the controller has judged this generation of the spec, the
	// pool still holds what it held: a shrunk spec arrives before the
	// InUseOutsideSpec condition that keeps addresses outside it, and
	// deciding in between would withdraw them for that moment.
	outside := meta.FindStatusCondition(p.Status.Conditions, heraldv1.ConditionInUseOutsideSpec)
	info := Pool{Name: p.Name, Created: p.CreationTimestamp.Time, ExternalIPs: p.Spec.ExternalIPs,
		HoldsOutsideSpec: outside != nil && (outside.Status == metav1.ConditionTrue || outside.ObservedGeneration < p.Generation)}
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
			log.Warn("ignoring pool with a bad node selector", "pool", p.Name, "err", err)
			return labels.Nothing()
		}
		return s
	}
	if l2 := p.Spec.Announce.Layer2; l2 != nil {
		info.L2 = &L2Policy{Interfaces: l2.Interfaces, NodeSelector: sel(l2.NodeSelector)}
	}
	if b := p.Spec.Announce.BGP; b != nil {
		info.BGP = &BGPPolicy{Peers: b.Peers, NodeSelector: sel(b.NodeSelector), Communities: b.Communities,
			LargeCommunities: b.LargeCommunities, LocalPref: b.LocalPref, AggregationLength: 32, AggregationLengthV6: 128}
		if b.AggregationLength != nil {
			info.BGP.AggregationLength = int(*b.AggregationLength)
		}
		if b.AggregationLengthV6 != nil {
			info.BGP.AggregationLengthV6 = int(*b.AggregationLengthV6)
		}
	}
	return info
}

func (s *Speaker) serviceInfos() []Service {
	svcs, _ := s.svcs.List(labels.Everything())
	out := make([]Service, 0, len(svcs))
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
		info := Service{Key: svc.Namespace + "/" + svc.Name, Addrs: addrs, ExternalIPs: ext, PoolHint: svc.Annotations[k8s.AnnotationPoolAllocated]}
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
	eps, _ := s.slices.EndpointSlices(svc.Namespace).List(sel)
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

// Announced lists this node's current announcements with their start
// times, sorted, for status output.
func (s *Speaker) Announced() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.announced))
	for k, t := range s.announced {
		out = append(out, k+" since "+strconv.FormatInt(t.Unix(), 10))
	}
	slices.Sort(out)
	return out
}

// bgpPeers are the BGPPeers that select this node, passwords resolved. A
// peer whose Secret is missing is left out (and logged): a session with a
// wrong password would only flap.
func (s *Speaker) bgpPeers() []BGPPeer {
	self, err := s.nodes.Get(s.cfg.NodeName)
	if err != nil {
		return nil
	}
	all, _ := s.peers.List(labels.Everything())
	var out []BGPPeer
	routerIDs := map[string][]string{}
	for _, p := range all {
		if p.Spec.NodeSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector)
			if err != nil || !sel.Matches(labels.Set(self.Labels)) {
				continue
			}
		}
		peer := BGPPeer{Name: p.Name, Spec: p.Spec}
		if ref := p.Spec.PasswordSecretRef; ref != nil {
			sec, err := s.secrets.Secrets(s.cfg.Namespace).Get(ref.Name)
			if err != nil || len(sec.Data[ref.Key]) == 0 {
				s.peerProblem(p.Name, fmt.Sprintf("password Secret %s/%s has no key %q: no session until it does", s.cfg.Namespace, ref.Name, ref.Key))
				continue
			}
			peer.Password = string(sec.Data[ref.Key])
		}
		if p.Spec.RouterID != "" {
			routerIDs[p.Spec.RouterID] = append(routerIDs[p.Spec.RouterID], p.Name)
		}
		out = append(out, peer)
	}
	slices.SortFunc(out, func(a, b BGPPeer) int { return strings.Compare(a.Name, b.Name) })
	// One GoBGP server has one router ID (SPEC §2): peers asking for
	// different ones all get the node's default, and a Warning.
	conflict := ""
	if len(routerIDs) > 1 {
		var parts []string
		for _, id := range slices.Sorted(maps.Keys(routerIDs)) {
			slices.Sort(routerIDs[id])
			parts = append(parts, fmt.Sprintf("%s (%s)", id, strings.Join(routerIDs[id], ", ")))
		}
		conflict = "this node's BGP peers ask for different router IDs, " + strings.Join(parts, " vs ") + ": the node's IPv4 InternalIP is used for all"
	}
	for i := range out {
		if conflict != "" && out[i].Spec.RouterID != "" {
			out[i].Spec.RouterID = ""
			s.peerProblem(out[i].Name, conflict)
			continue
		}
		s.peerProblem(out[i].Name, "")
	}
	return out
}

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
