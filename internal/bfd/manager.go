package bfd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Manager.
type Config struct {
	Log *slog.Logger
	// OnChange is called when a session comes Up (up true, DiagNone) or
	// leaves Up (up false, with why). It runs on the Manager's goroutine:
	// it must not block, and may call Set and State. A session removed
	// by Set is not reported: the caller asked for it to go. A session
	// the peer took AdminDown is reported with DiagAdminDown (on the
	// wire our diagnostic is then NeighborSignaledSessionDown): RFC 5882
	// §3.2 says that is no path failure, and a client must not act on it
	// as one.
	OnChange func(k Key, up bool, diag Diag)
	// Registerer, when set, gets herald_bfd_session_up{peer}.
	Registerer prometheus.Registerer

	// ports overrides the well-known ports, so that two Managers on one
	// host can talk in tests.
	ports *ports
}

type ports struct {
	listenSingle, listenMulti uint16
	peerSingle, peerMulti     uint16
}

// retryAfter is how long a session whose sockets could not be opened
// (its local address not there yet, say) waits before trying again.
const retryAfter = 5 * time.Second

// Manager runs BFD sessions: one goroutine (Run) drives every session's
// state machine, one receiving socket per local address, port and device
// serves all sessions on it, and each session sends from a socket of its
// own.
type Manager struct {
	log      *slog.Logger
	onChange func(Key, bool, Diag)
	ports    ports
	up       *prometheus.GaugeVec

	mu      sync.Mutex
	desired map[Key]Session
	states  map[Key]State
	running bool

	kick chan struct{}
	rx   chan inbound

	// Owned by Run.
	sessions  map[Key]*session
	byDisc    map[uint32]*session
	listeners map[listenKey]*listener
}

type session struct {
	Session
	m       *machine
	tx      *net.UDPConn
	l       *listener
	up      bool
	retryAt time.Time
}

// New returns a Manager; nothing runs until Run.
func New(cfg Config) (*Manager, error) {
	m := &Manager{
		log:       cfg.Log,
		onChange:  cfg.OnChange,
		ports:     ports{singleHopPort, multihopPort, singleHopPort, multihopPort},
		desired:   map[Key]Session{},
		states:    map[Key]State{},
		kick:      make(chan struct{}, 1),
		rx:        make(chan inbound, 256),
		sessions:  map[Key]*session{},
		byDisc:    map[uint32]*session{},
		listeners: map[listenKey]*listener{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if cfg.ports != nil {
		m.ports = *cfg.ports
	}
	if cfg.Registerer != nil {
		m.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_bfd_session_up",
			Help: "1 when every BFD session to the peer is Up, 0 otherwise.",
		}, []string{"peer"})
		if err := cfg.Registerer.Register(m.up); err != nil {
			return nil, fmt.Errorf("registering BFD metrics: %w", err)
		}
	}
	return m, nil
}

// Set makes the running sessions be sessions: new keys start (Down),
// missing ones are taken AdminDown and removed, and a changed profile is
// applied to the running session (through a poll sequence when it is
// Up). It checks every session first and changes nothing if one is
// invalid. It may be called before Run.
func (m *Manager) Set(sessions []Session) error {
	want := make(map[Key]Session, len(sessions))
	for _, s := range sessions {
		n, err := s.normalize()
		if err != nil {
			return fmt.Errorf("BFD session to %s: %w", s.Peer, err)
		}
		k := n.Key()
		if _, dup := want[k]; dup {
			return fmt.Errorf("BFD session %s given twice", k)
		}
		want[k] = n
	}
	m.mu.Lock()
	m.desired = want
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
	return nil
}

// State returns the session's state, and false when there is no such
// session.
func (m *Manager) State(k Key) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.states[k]
	return s, ok
}

// Run drives the sessions until ctx ends, then closes every socket
// without telling the peers: they see the sessions time out, as they
// would if the node died. Call Set(nil) first to take the sessions
// AdminDown instead.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("bfd: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	defer m.closeAll()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	m.reconcile(ctx, time.Now())
	for {
		now := time.Now()
		m.step(ctx, now)
		m.arm(timer, now)
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
			m.reconcile(ctx, time.Now())
		case in := <-m.rx:
			m.receive(time.Now(), in)
		case <-timer.C:
		}
	}
}

