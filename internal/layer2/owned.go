package layer2

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// conflictQuiet ends a conflict episode: once no other MAC has answered for
// an address for this long, the next conflicting answer starts a new episode
// and is reported again. Gratuitous bursts of a competing owner are ~2 s
// long, so 10 s separates two takeovers from one.
const conflictQuiet = 10 * time.Second

// ownerConfig is what one responder (one interface, one family) needs from
// the Announcer's Config.
type ownerConfig struct {
	clk        clock.WithTicker
	log        *slog.Logger
	iface      string
	family     string
	count      int
	interval   time.Duration
	grace      time.Duration
	onConflict func(addr netip.Addr, iface string, otherMAC net.HardwareAddr)
	metrics    ifaceMetrics
}

// owned is one address a responder answers for.
type owned struct {
	service string
	since   time.Time     // when this responder took the address over
	stop    chan struct{} // closed when the address is removed

	// Conflict episode state, guarded by ownerSet.mu.
	confirming bool      // a conflicting answer waits for confirmation
	pending    int       // conflicting answers seen while confirming
	active     bool      // a reported episode is in progress
	last       time.Time // last conflicting answer
}

// ownerSet is the part shared by the ARP and NDP responders: which addresses
// they answer for, the gratuitous bursts, and conflict episodes.
type ownerSet struct {
	cfg ownerConfig
	// announce sends one gratuitous round for addr (ARP request and reply
	// forms, or one unsolicited NA) and returns how many packets went out.
	announce func(addr netip.Addr) int

	mu     sync.Mutex
	addrs  map[netip.Addr]*owned
	closed bool
	wg     sync.WaitGroup
	// timed counts the burst and confirmation goroutines, which act only
	// when the clock says so: when each of them waits on the clock, the
	// set has done all it will until the clock moves (tests step a fake
	// clock and check what did not happen).
	timed atomic.Int32
}

func newOwnerSet(cfg ownerConfig, announce func(netip.Addr) int) *ownerSet {
	return &ownerSet{cfg: cfg, announce: announce, addrs: map[netip.Addr]*owned{}}
}

// set makes want (address → Service) the addresses answered for. Removed
// addresses stop being answered before set returns; each new address is
// answered from now on, announced once immediately and GratuitousCount-1
// more times every GratuitousInterval. join and leave, if not nil, are called
// for added and removed addresses with the lock held (NDP group membership).
func (s *ownerSet) set(want map[netip.Addr]string, join, leave func(netip.Addr)) {
	var added []netip.Addr
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for a, o := range s.addrs {
		if _, ok := want[a]; !ok {
			close(o.stop)
			delete(s.addrs, a)
			if leave != nil {
				leave(a)
			}
			s.cfg.log.Info("stopped announcing", "ip", a, "iface", s.cfg.iface)
		}
	}
	now := s.cfg.clk.Now()
	for a, svc := range want {
		if o, ok := s.addrs[a]; ok {
			o.service = svc
			continue
		}
		s.addrs[a] = &owned{service: svc, since: now, stop: make(chan struct{})}
		if join != nil {
			join(a)
		}
		added = append(added, a)
	}
	s.mu.Unlock()

	for _, a := range added {
		s.cfg.log.Info("announcing", "ip", a, "iface", s.cfg.iface, "service", want[a])
		s.mu.Lock()
		o := s.addrs[a]
		s.mu.Unlock()
		s.startBurst(a, o)
	}
}

// startBurst sends the first gratuitous round for a at once and starts the
// remaining GratuitousCount-1, unless a stopped being owned by o (nil: not
// owned) or the set closed meanwhile.
func (s *ownerSet) startBurst(a netip.Addr, o *owned) {
	if o == nil {
		return
	}
	s.gratuitous(a)
	if s.cfg.count <= 1 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addrs[a] == o && !s.closed {
		s.wg.Add(1)
		s.timed.Add(1)
		go s.burst(a, o.stop)
	}
}

