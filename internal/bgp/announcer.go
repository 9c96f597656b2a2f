package bgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldlb/herald/internal/bfd"
	"github.com/heraldlb/herald/internal/bgpplan"
)

// ErrStopped is returned by SetPeers and SetPaths once Run has returned.
var ErrStopped = errors.New("bgp announcer stopped")

// Peer and Path are the announcer's inputs; bgpplan defines and validates
// them, so that the speaker can build them without GoBGP.
type (
	Peer           = bgpplan.Peer
	Path           = bgpplan.Path
	LargeCommunity = bgpplan.LargeCommunity
)

// SessionState is the state of the session with one peer.
type SessionState struct {
	Up         bool
	State      string    // GoBGP FSM state name: IDLE, CONNECT, ACTIVE, OPENSENT, OPENCONFIRM, ESTABLISHED
	Since      time.Time // last Up/down transition (or when the peer was added)
	Advertised int       // prefixes advertised to the peer (0 while down)
	// Reason says why the peer has no GoBGP neighbour yet: an interface
	// peer whose router is not found on its interface. "" otherwise.
	Reason string
	// Refused says why a dynamicASN peer's router was refused (its AS is
	// of the wrong kind); the session stays shut until the peer changes.
	Refused string
}

// Config configures an Announcer.
type Config struct {
	// RouterID is the BGP identifier (IPv4), normally the node's InternalIP,
	// used unless SetPeers asks for another.
	RouterID netip.Addr
	// NextHopV4 and NextHopV6 are this node's addresses, the next hops of
	// IPv4 and IPv6 paths. A zero NextHopV4 lets GoBGP use each session's
	// local address (wrong on IPv6 sessions: set it when any peer is IPv6);
	// a zero NextHopV6 means IPv6 paths are not announced (logged once).
	NextHopV4, NextHopV6 netip.Addr
	// NoIPv4: the node has no IPv4 address (an IPv6-only node), so IPv4
	// paths are not announced (logged once): GoBGP would give them the
	// session's IPv6 address as next hop.
	NoIPv4 bool
	// InterfaceRetry is how often the routers of interface peers not
	// found yet are looked for, and those found checked; zero = 5s.
	InterfaceRetry time.Duration
	// Log receives herald's and GoBGP's messages; nil discards them.
	Log *slog.Logger
	// Registry receives the herald_bgp_* metrics; nil = no metrics.
	Registry prometheus.Registerer
	// OnSessionChange is called when a session becomes Established (up)
	// or stops being Established (down, including when its peer is removed
	// and when Run ends). It must not block for long and must not call back
	// into the Announcer's Set methods synchronously.
	OnSessionChange func(peer string, up bool)
	// OnPeerRefused is called when a dynamicASN peer's router turns out
	// to be of the wrong kind (internal vs external): the session is shut
	// and no route was sent. Same rules as OnSessionChange.
	OnPeerRefused func(peer, reason string)
}

// Announcer announces paths to BGP peers through one embedded GoBGP server.
// Its methods are safe for concurrent use.
type Announcer struct {
	cfg         Config
	log         *slog.Logger
	srv         *server.BgpServer
	watchCancel context.CancelFunc
	// bfd runs the BFD sessions of the peers that ask for one (bfd.go).
	bfd *bfd.Manager

	// mu serialises SetPeers, SetPaths and shutdown; it guards the fields
	// below it.
	mu      sync.Mutex
	running bool
	started bool // StartBgp done
	stopped bool // Run returned
	// stopping: Run is stopping, and no BFD session starts any more.
	stopping bool
	// want is what SetPeers was given (validated); peers what GoBGP has,
	// interface peers with their router's zoned link-local address.
	want  map[string]Peer
	peers map[string]Peer
	// pending are the interface peers without a GoBGP neighbour, with why.
	pending map[string]string
	// neighbors lists an interface's link-local neighbours (tests fake it).
	neighbors func(iface string) ([]netip.Addr, error)
	desired   map[netip.Prefix]*bgpplan.Route
	table     *bgpplan.State               // what GoBGP's table and deny sets hold
	encoded   map[netip.Prefix]encodedPath // GoBGP's form of the routes in its table
	v6Warned  bool
	v4Warned  bool
	// routerIDInUse is the identifier BGP started with.
	routerIDInUse netip.Addr
	// gateOpen holds the dynamicASN peers whose gate is open (their
	// router's AS checked); refused those shut for the wrong kind of AS.
	gateOpen map[string]bool
	refused  map[string]string

	// stateMu guards the session view shared with the watch goroutine.
	stateMu    sync.Mutex
	byAddr     map[netip.Addr]string
	sessions   map[string]*SessionState
	advertised map[string]int
	dynamic    map[string]bool // dynamicASN peers, whose events onGateEvent handles
}