// step runs every session's due timers and sends what they say to send.
func (m *Manager) step(ctx context.Context, now time.Time) {
	for _, s := range m.sessions {
		if s.tx == nil && !now.Before(s.retryAt) {
			m.open(ctx, now, s)
		}
		if t := s.m.next(); t.IsZero() || now.Before(t) {
			continue
		}
		if s.m.advance(now) {
			m.send(s)
		}
		m.changed(s)
	}
}

func (m *Manager) arm(timer *time.Timer, now time.Time) {
	next := now.Add(time.Hour)
	for _, s := range m.sessions {
		if t := s.m.next(); !t.IsZero() && t.Before(next) {
			next = t
		}
		if s.tx == nil && s.retryAt.Before(next) {
			next = s.retryAt
		}
	}
	timer.Reset(max(next.Sub(now), 0))
}

func (m *Manager) reconcile(ctx context.Context, now time.Time) {
	m.mu.Lock()
	want := m.desired
	m.mu.Unlock()
	for k, s := range m.sessions {
		if _, ok := want[k]; !ok {
			m.remove(now, s)
		}
	}
	for k, w := range want {
		s, ok := m.sessions[k]
		if !ok {
			m.add(ctx, now, w)
			continue
		}
		if s.Profile != w.Profile {
			s.Profile = w.Profile
			s.m.setTimers(now, w.timers(), w.Profile.Passive)
		}
	}
}

func (m *Manager) add(ctx context.Context, now time.Time, w Session) {
	var disc uint32
	for disc == 0 || m.byDisc[disc] != nil {
		disc = rand.Uint32()
	}
	s := &session{Session: w, m: newMachine(now, disc, w.timers(), w.Profile.Passive, rand.Float64)}
	m.sessions[w.Key()] = s
	m.byDisc[disc] = s
	m.open(ctx, now, s)
	m.setState(s)
	m.metric(s.Peer)
	m.log.Info("BFD session added", "session", w.Key().String(), "discriminator", disc)
}

// open opens the session's sockets, or schedules another try.
func (m *Manager) open(ctx context.Context, now time.Time, s *session) {
	if s.l == nil {
		l, err := m.listener(ctx, s)
		if err != nil {
			m.log.Warn("BFD: cannot listen", "session", s.Key().String(), "error", err)
			s.retryAt = now.Add(retryAfter)
			return
		}
		s.l = l
	}
	tx, err := dialSource(ctx, s.bindAddr(), s.Interface)
	if err != nil {
		m.log.Warn("BFD: cannot open the sending socket", "session", s.Key().String(), "error", err)
		s.retryAt = now.Add(retryAfter)
		return
	}
	s.tx = tx
}

func (m *Manager) listener(ctx context.Context, s *session) (*listener, error) {
	local := s.bindAddr()
	port := m.ports.listenSingle
	if s.Multihop {
		port = m.ports.listenMulti
	}
	k := listenKey{local: local, port: port, device: s.Interface}
	if l := m.listeners[k]; l != nil {
		l.users++
		return l, nil
	}
	conn, err := listen(ctx, k)
	if err != nil {
		return nil, err
	}
	l := &listener{key: k, multihop: s.Multihop, conn: conn, users: 1}
	m.listeners[k] = l
	go read(l, func(in inbound) bool {
		select {
		case m.rx <- in:
		case <-ctx.Done():
			return false
		}
		return true
	})
	return l, nil
}