func (s *ownerSet) gratuitous(a netip.Addr) {
	if n := s.announce(a); n > 0 {
		s.cfg.metrics.gratuitous.Add(float64(n))
	}
}

// burst sends the remaining GratuitousCount-1 rounds for a.
func (s *ownerSet) burst(a netip.Addr, stop <-chan struct{}) {
	defer s.wg.Done()
	defer s.timed.Add(-1)
	for i := 1; i < s.cfg.count; i++ {
		t := s.cfg.clk.NewTimer(s.cfg.interval)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C():
		}
		// Removal may race with the timer: check again.
		select {
		case <-stop:
			return
		default:
		}
		s.gratuitous(a)
	}
}

// reannounce sends a fresh gratuitous burst for every address of addrs
// this set answers for, as on a takeover: for an owner that must win back
// neighbour caches another node's burst moved (a partition healing).
func (s *ownerSet) reannounce(addrs []netip.Addr) {
	for _, a := range addrs {
		s.mu.Lock()
		o := s.addrs[a]
		s.mu.Unlock()
		if o != nil {
			s.cfg.log.Info("announcing again", "ip", a, "iface", s.cfg.iface)
			s.startBurst(a, o)
		}
	}
}

// owns reports whether a is answered for.
func (s *ownerSet) owns(a netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.addrs[a]
	return ok
}

// conflict records that otherMAC answered for a, which this responder owns.
//
// Answers in the first ConflictGrace after this responder took a over are
// ignored: the previous owner keeps answering on purpose during a graceful
// handover. The old owner sees the new owner's gratuitous burst too, and is
// told to let go a moment later; so an answer seen by a long-standing owner
// is only confirmed (counted and reported) if this responder still owns the
// address ConflictGrace later. One OnConflict call per episode; an episode
// ends after conflictQuiet without conflicting answers or when ownership
// changes.
func (s *ownerSet) conflict(a netip.Addr, otherMAC net.HardwareAddr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.addrs[a]
	if !ok || s.closed {
		return
	}
	now := s.cfg.clk.Now()
	if now.Sub(o.since) < s.cfg.grace {
		return
	}
	if o.active && now.Sub(o.last) > conflictQuiet {
		o.active = false
	}
	o.last = now
	switch {
	case o.active:
		s.cfg.metrics.conflicts.Inc()
	case o.confirming:
		o.pending++
	default:
		o.confirming, o.pending = true, 1
		mac := slices.Clone(otherMAC)
		s.wg.Add(1)
		s.timed.Add(1)
		go s.confirm(a, o, mac)
	}
}

// confirm reports a conflict episode if a is still owned by the same
// ownership (o) ConflictGrace after the first conflicting answer.
func (s *ownerSet) confirm(a netip.Addr, o *owned, mac net.HardwareAddr) {
	defer s.wg.Done()
	defer s.timed.Add(-1)
	if s.cfg.grace > 0 {
		t := s.cfg.clk.NewTimer(s.cfg.grace)
		select {
		case <-o.stop:
			t.Stop()
			return
		case <-t.C():
		}
	}
	s.mu.Lock()
	if s.closed || s.addrs[a] != o {
		s.mu.Unlock()
		return
	}
	o.confirming, o.active = false, true
	s.cfg.metrics.conflicts.Add(float64(o.pending))
	o.pending = 0
	svc := o.service
	s.mu.Unlock()
	s.cfg.log.Warn("another MAC answers for an address this node announces",
		"ip", a, "iface", s.cfg.iface, "mac", mac.String(), "service", svc)
	if s.cfg.onConflict != nil {
		s.cfg.onConflict(a, s.cfg.iface, mac)
	}
}

// close stops every burst and confirmation and answers for nothing more.
func (s *ownerSet) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for a, o := range s.addrs {
			close(o.stop)
			delete(s.addrs, a)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}