// New creates the GoBGP server and starts its event loop. BGP itself starts
// with the first SetPeers that names a peer. GoBGP v3's event loop cannot be
// stopped, so one goroutine stays behind for the life of the process: make
// one Announcer per process, not one per reconfiguration.
func New(cfg Config) (*Announcer, error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("router ID %v: must be an IPv4 address", cfg.RouterID)
	}
	if cfg.NextHopV4.IsValid() && !cfg.NextHopV4.Unmap().Is4() {
		return nil, fmt.Errorf("IPv4 next hop %v: not an IPv4 address", cfg.NextHopV4)
	}
	cfg.NextHopV4 = cfg.NextHopV4.Unmap()
	if cfg.NextHopV6.IsValid() && (!cfg.NextHopV6.Is6() || cfg.NextHopV6.Is4In6()) {
		return nil, fmt.Errorf("IPv6 next hop %v: not an IPv6 address", cfg.NextHopV6)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &Announcer{
		cfg:        cfg,
		log:        log,
		want:       map[string]Peer{},
		peers:      map[string]Peer{},
		pending:    map[string]string{},
		neighbors:  linkLocalNeighbors,
		desired:    map[netip.Prefix]*bgpplan.Route{},
		table:      bgpplan.NewState(),
		encoded:    map[netip.Prefix]encodedPath{},
		byAddr:     map[netip.Addr]string{},
		sessions:   map[string]*SessionState{},
		advertised: map[string]int{},
		dynamic:    map[string]bool{},
		gateOpen:   map[string]bool{},
		refused:    map[string]string{},
	}
	a.srv = server.NewBgpServer(server.LoggerOption(newSlogAdapter(log.With("lib", "gobgp"))))
	go a.srv.Serve()
	// The watch is registered before any peer exists, so no transition
	// is missed; it lives until Run ends.
	wctx, cancel := context.WithCancel(context.Background())
	a.watchCancel = cancel
	if err := a.srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, a.onEvent); err != nil {
		cancel()
		return nil, fmt.Errorf("watching BGP peer events: %w", err)
	}
	var err error
	if a.bfd, err = bfd.New(bfd.Config{Log: log.With("lib", "bfd"), OnChange: a.bfdChanged, Registerer: cfg.Registry}); err != nil {
		cancel()
		return nil, err
	}
	// Registered last: a failed New leaves no collector behind that
	// would query a server nobody runs.
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(&collector{a: a}); err != nil {
			cancel()
			return nil, fmt.Errorf("registering BGP metrics: %w", err)
		}
	}
	return a, nil
}

// Run serves until ctx ends, then stops BGP: every session is closed with a
// Cease notification, so routers withdraw this node's routes at once.
func (a *Announcer) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running || a.stopped {
		a.mu.Unlock()
		return errors.New("bgp announcer: Run called twice")
	}
	a.running = true
	a.mu.Unlock()

	bfdCtx, bfdCancel := context.WithCancel(context.Background())
	bfdDone := make(chan error, 1)
	go func() { bfdDone <- a.bfd.Run(bfdCtx) }()

	every := a.cfg.InterfaceRetry
	if every <= 0 {
		every = defaultInterfaceRetry
	}
	tick := time.NewTicker(every)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			a.retryInterfaces(ctx)
		}
	}
	tick.Stop()

	// BFD goes AdminDown first: a router must not read the speaker's
	// orderly stop as a path failure (RFC 5882 §3.2); the BGP sessions'
	// Cease below withdraws the routes. stopping keeps a SetPeers of these
	// last moments from starting them again.
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	_ = a.bfd.Set(nil)
	time.Sleep(bfdAdminDownGrace)
	bfdCancel()
	if err := <-bfdDone; err != nil {
		a.log.Warn("BFD stopped", "err", err)
	}

	a.mu.Lock()
	a.stopped = true
	if a.started {
		// StopBgp waits for the sessions to close; it must not depend on
		// the caller's (cancelled) context.
		if err := a.srv.StopBgp(context.Background(), &api.StopBgpRequest{}); err != nil {
			a.log.Warn("stopping BGP", "err", err)
		}
	}
	a.mu.Unlock()
	a.watchCancel()

	a.stateMu.Lock()
	var down []string
	for name, s := range a.sessions {
		if s.Up {
			down = append(down, name)
		}
		s.Up, s.State, s.Since = false, api.PeerState_IDLE.String(), time.Now()
	}
	a.stateMu.Unlock()
	slices.Sort(down)
	for _, name := range down {
		a.notify(name, false)
	}
	return nil
}

