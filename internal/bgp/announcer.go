package bgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrStopped is returned by SetPeers and SetPaths once Run has returned.
var ErrStopped = errors.New("bgp announcer stopped")

// Peer is one BGP neighbour (a BGPPeer object as it applies to this node).
type Peer struct {
	Name            string // BGPPeer object name (unique key)
	MyASN, PeerASN  uint32
	Address         netip.Addr
	Port            uint16     // 0 = 179
	SourceAddress   netip.Addr // optional (zero = kernel chooses)
	HoldTime        time.Duration
	KeepaliveTime   time.Duration // zero = HoldTime/3
	ConnectTime     time.Duration // zero = GoBGP default: first dial after 1-2 s, then retries every 120-240 s
	EBGPMultiHop    bool
	Password        string // TCP-MD5; "" = none
	GracefulRestart bool
	// RouterID, if set, asks for this BGP identifier instead of
	// Config.RouterID. One GoBGP server has one identifier: it is taken
	// when BGP starts, only if every peer that sets one agrees.
	RouterID netip.Addr
}

// Path is one prefix to announce.
type Path struct {
	Prefix           netip.Prefix // /32, /128, or an aggregate
	Communities      []string     // "N:N" or well-known names (see ParseCommunity)
	LargeCommunities []string     // "N:N:N"
	LocalPref        *uint32      // sent to iBGP peers only
	Peers            []string     // advertise only to these peer names; empty = all peers
}

// SessionState is the state of the session with one peer.
type SessionState struct {
	Up         bool
	State      string    // GoBGP FSM state name: IDLE, CONNECT, ACTIVE, OPENSENT, OPENCONFIRM, ESTABLISHED
	Since      time.Time // last Up/down transition (or when the peer was added)
	Advertised int       // prefixes advertised to the peer (0 while down)
}

// Config configures an Announcer.
type Config struct {
	// RouterID is the BGP identifier (IPv4), normally the node's InternalIP.
	RouterID netip.Addr
	// NextHopV4 and NextHopV6 are this node's addresses, the next hops of
	// IPv4 and IPv6 paths. A zero NextHopV4 lets GoBGP use each session's
	// local address (wrong on IPv6 sessions: set it when any peer is IPv6);
	// a zero NextHopV6 means IPv6 paths are not announced (logged once).
	NextHopV4, NextHopV6 netip.Addr
	// Log receives herald's and GoBGP's messages; nil discards them.
	Log *slog.Logger
	// Registry receives the herald_bgp_* metrics; nil = no metrics.
	Registry prometheus.Registerer
	// OnSessionChange is called when a session becomes Established (up)
	// or stops being Established (down, including when its peer is removed
	// and when Run ends). It must not block for long and must not call back
	// into the Announcer's Set methods synchronously.
	OnSessionChange func(peer string, up bool)
}

