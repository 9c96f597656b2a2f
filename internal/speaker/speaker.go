package speaker

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"

	"github.com/heraldlb/herald/internal/bgpplan"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/membership"
	"github.com/heraldlb/herald/internal/plan"
)

// L2Announcer answers ARP/NDP for exactly the addresses it was last given.
type L2Announcer interface {
	Set(ctx context.Context, want []plan.L2Announcement) error
}

// BGPAnnouncer advertises exactly the paths it was last given, to exactly
// the peers it was last given (internal/bgp's Announcer).
type BGPAnnouncer interface {
	SetPeers(ctx context.Context, routerID netip.Addr, peers []bgpplan.Peer) error
	SetPaths(ctx context.Context, paths []bgpplan.Path) error
}

// Membership is the speakers' cluster as the speaker needs it.
type Membership interface {
	Members() []membership.Member
	Changed() <-chan struct{}
	SetPeers(addrs []netip.AddrPort)
	Leave(timeout time.Duration) error
}

// Config wires a Speaker.
type Config struct {
	NodeName       string
	MemberlistPort int
	Informers      *Informers
	Class          k8s.Class
	Membership     Membership
	L2             L2Announcer  // nil: layer-2 announcements are computed but not made
	BGP            BGPAnnouncer // nil: likewise for BGP
	// Reporter reports what the speaker does; the announcers report to it
	// too.
	Reporter *Reporter
	Log      *slog.Logger
	Registry prometheus.Registerer
	// HandoverDelay is how long a stopping speaker keeps answering after
	// leaving the cluster, so the next owners take over before it goes quiet.
	HandoverDelay time.Duration
	// JoinWait bounds how long a starting speaker waits to join the others
	// before it decides on its own.
	JoinWait time.Duration
	// Clock paces every wait of the speaker; nil is the real clock.
	Clock clock.Clock
	// Snapshot, if set, is what the speaker saved on the node last time:
	// when the informers have not synced within SnapshotWait (the API
	// server is down), the speaker decides from it until they have.
	Snapshot     *Snapshot
	SnapshotWait time.Duration // 0: 500 ms
	// SnapshotPath, if set, is where the speaker saves a Snapshot of its
	// caches, at most every SnapshotInterval while they change.
	SnapshotPath     string
	SnapshotInterval time.Duration // 0: 10 s
	// WatchInterfaces, if set, is given the interfaces the layer-2 pools
	// name (sorted, each once) whenever they change: the node judges and
	// publishes each one's state, which the election of those pools uses.
	WatchInterfaces func(names []string)
}