// Sessions returns the state of every configured peer's session.
func (a *Announcer) Sessions() map[string]SessionState {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	out := make(map[string]SessionState, len(a.sessions))
	for name, s := range a.sessions {
		st := *s
		if st.Up {
			st.Advertised = a.advertised[name]
		}
		out[name] = st
	}
	return out
}

// SessionReasons says, by peer name, why a session cannot come up: an
// interface peer still waiting for its router, a refused dynamicASN
// router. Peers without a known reason are left out.
func (a *Announcer) SessionReasons() map[string]string {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	out := map[string]string{}
	for name, s := range a.sessions {
		if r := cmp.Or(s.Refused, s.Reason); r != "" {
			out[name] = r
		}
	}
	return out
}

func (a *Announcer) notify(peer string, up bool) {
	if a.cfg.OnSessionChange != nil {
		a.cfg.OnSessionChange(peer, up)
	}
}

// onEvent handles GoBGP peer state changes (called from GoBGP's watch
// goroutine, one event at a time).
func (a *Announcer) onEvent(ev *api.WatchEventResponse) {
	pe := ev.GetPeer()
	if pe == nil || pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	st := pe.GetPeer().GetState()
	addr, err := netip.ParseAddr(st.GetNeighborAddress())
	if err != nil {
		return
	}
	addr = addr.Unmap()
	state := st.GetSessionState()
	up := state == api.PeerState_ESTABLISHED

	a.stateMu.Lock()
	// Events carry an interface peer's address without its zone, as
	// byAddr keeps it.
	name, ok := a.byAddr[addr.Unmap().WithZone("")]
	s := a.sessions[name]
	if !ok || s == nil {
		a.stateMu.Unlock()
		return
	}
	if a.dynamic[name] {
		a.stateMu.Unlock()
		a.onGateEvent(name, addr, state)
		return
	}
	s.State = state.String()
	changed := s.Up != up
	if changed {
		s.Up, s.Since = up, time.Now()
	}
	a.stateMu.Unlock()

	if changed {
		a.log.Info("BGP session changed", "peer", name, "up", up, "state", state.String())
		a.notify(name, up)
	}
}

// setSession records a session's state; it reports whether Up changed.
func (a *Announcer) setSession(name string, state api.PeerState_SessionState, up bool) bool {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	s := a.sessions[name]
	if s == nil {
		return false
	}
	s.State = state.String()
	if s.Up == up {
		return false
	}
	s.Up, s.Since = up, time.Now()
	return true
}