// bindAddr is the address the session's sockets bind to: its local
// address, or the family's wildcard.
func (s *session) bindAddr() netip.Addr {
	switch {
	case s.Local.IsValid():
		return s.Local
	case s.Peer.Is4():
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

func (m *Manager) release(l *listener) {
	if l == nil {
		return
	}
	if l.users--; l.users == 0 {
		delete(m.listeners, l.key)
		_ = l.conn.Close()
	}
}

func (m *Manager) remove(now time.Time, s *session) {
	k := s.Key()
	s.m.adminDown(now)
	// One AdminDown packet, best effort: if it is lost the peer times
	// out instead.
	m.send(s)
	if s.tx != nil {
		_ = s.tx.Close()
	}
	m.release(s.l)
	delete(m.sessions, k)
	delete(m.byDisc, s.m.localDisc)
	m.mu.Lock()
	delete(m.states, k)
	m.mu.Unlock()
	m.metric(s.Peer)
	m.log.Info("BFD session removed", "session", k.String())
}

func (m *Manager) closeAll() {
	for _, s := range m.sessions {
		if s.tx != nil {
			_ = s.tx.Close()
			s.tx = nil
		}
	}
	for k, l := range m.listeners {
		_ = l.conn.Close()
		delete(m.listeners, k)
	}
}

func (m *Manager) send(s *session) {
	if s.tx == nil {
		return
	}
	port := m.ports.peerSingle
	if s.Multihop {
		port = m.ports.peerMulti
	}
	peer := s.Peer
	if peer.Is6() && peer.IsLinkLocalUnicast() && peer.Zone() == "" {
		peer = peer.WithZone(s.Interface)
	}
	b := s.m.packet().Append(make([]byte, 0, headerLen))
	if _, err := s.tx.WriteToUDPAddrPort(b, netip.AddrPortFrom(peer, port)); err != nil {
		m.log.Debug("BFD: send failed", "session", s.Key().String(), "error", err)
	}
}

// receive finds the session a packet is for (RFC 5880 §6.3: by Your
// Discriminator, or by addresses while the peer does not know ours yet)
// and checks the TTL before the state machine sees it.
func (m *Manager) receive(now time.Time, in inbound) {
	p, err := Parse(in.data)
	if err != nil {
		m.log.Debug("BFD: packet dropped", "from", in.src, "error", err)
		return
	}
	var s *session
	if p.YourDiscriminator != 0 {
		s = m.byDisc[p.YourDiscriminator]
	} else {
		for _, c := range m.sessions {
			if c.l == in.l && c.Peer.WithZone("") == in.src.WithZone("") && (!c.Local.IsValid() || c.Local == in.dst) {
				s = c
				break
			}
		}
	}
	if s == nil || s.l != in.l || s.Peer.WithZone("") != in.src.WithZone("") || (s.Local.IsValid() && in.dst.IsValid() && s.Local != in.dst) {
		m.log.Debug("BFD: packet for no session", "from", in.src, "to", in.dst, "your-discriminator", p.YourDiscriminator)
		return
	}
	least := maxTTL
	if s.Multihop {
		least = int(s.Profile.MinimumTTL)
	}
	if in.ttl < least {
		m.log.Debug("BFD: packet dropped for its TTL", "session", s.Key().String(), "ttl", in.ttl, "least", least)
		return
	}
	if !s.m.receive(now, p) {
		return
	}
	m.changed(s)
}

// changed publishes the session's state and reports a change of Up.
func (m *Manager) changed(s *session) {
	m.setState(s)
	up := s.m.state == Up
	if up == s.up {
		return
	}
	s.up = up
	m.log.Info("BFD session "+map[bool]string{true: "up", false: "down"}[up],
		"session", s.Key().String(), "diag", s.m.diag.String())
	m.metric(s.Peer)
	if m.onChange != nil {
		diag := s.m.diag
		switch {
		case up:
			diag = DiagNone
		case s.m.remoteState == AdminDown:
			diag = DiagAdminDown
		}
		m.onChange(s.Key(), up, diag)
	}
}

func (m *Manager) setState(s *session) {
	m.mu.Lock()
	m.states[s.Key()] = s.m.state
	m.mu.Unlock()
}

func (m *Manager) metric(peer netip.Addr) {
	if m.up == nil {
		return
	}
	n, up := 0, 1.0
	for _, s := range m.sessions {
		if s.Peer == peer {
			n++
			if !s.up {
				up = 0
			}
		}
	}
	if n == 0 {
		m.up.DeleteLabelValues(peer.String())
		return
	}
	m.up.WithLabelValues(peer.String()).Set(up)
}