// Speaker decides and makes this node's announcements: informers → plan →
// announcers → report.
type Speaker struct {
	cfg Config
	log *slog.Logger
	inf *Informers

	peerCount atomic.Int32 // known peers from the Node objects, set by nodesChanged

	mu   sync.Mutex
	last plan.Plan // the plan last applied

	watched []string // last given to WatchInterfaces; reconcile's own

	// synced is set once the informers have synced: the speaker then
	// decides from them, and snapshots may be saved.
	synced atomic.Bool

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
	if cfg.HandoverDelay == 0 {
		cfg.HandoverDelay = 2 * time.Second
	}
	if cfg.JoinWait == 0 {
		cfg.JoinWait = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.SnapshotWait == 0 {
		cfg.SnapshotWait = 500 * time.Millisecond
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 10 * time.Second
	}
	s := &Speaker{
		cfg: cfg,
		log: cfg.Log, // the caller's logger names the node
		inf: cfg.Informers,
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
	s.inf.onNodes(s.nodesChanged)
	return s
}

// nodesChanged refreshes the memberlist peers from the Nodes' InternalIPs
// and recomputes.
func (s *Speaker) nodesChanged() {
	peers := s.inf.peerAddrs(s.cfg.NodeName, s.cfg.MemberlistPort)
	s.peerCount.Store(int32(len(peers)))
	s.cfg.Membership.SetPeers(peers)
	signal(s.inf.changed)
}

// Run starts the informers and reconciles until ctx ends; then it leaves
// the cluster, keeps answering for HandoverDelay and withdraws everything.
func (s *Speaker) Run(ctx context.Context) error {
	defer s.inf.shutdown()
	synced, err := s.startInformers(ctx)
	if err != nil {
		return err
	}
	if s.cfg.SnapshotPath != "" {
		saverDone := make(chan struct{})
		saverCtx, stopSaver := context.WithCancel(ctx)
		go func() {
			defer close(saverDone)
			s.saveSnapshots(saverCtx)
		}()
		defer func() { stopSaver(); <-saverDone }()
	}
	s.nodesChanged()
	s.awaitJoin(ctx)
	reportCtx, stopReports := context.WithCancel(context.Background())
	reportsDone := make(chan struct{})
	go func() {
		defer close(reportsDone)
		s.cfg.Reporter.Run(reportCtx)
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
			if werr := s.cfg.Reporter.WriteFinal(final); werr != nil {
				s.log.Warn("writing final Speaker status", "err", werr)
			}
			return err
		case <-s.inf.changed:
		case <-s.cfg.Membership.Changed():
		case err := <-synced:
			synced = nil
			if err != nil {
				continue // ctx ended: the next round stops
			}
			s.inf.cur.Store(&s.inf.live)
			s.synced.Store(true)
			s.log.Info("API server reached: deciding from it again instead of the snapshot")
			s.nodesChanged()
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
		// pausing), not wall time: a speaker descheduled during a short
		// recompute on a busy node must not pause for the time it waited.
		if pause := min(3*(processCPU()-cpu), maxRecomputePause); pause > 100*time.Microsecond {
			t := s.cfg.Clock.NewTimer(pause)
			select {
			case <-ctx.Done():
			case <-t.C():
			}
			t.Stop()
		}
	}
}

// startInformers starts the informers and waits until they have synced.
// With a snapshot it waits SnapshotWait at most, then decides from the
// snapshot; the returned channel then says when the informers have synced
// (Run switches to them), and is nil otherwise.
func (s *Speaker) startInformers(ctx context.Context) (<-chan error, error) {
	synced := s.inf.start(ctx)
	var giveUp <-chan time.Time // without a snapshot, wait for the caches alone
	if s.cfg.Snapshot != nil {
		t := s.cfg.Clock.NewTimer(s.cfg.SnapshotWait)
		defer t.Stop()
		giveUp = t.C()
	}
	select {
	case err := <-synced:
		if err != nil {
			return nil, err
		}
		s.synced.Store(true)
		return nil, nil
	case <-giveUp:
	}
	snap := s.cfg.Snapshot
	s.inf.cur.Store(snap.listers(s.inf.live.peers != nil))
	s.log.Warn("API server not reached: deciding from the snapshot saved on this node until it is",
		"saved", snap.Saved.Format(time.RFC3339), "services", len(snap.Services), "pools", len(snap.Pools), "nodes", len(snap.Nodes))
	return synced, nil
}

// saveSnapshots saves a Snapshot of the informers' caches at most every
// SnapshotInterval while they change, once they have synced, and once
// more when ctx ends.
func (s *Speaker) saveSnapshots(ctx context.Context) {
	save := func() {
		if !s.synced.Load() || !s.inf.dirty.Swap(false) {
			return
		}
		if err := WriteSnapshot(s.cfg.SnapshotPath, s.inf.snapshot(s.cfg.Clock.Now())); err != nil {
			s.inf.dirty.Store(true)
			s.log.Warn("saving the snapshot a restart during an API outage starts from", "err", err)
		}
	}
	t := s.cfg.Clock.NewTimer(s.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-t.C():
			save()
			t.Reset(s.cfg.SnapshotInterval)
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
	// Polled, not woken by the first membership change: a join merges the
	// other side's members one event at a time, and deciding on the first
	// of them would claim, for a moment, what the members not merged yet
	// own.
	deadline := s.cfg.Clock.Now().Add(s.cfg.JoinWait)
	for len(s.cfg.Membership.Members()) < 2 {
		if !s.cfg.Clock.Now().Before(deadline) {
			s.log.Warn("no other speaker answered; deciding alone", "waited", s.cfg.JoinWait.String(), "peers", s.peerCount.Load())
			return
		}
		t := s.cfg.Clock.NewTimer(joinPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// joinPoll is how often awaitJoin looks at the membership.
const joinPoll = 20 * time.Millisecond

// shutdown hands over gracefully: leaving first makes the other speakers
// re-elect while this one still answers, so clients never see a gap.
func (s *Speaker) shutdown() error {
	s.log.Info("leaving the speaker cluster for a graceful handover", "handover", s.cfg.HandoverDelay.String())
	if err := s.cfg.Membership.Leave(s.cfg.HandoverDelay); err != nil {
		s.log.Warn("leaving memberlist", "err", err)
	}
	t := s.cfg.Clock.NewTimer(s.cfg.HandoverDelay)
	<-t.C()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.mu.Lock()
	final := s.last
	s.mu.Unlock()
	// The peers stay: BGP withdraws the paths, the sessions end with the
	// announcer.
	final.L2, final.BGP, final.Refused = nil, nil, nil
	s.apply(ctx, final)
	return nil
}

func (s *Speaker) reconcile(ctx context.Context) {
	s.recomputes.Inc()
	members := s.cfg.Membership.Members()
	healthy := 0
	for _, m := range members {
		if m.Healthy {
			healthy++
		}
	}
	s.membersGauge.WithLabelValues("false").Set(float64(len(members) - healthy))
	s.membersGauge.WithLabelValues("true").Set(float64(healthy))
	in := s.input(members)
	s.watchInterfaces(in)
	p := plan.Decide(in)
	s.refused.Set(float64(len(p.Refused)))
	s.apply(ctx, p)
}

// watchInterfaces hands the interfaces named by the layer-2 pools this
// node may announce (their nodeSelector matches it) to WatchInterfaces
// when they change. Pools of other nodes are left out: a rack's VLAN is
// absent elsewhere, and listing it as down on every other node would only
// fill the memberlist metadata.
func (s *Speaker) watchInterfaces(in plan.Input) {
	if s.cfg.WatchInterfaces == nil {
		return
	}
	// Without its own Node (not seen yet), the node watches every named
	// interface.
	var self labels.Set
	found := false
	for _, n := range in.Nodes {
		if n.Name == s.cfg.NodeName {
			self, found = labels.Set(n.Labels), true
		}
	}
	var names []string
	for _, p := range in.Pools {
		if p.L2 == nil {
			continue
		}
		if sel := p.L2.NodeSelector; found && sel != nil && !sel.Empty() && !sel.Matches(self) {
			continue
		}
		names = append(names, p.L2.Interfaces...)
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	if s.watched != nil && slices.Equal(names, s.watched) {
		return
	}
	s.watched = append([]string{}, names...)
	s.cfg.WatchInterfaces(names)
}