// onGateEvent handles the state changes of a dynamicASN peer: GoBGP
// accepts any AS from such a router and sends it the table as soon as
// the session is Established, so the peer's gate (see addPeer) rejects
// every route until the router's AS is checked here. A session that
// leaves Established closes the gate again before the next one can come
// up: GoBGP waits at least its 5 s idle hold time before redialling after
// a drop, and a reset herald makes itself (bfdDown) closes the gate first.
//
// It runs on GoBGP's watch goroutine, which GoBGP's own loop never waits
// for (events reach it through an unbounded queue), so calling GoBGP
// from here cannot deadlock; a.mu orders the gate work with SetPeers and
// SetPaths, which may be holding it while they call GoBGP.
func (a *Announcer) onGateEvent(name string, addr netip.Addr, state api.PeerState_SessionState) {
	var refused string
	up := false
	defer func() {
		// Called back without the lock, as for static peers.
		if up || state != api.PeerState_ESTABLISHED {
			if a.setSession(name, state, up) {
				a.log.Info("BGP session changed", "peer", name, "up", up, "state", state.String())
				a.notify(name, up)
			}
		}
		if refused != "" && a.cfg.OnPeerRefused != nil {
			a.cfg.OnPeerRefused(name, refused)
		}
	}()
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.peers[name]
	// Events carry an interface peer's link-local address without its
	// zone; GoBGP's own calls want it with the zone (p.Address).
	if !ok || p.Address.WithZone("") != addr || a.stopped {
		return
	}
	ctx := context.Background()
	if state != api.PeerState_ESTABLISHED {
		if err := a.closeGate(ctx, name); err != nil {
			// The session is down; the next Established finds the gate
			// still marked open and closes it before checking.
			a.log.Error("closing the BGP gate of a dynamicASN peer", "peer", name, "err", err)
		}
		return
	}
	if a.refused[name] != "" {
		return
	}
	var asn uint32
	established := false
	if err := a.srv.ListPeer(ctx, &api.ListPeerRequest{Address: p.Address.String()}, func(ap *api.Peer) {
		asn = ap.GetState().GetPeerAsn()
		established = ap.GetState().GetSessionState() == api.PeerState_ESTABLISHED
	}); err != nil {
		a.log.Error("reading the AS of a dynamicASN peer", "peer", name, "err", err)
		return
	}
	if !established {
		return // it went down again: that event follows
	}
	if !p.DynamicASN.Accepts(p.MyASN, asn) {
		kind := "external"
		if asn == p.MyASN {
			kind = "internal"
		}
		refused = fmt.Sprintf("router %s is in AS %d, an %s peer of AS %d, but dynamicASN is %s: session closed, no route sent; it is retried when the BGPPeer changes",
			addr, asn, kind, p.MyASN, p.DynamicASN)
		a.refused[name] = refused
		a.stateMu.Lock()
		if s := a.sessions[name]; s != nil {
			s.Refused = refused
		}
		a.stateMu.Unlock()
		a.log.Error("BGP router refused", "peer", name, "reason", refused)
		if err := a.srv.DisablePeer(ctx, &api.DisablePeerRequest{
			Address: p.Address.String(), Communication: fmt.Sprintf("AS %d is not %s to AS %d", asn, p.DynamicASN, p.MyASN),
		}); err != nil {
			a.log.Error("shutting the session of a refused BGP router", "peer", name, "err", err)
		}
		return
	}
	if a.gateOpen[name] {
		// A close that failed on the way down: close, then open, so that
		// the reset below re-sends everything.
		a.gateOpen[name] = false
	}
	if err := a.setGate(ctx, name, true); err != nil {
		a.log.Error("opening the BGP gate of a dynamicASN peer", "peer", name, "err", err)
		return
	}
	a.gateOpen[name] = true
	// GoBGP sent the table through the closed gate when the session came
	// up: send it again.
	if err := (gobgpTable{a: a, ctx: ctx}).SoftResetOut(name); err != nil {
		a.log.Error("sending routes to a dynamicASN peer", "peer", name, "err", err)
	}
	a.log.Info("BGP router accepted", "peer", name, "asn", asn, "dynamicASN", p.DynamicASN)
	up = true
}