// Announcer announces paths to BGP peers through one embedded GoBGP server.
// Its methods are safe for concurrent use.
type Announcer struct {
	cfg         Config
	log         *slog.Logger
	srv         *server.BgpServer
	watchCancel context.CancelFunc

	// mu serialises SetPeers, SetPaths and shutdown; it guards the fields
	// below it.
	mu       sync.Mutex
	running  bool
	started  bool // StartBgp done
	stopped  bool // Run returned
	peers    map[string]Peer
	desired  map[netip.Prefix]*route
	applied  map[netip.Prefix]*route              // in GoBGP's RIB
	denied   map[string]map[netip.Prefix]struct{} // per peer: prefixes in its deny sets
	v6Warned bool
	// routerIDInUse is the identifier BGP started with.
	routerIDInUse netip.Addr

	// stateMu guards the session view shared with the watch goroutine.
	stateMu    sync.Mutex
	byAddr     map[netip.Addr]string
	sessions   map[string]*SessionState
	advertised map[string]int
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
		peers:      map[string]Peer{},
		desired:    map[netip.Prefix]*route{},
		applied:    map[netip.Prefix]*route{},
		denied:     map[string]map[netip.Prefix]struct{}{},
		byAddr:     map[netip.Addr]string{},
		sessions:   map[string]*SessionState{},
		advertised: map[string]int{},
	}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(&collector{a: a}); err != nil {
			return nil, fmt.Errorf("registering BGP metrics: %w", err)
		}
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

	<-ctx.Done()

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
	state := st.GetSessionState()
	up := state == api.PeerState_ESTABLISHED

	a.stateMu.Lock()
	name, ok := a.byAddr[addr.Unmap()]
	s := a.sessions[name]
	if !ok || s == nil {
		a.stateMu.Unlock()
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

// SetPeers makes the configured peers exactly peers: new ones are added,
// changed ones updated in place and removed ones deleted; the sessions of
// unchanged peers are not touched. Invalid peers (and the later of two peers
// with the same address) are skipped and reported in the returned error;
// the others are applied.
//
// GoBGP resets a session (Cease, then reconnects) when its ASNs, password,
// source address, port, graceful-restart setting or address families
// change; timers and eBGP multihop change in place and the new hold time
// takes effect at the next session. A changed Address is a new neighbour
// (the old session is deleted, a new one added).
func (a *Announcer) SetPeers(ctx context.Context, peers []Peer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	want, errs := validatePeers(peers)

	if !a.started {
		if len(want) == 0 {
			return errors.Join(errs...)
		}
		first := want[slices.Sorted(maps.Keys(want))[0]]
		rid, err := a.routerID(want)
		if err != nil {
			errs = append(errs, err)
		}
		if err := a.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
			Asn:      first.MyASN,
			RouterId: rid.String(),
			// Dial out only: never bind 179 (SPEC §1).
			ListenPort: -1,
		}}); err != nil {
			return errors.Join(append(errs, fmt.Errorf("starting BGP: %w", err))...)
		}
		a.started, a.routerIDInUse = true, rid
		a.log.Info("BGP started", "routerID", rid, "asn", first.MyASN)
	} else if rid, err := a.routerID(want); err != nil {
		errs = append(errs, err)
	} else if rid != a.routerIDInUse {
		errs = append(errs, fmt.Errorf("router ID %s takes effect when the speaker restarts: the running BGP server keeps %s", rid, a.routerIDInUse))
	}

	for _, name := range slices.Sorted(maps.Keys(a.peers)) {
		old := a.peers[name]
		if p, ok := want[name]; !ok || p.Address != old.Address {
			if err := a.removePeer(ctx, old); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		p := want[name]
		old, ok := a.peers[name]
		switch {
		case !ok:
			if err := a.addPeer(ctx, p); err != nil {
				errs = append(errs, err)
			}
		case old != p:
			if _, err := a.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: apiPeer(p)}); err != nil {
				errs = append(errs, fmt.Errorf("updating BGP peer %s: %w", name, err))
				continue
			}
			a.peers[name] = p
			a.log.Info("BGP peer updated", "peer", name)
		}
	}
	if err := a.applyPaths(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SetPaths makes the announced paths exactly paths: new and changed ones are
// announced, dropped ones withdrawn; an unchanged set sends nothing. Paths
// for the same prefix are merged (union of communities and peers, highest
// local-pref). Invalid paths are skipped and reported in the returned error;
// the others are applied. Before the first peer exists the set is only
// remembered.
//
// Changing a path's Peers so that a configured peer loses it withdraws the
// prefix from every peer and announces it again to the remaining ones (GoBGP
// cannot withdraw a prefix from one neighbour only); a peer that gains a
// prefix gets a soft reset out (its routes are re-sent, the session stays).
// Pools rarely change their peers, so neither matters in steady state.
func (a *Announcer) SetPaths(ctx context.Context, paths []Path) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	desired := make(map[netip.Prefix]*route, len(paths))
	var errs []error
	skippedV6 := 0
	for _, p := range paths {
		r, err := newRoute(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.prefix.Addr().Is6() && !a.cfg.NextHopV6.IsValid() {
			skippedV6++
			continue
		}
		if prev, ok := desired[r.prefix]; ok {
			prev.merge(r)
			continue
		}
		desired[r.prefix] = r
	}
	if skippedV6 > 0 && !a.v6Warned {
		a.v6Warned = true
		a.log.Warn("this node has no IPv6 next hop: IPv6 paths are not announced over BGP", "skipped", skippedV6)
	}
	for pfx, r := range desired {
		nh := a.cfg.NextHopV4
		if pfx.Addr().Is6() {
			nh = a.cfg.NextHopV6
		}
		// Reuse the encoded path of an identical applied route.
		if old, ok := a.applied[pfx]; ok && old.sameAttrs(r) {
			r.api = old.api
			continue
		}
		ap, err := buildAPIPath(r, nh)
		if err != nil {
			errs = append(errs, fmt.Errorf("prefix %s: encoding: %w", pfx, err))
			delete(desired, pfx)
			continue
		}
		r.api = ap
	}
	a.desired = desired
	if a.started {
		if err := a.applyPaths(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// applyPaths brings GoBGP's RIB and the per-peer deny sets from applied to
// desired, in three phases so that no peer ever receives a prefix it must
// not have:
//  1. withdraw removed prefixes, and those whose peers shrank;
//  2. update each peer's deny sets;
//  3. announce new and changed prefixes (GoBGP applies the export policy as
//     it sends them), and soft-reset-out peers that gained a prefix.
func (a *Announcer) applyPaths(ctx context.Context) error {
	var errs []error
	var withdraw []*route
	for _, pfx := range slices.SortedFunc(maps.Keys(a.applied), netip.Prefix.Compare) {
		old := a.applied[pfx]
		if r, ok := a.desired[pfx]; ok && (old.samePeers(r) || !a.losesPeer(old, r)) {
			continue
		}
		withdraw = append(withdraw, old)
	}
	stuck := map[netip.Prefix]bool{} // withdrawal failed: do not re-announce
	for i, err := range forEach(withdraw, func(r *route) error {
		return a.srv.DeletePath(ctx, &api.DeletePathRequest{Family: r.api.Family, Path: r.api})
	}) {
		pfx := withdraw[i].prefix
		if err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %s: %w", pfx, err))
			stuck[pfx] = true
			continue
		}
		delete(a.applied, pfx)
	}

	if err := a.syncDenySets(ctx); err != nil {
		errs = append(errs, err)
	}

	var announce []*route
	gained := map[string]bool{}
	for _, pfx := range slices.SortedFunc(maps.Keys(a.desired), netip.Prefix.Compare) {
		r := a.desired[pfx]
		if stuck[pfx] {
			continue
		}
		old, ok := a.applied[pfx]
		if ok && old.sameAttrs(r) && old.samePeers(r) {
			continue
		}
		if ok {
			for name := range a.peers {
				if !old.allows(name) && r.allows(name) {
					gained[name] = true
				}
			}
		}
		announce = append(announce, r)
	}
	for i, err := range forEach(announce, func(r *route) error {
		_, err := a.srv.AddPath(ctx, &api.AddPathRequest{Path: r.api})
		return err
	}) {
		r := announce[i]
		if err != nil {
			errs = append(errs, fmt.Errorf("announcing %s: %w", r.prefix, err))
			continue
		}
		a.applied[r.prefix] = r
	}
	// GoBGP does not re-send a path whose attributes did not change, so a
	// peer newly allowed to receive a prefix it did not have gets its
	// routes again by a soft reset out (no session reset; duplicates of
	// what it already has are no-ops for the router).
	for _, name := range slices.Sorted(maps.Keys(gained)) {
		if err := a.srv.ResetPeer(ctx, &api.ResetPeerRequest{
			Address: a.peers[name].Address.String(), Soft: true, Direction: api.ResetPeerRequest_OUT,
		}); err != nil {
			errs = append(errs, fmt.Errorf("re-sending routes to BGP peer %s: %w", name, err))
		}
	}
	a.recount()
	return errors.Join(errs...)
}

// forEach calls fn for every route, in order, and returns the errors by
// index. (Several concurrent callers were measured: GoBGP runs the
// operations one by one in its event loop and nothing was gained.)
func forEach(rs []*route, fn func(*route) error) []error {
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = fn(r)
	}
	return errs
}

// losesPeer reports whether a configured peer that old was allowed to
// reach is not allowed by r.
func (a *Announcer) losesPeer(old, r *route) bool {
	for name := range a.peers {
		if old.allows(name) && !r.allows(name) {
			return true
		}
	}
	return false
}

// recount refreshes the per-peer advertised counts.
func (a *Announcer) recount() {
	counts := make(map[string]int, len(a.peers))
	for name := range a.peers {
		n := 0
		for _, r := range a.applied {
			if r.allows(name) {
				n++
			}
		}
		counts[name] = n
	}
	a.stateMu.Lock()
	a.advertised = counts
	a.stateMu.Unlock()
}

// routerID is the identifier the peers ask for: the one every peer that
// sets RouterID agrees on, else Config.RouterID (with an error naming the
// disagreement).
func (a *Announcer) routerID(peers map[string]Peer) (netip.Addr, error) {
	asked := map[netip.Addr][]string{}
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		if rid := peers[name].RouterID; rid.IsValid() {
			asked[rid] = append(asked[rid], name)
		}
	}
	switch len(asked) {
	case 0:
		return a.cfg.RouterID, nil
	case 1:
		for rid := range asked {
			return rid, nil
		}
	}
	var parts []string
	for _, rid := range slices.SortedFunc(maps.Keys(asked), netip.Addr.Compare) {
		parts = append(parts, fmt.Sprintf("%s (%s)", rid, strings.Join(asked[rid], ", ")))
	}
	return a.cfg.RouterID, fmt.Errorf("peers disagree on the router ID: %s; using %s", strings.Join(parts, " vs "), a.cfg.RouterID)
}