// SetPeers makes the configured peers exactly peers: new ones are added,
// changed ones updated in place and removed ones deleted; the sessions of
// unchanged peers are not touched. Invalid peers (and the later of two peers
// with the same address) are skipped and reported in the returned error;
// the others are applied.
//
// routerID is the BGP identifier to use, the zero Addr for
// Config.RouterID; which one a node's peers ask for is the caller's
// decision (bgpplan.RouterID). One GoBGP server has one identifier, taken
// when BGP starts: a later change is reported, and applies when the
// speaker restarts.
//
// GoBGP resets a session (Cease, then reconnects) when its ASNs, password,
// source address, port, graceful-restart setting or address families
// change; timers and eBGP multihop change in place and the new hold time
// takes effect at the next session. A changed Address is a new neighbour
// (the old session is deleted, a new one added).
func (a *Announcer) SetPeers(ctx context.Context, routerID netip.Addr, peers []Peer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	want, errs := bgpplan.ValidatePeers(peers)
	rid := a.cfg.RouterID
	switch {
	case routerID.Unmap().Is4():
		rid = routerID.Unmap()
	case routerID.IsValid():
		errs = append(errs, fmt.Errorf("router ID %v is not an IPv4 address; using %s", routerID, rid))
	}

	if !a.started {
		if len(want) == 0 {
			return errors.Join(errs...)
		}
		first := want[slices.Sorted(maps.Keys(want))[0]]
		if err := a.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
			Asn:      first.MyASN,
			RouterId: rid.String(),
			// Dial out only: the speaker never binds port 179 and needs
			// no privilege for it.
			ListenPort: -1,
		}}); err != nil {
			return errors.Join(append(errs, fmt.Errorf("starting BGP: %w", err))...)
		}
		a.started, a.routerIDInUse = true, rid
		a.log.Info("BGP started", "routerID", rid, "asn", first.MyASN)
	} else if rid != a.routerIDInUse {
		errs = append(errs, fmt.Errorf("router ID %s takes effect when the speaker restarts: the running BGP server keeps %s", rid, a.routerIDInUse))
	}

	a.want = want
	errs = append(errs, a.syncPeers(ctx)...)
	if err := a.apply(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := a.syncBFD(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// syncPeers makes GoBGP's neighbours those of a.want, the routers of
// interface peers looked up now. An interface peer whose router is not
// found (or whose neighbour GoBGP refuses, such as for an interface without
// a link-local address of its own) is pending, not an error: it is logged
// when its reason changes and retried by Run. a.mu is held.
func (a *Announcer) syncPeers(ctx context.Context) []error {
	var errs []error
	sess, pending := a.sessionPeers()
	for _, name := range slices.Sorted(maps.Keys(a.peers)) {
		old := a.peers[name]
		// The VRF decides the policy's next-hop statement and dynamicASN
		// its gate, made with the neighbour: a change is a new neighbour
		// too. So is an interface peer's router with a new address.
		if p, ok := sess[name]; !ok || p.Address != old.Address || p.VRF != old.VRF || p.DynamicASN != old.DynamicASN {
			if err := a.removePeer(ctx, old); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(sess)) {
		p := sess[name]
		old, ok := a.peers[name]
		switch {
		case !ok:
			if err := a.addPeer(ctx, p); err != nil {
				if p.Interface != "" {
					pending[name] = err.Error()
					continue
				}
				errs = append(errs, err)
			}
		case old != p:
			if _, err := a.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: apiPeer(p)}); err != nil {
				errs = append(errs, fmt.Errorf("updating BGP peer %s: %w", name, err))
				continue
			}
			a.peers[name] = p
			a.log.Info("BGP peer updated", "peer", name)
			if a.refused[name] != "" {
				// The BGPPeer changed: give the router another chance.
				if err := a.srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: p.Address.String()}); err != nil {
					errs = append(errs, fmt.Errorf("re-enabling BGP peer %s: %w", name, err))
					continue
				}
				delete(a.refused, name)
				a.stateMu.Lock()
				if s := a.sessions[name]; s != nil {
					s.Refused = ""
				}
				a.stateMu.Unlock()
			}
		}
	}

	for _, name := range slices.Sorted(maps.Keys(pending)) {
		if reason := pending[name]; a.pending[name] != reason {
			a.log.Warn("BGP peer waits for its router", "peer", name, "interface", a.want[name].Interface, "reason", reason)
		}
	}
	for name := range a.pending {
		if p, ok := a.peers[name]; ok {
			a.log.Info("BGP peer's router found", "peer", name, "interface", p.Interface, "address", p.Address)
		}
	}
	a.pending = pending
	a.stateMu.Lock()
	for name := range a.sessions {
		if _, ok := a.want[name]; !ok {
			delete(a.sessions, name)
		}
	}
	for name, reason := range pending {
		s := a.sessions[name]
		if s == nil {
			s = &SessionState{State: api.PeerState_IDLE.String(), Since: time.Now()}
			a.sessions[name] = s
		}
		s.Reason = reason
	}
	a.stateMu.Unlock()
	return errs
}

// sessionPeers are the peers of a.want that GoBGP can have now, interface
// peers with their router's address, and the interface peers it cannot
// have with why. a.mu is held.
func (a *Announcer) sessionPeers() (map[string]Peer, map[string]string) {
	sess := make(map[string]Peer, len(a.want))
	pending := map[string]string{}
	taken := map[netip.Addr]string{}
	for name, p := range a.want {
		if p.Interface == "" {
			sess[name] = p
			taken[p.Address] = name
		}
	}
	for _, name := range slices.Sorted(maps.Keys(a.want)) {
		p := a.want[name]
		if p.Interface == "" {
			continue
		}
		found, err := a.neighbors(p.Interface)
		if err == nil {
			p.Address, err = pickRouter(p.Interface, found, a.peers[name].Address)
		}
		if err == nil {
			if other := taken[p.Address.WithZone("")]; other != "" {
				err = fmt.Errorf("the router on %s has address %s, as peer %s does: GoBGP's per-peer policy tells neighbours apart by address alone, without the interface", p.Interface, p.Address.WithZone(""), other)
			}
		}
		if err != nil {
			pending[name] = err.Error()
			continue
		}
		taken[p.Address.WithZone("")] = name
		sess[name] = p
	}
	return sess, pending
}

// retryInterfaces looks for the routers of interface peers again: a router
// that boots after the speaker, or is replaced, is peered within
// Config.InterfaceRetry.
func (a *Announcer) retryInterfaces(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped || !a.started || !slices.ContainsFunc(slices.Collect(maps.Values(a.want)), func(p Peer) bool { return p.Interface != "" }) {
		return
	}
	errs := a.syncPeers(ctx)
	if err := a.apply(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := a.syncBFD(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Warn("updating BGP peers for their interfaces' routers", "err", err)
	}
}

// SetPaths makes the announced paths exactly paths: new and changed ones are
// announced, dropped ones withdrawn; an unchanged set sends nothing. Several
// paths for one prefix (one per advertisement of a pool) reach each peer
// that one of them allows, with the communities of exactly those that allow
// it and the highest of their local-prefs (bgpplan.Routes): the table's path
// carries what all its peers share, and a peer that gets more has it added
// by its export policy. Invalid paths are skipped and reported in the
// returned error; the others are applied. Before the first peer exists the
// set is only remembered.
//
// Changing a path's Peers so that a configured peer loses it withdraws the
// prefix from every peer and announces it again to the remaining ones (GoBGP
// cannot withdraw a prefix from one neighbour only); a peer that gains a
// prefix, or whose own attributes of an announced prefix change, gets a soft
// reset out (its routes are re-sent, the session stays).
// Pools rarely change their peers, so neither matters in steady state.
func (a *Announcer) SetPaths(ctx context.Context, paths []Path) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	usable := paths
	if !a.cfg.NextHopV6.IsValid() {
		usable = slices.DeleteFunc(slices.Clone(paths), func(p Path) bool { return p.Prefix.Addr().Unmap().Is6() })
		if n := len(paths) - len(usable); n > 0 && !a.v6Warned {
			a.v6Warned = true
			a.log.Warn("this node has no IPv6 next hop: IPv6 paths are not announced over BGP", "skipped", n)
		}
	}
	if a.cfg.NoIPv4 {
		n := len(usable)
		usable = slices.DeleteFunc(slices.Clone(usable), func(p Path) bool { return !p.Prefix.Addr().Unmap().Is6() })
		if n -= len(usable); n > 0 && !a.v4Warned {
			a.v4Warned = true
			a.log.Warn("this node has no IPv4 address: IPv4 paths are not announced over BGP", "skipped", n)
		}
	}
	desired, errs := bgpplan.Routes(usable)
	a.desired = desired
	if a.started {
		if err := a.apply(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// apply brings GoBGP's table and deny sets to the desired routes, in the
// order bgpplan.State.Apply lays down, and refreshes the per-peer counts.
func (a *Announcer) apply(ctx context.Context) error {
	err := a.table.Apply(a.desired, gobgpTable{a: a, ctx: ctx})
	counts := make(map[string]int, len(a.peers))
	for name, p := range a.peers {
		counts[name] = a.table.Advertised(name)
		if p.Interface != "" {
			counts[name] = advertisedV6(a.table, name)
		}
	}
	a.stateMu.Lock()
	a.advertised = counts
	a.stateMu.Unlock()
	return err
}
