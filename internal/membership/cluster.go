package membership

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/utils/clock"

	"github.com/heraldlb/herald/internal/memberkey"
)

// ErrShutdown is returned by methods called after Shutdown or Leave.
var ErrShutdown = errors.New("memberlist cluster is shut down")

// Config configures a Cluster. Zero timing fields take the defaults of
// DefaultTiming.
type Config struct {
	// NodeName is this node's name, the memberlist member name.
	NodeName string
	// BindAddr is the node's InternalIP; memberlist binds and advertises it.
	BindAddr netip.Addr
	// Port is the TCP and UDP port: 0 means DefaultPort, a negative value
	// lets the kernel pick a free one (tests; see LocalAddr).
	Port int
	// Keys are 16-, 24- or 32-byte AES keys authenticating and decrypting
	// memberlist traffic; the first encrypts what this member sends. None
	// disables encryption (labs only). SetKeys changes them while running.
	Keys [][]byte

	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
	GossipInterval              time.Duration
	// RejoinInterval is how often known peers that are not live members are
	// joined again (heals partitions); 0 means DefaultRejoinInterval.
	RejoinInterval time.Duration

	// Log receives herald's and memberlist's messages; nil discards them.
	Log *slog.Logger
	// Clock paces the rejoin loop; nil is the real clock. memberlist's own
	// probes always run on real time.
	Clock clock.WithTicker

	// wrapTransport, when set (tests only), wraps memberlist's UDP/TCP
	// transport, for example to simulate a network partition.
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// Member is a live memberlist member (alive or suspect).
type Member struct {
	Name    string
	Addr    netip.Addr
	Healthy bool
	// Holding is what the member published with SetState.
	Holding bool
	// Interfaces are the interfaces it published as unusable with
	// SetInterfaces.
	Interfaces Interfaces
}

// member is a Member and the address and port it advertises.
type member struct {
	Member
	addr    netip.AddrPort
	keyring Keyring
}

// Cluster is this speaker's membership in the memberlist cluster of all
// speakers.
type Cluster struct {
	ml   *memberlist.Memberlist
	log  *slog.Logger
	self netip.AddrPort
	cfg  Config

	// state is what this node publishes, replaced whole so that the
	// metadata memberlist reads at any moment (key changes publish too)
	// never mixes two updates.
	state   atomic.Pointer[selfState]
	changed chan struct{}

	// members mirrors memberlist's live members, maintained by events.
	membersMu sync.Mutex
	members   map[string]member

	peersMu  sync.Mutex
	peers    []netip.AddrPort
	answered map[netip.AddrPort]time.Time // see answeredBackoffRounds
	kick     chan struct{}

	// mu serializes SetHealthy, SetState, Leave and Shutdown: memberlist panics on a
	// Leave after Shutdown.
	mu       sync.Mutex
	stopped  bool // Leave or Shutdown called
	shutdown bool
	cancel   context.CancelFunc
	loopDone chan struct{}

	// keyring is memberlist's (nil without encryption); keysLoop moves it
	// towards wantKeys (keyring.go).
	keyring  *memberlist.Keyring
	keysKick chan struct{}
	keysDone chan struct{}
	keysMu   sync.Mutex
	wantKeys [][]byte
	keyBytes map[string][]byte // fingerprint -> key, of every key ever given
}

// Start creates this node's memberlist member and starts re-joining peers
// given to SetPeers. The node joins as unhealthy: call SetHealthy(true) once
// it can announce, so that it takes no address before it can answer for it.
//
// ctx bounds the rejoin loop only. memberlist keeps running (and answering
// probes) until Leave and Shutdown, so that a speaker whose ctx is cancelled
// by SIGTERM can still leave gracefully; always call Shutdown.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("starting memberlist: node name is empty")
	}
	if !cfg.BindAddr.IsValid() {
		return nil, errors.New("starting memberlist: bind address is not set")
	}
	for _, k := range cfg.Keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("starting memberlist: a key is %d bytes, want 16, 24 or 32", n)
		}
	}
	pi, pt, sm, gi := DefaultTiming()
	cfg.ProbeInterval = cmp.Or(cfg.ProbeInterval, pi)
	cfg.ProbeTimeout = cmp.Or(cfg.ProbeTimeout, pt)
	cfg.SuspicionMult = cmp.Or(cfg.SuspicionMult, sm)
	cfg.GossipInterval = cmp.Or(cfg.GossipInterval, gi)
	cfg.RejoinInterval = cmp.Or(cfg.RejoinInterval, DefaultRejoinInterval)
	if cfg.ProbeTimeout >= cfg.ProbeInterval {
		return nil, fmt.Errorf("starting memberlist: probe timeout %v must be shorter than probe interval %v", cfg.ProbeTimeout, cfg.ProbeInterval)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	cfg.BindAddr = cfg.BindAddr.Unmap().WithZone("")
	port := cfg.Port
	switch {
	case port == 0:
		port = DefaultPort
	case port < 0:
		port = 0 // memberlist: let the kernel choose
	case port > 65535:
		return nil, fmt.Errorf("starting memberlist: port %d out of range", port)
	}

	c := &Cluster{
		log:      cfg.Log,
		cfg:      cfg,
		changed:  make(chan struct{}, 1),
		members:  map[string]member{},
		answered: map[netip.AddrPort]time.Time{},
		kick:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
		keysKick: make(chan struct{}, 1),
		keysDone: make(chan struct{}),
		keyBytes: map[string][]byte{},
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr.String()
	mc.BindPort = port
	mc.AdvertiseAddr = cfg.BindAddr.String()
	mc.AdvertisePort = port
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval = cfg.GossipInterval
	mc.TCPTimeout = tcpTimeout
	mc.PushPullInterval = pushPullInterval
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	// memberlist compresses every message with LZW by default, and a new
	// LZW writer allocates and clears its tables each time: a large CPU
	// cost for packets of a few hundred bytes on a LAN. Only the push/pull
	// state (≈15 kB at 250 members, every 40 s) is worth compressing, and
	// that is within the traffic budget uncompressed.
	mc.EnableCompression = false
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("starting memberlist: %w", err)
		}
		c.keyring, mc.Keyring = kr, kr
		for _, k := range cfg.Keys {
			c.keyBytes[memberkey.Fingerprint(k)] = k
		}
		c.wantKeys = cfg.Keys
	}
	mc.Delegate = delegate{c}
	mc.Events = events{c}
	mc.Logger = log.New(&logWriter{log: cfg.Log.With("lib", "memberlist")}, "", 0)
	tr, err := newTransport(cfg.BindAddr, port, cfg.Log.With("lib", "memberlist"))
	if err != nil {
		return nil, fmt.Errorf("starting memberlist: %w", err)
	}
	mc.BindPort, mc.AdvertisePort = tr.port, tr.port
	mc.Transport = tr
	if cfg.wrapTransport != nil {
		mc.Transport = cfg.wrapTransport(tr)
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("starting memberlist on %s: %w", net.JoinHostPort(mc.BindAddr, strconv.Itoa(port)), err)
	}
	c.ml = ml
	c.self = netip.AddrPortFrom(cfg.BindAddr, ml.LocalNode().Port)

	loopCtx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	go c.rejoinLoop(loopCtx)
	go c.keysLoop(loopCtx)
	c.log.Info("memberlist started", "name", cfg.NodeName, "addr", c.self.String(), "encrypted", c.keyring != nil,
		"keys", c.Keyring().Keys, "primaryKey", c.Keyring().Primary,
		"probeInterval", cfg.ProbeInterval, "probeTimeout", cfg.ProbeTimeout,
		"suspicionMult", cfg.SuspicionMult, "gossipInterval", cfg.GossipInterval)
	return c, nil
}

// LocalAddr is the address and port this member binds and advertises.
func (c *Cluster) LocalAddr() netip.AddrPort { return c.self }

// SetPeers replaces the known peer addresses (from the Node objects'
// InternalIPs and the memberlist port). Addresses that are not live members
// are joined at once and again every RejoinInterval until they are. This
// node's own address and addresses of the other IP family than BindAddr
// (unreachable from its socket) are ignored. Give each node's memberlist
// address only.
func (c *Cluster) SetPeers(addrs []netip.AddrPort) {
	peers := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
		if !a.IsValid() || a == c.self || a.Addr().Is4() != c.self.Addr().Is4() {
			continue
		}
		peers = append(peers, a)
	}
	slices.SortFunc(peers, netip.AddrPort.Compare)
	peers = slices.Compact(peers)

	c.peersMu.Lock()
	c.peers = peers
	for a := range c.answered {
		if _, found := slices.BinarySearchFunc(peers, a, netip.AddrPort.Compare); !found {
			delete(c.answered, a)
		}
	}
	c.peersMu.Unlock()

	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Members returns the live members (alive or suspect, as memberlist counts
// them), this node included, sorted by name, in a new slice. A suspect
// member still counts: it is either dead and about to be dropped, or alive
// and about to refute, and moving its addresses on suspicion would make
// every false suspicion a failover.
func (c *Cluster) Members() []Member {
	c.membersMu.Lock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m.Member)
	}
	c.membersMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Changed is signalled (coalesced: at most one pending signal) whenever a
// member joins, leaves or dies, or changes its metadata, this node's
// included. Receivers then read Members.
func (c *Cluster) Changed() <-chan struct{} { return c.changed }

// SetHealthy publishes this node's health in its memberlist metadata. Other
// members count it as a candidate only while it is healthy. It waits until
// the update has been gossiped (bounded by ctx's deadline, else one second);
// an error means the update is queued but not yet known to be sent.
func (c *Cluster) SetHealthy(ctx context.Context, healthy bool) error {
	return c.publish(ctx, func(st *selfState) { st.healthy = healthy })
}

// SetState publishes health and whether this node holds an address whose
// owner stays until it fails (the control-plane VIP), in one update, so
// that no member sees a node that gave up the address as still healthy
// and holding it, or the reverse. Holding keeps the others from taking the
// address back when a node that ranks higher comes back. Like SetHealthy,
// it waits until the update has been gossiped.
func (c *Cluster) SetState(ctx context.Context, healthy, holding bool) error {
	return c.publish(ctx, func(st *selfState) { st.healthy, st.holding = healthy, holding })
}

// SetHealth publishes this node's health and the interfaces, among those
// layer-2 pools name, it cannot answer on, in one update: a node whose
// second interface fails stays a candidate for every other pool. Like
// SetHealthy, it waits until the update has been gossiped.
func (c *Cluster) SetHealth(ctx context.Context, healthy bool, down Interfaces) error {
	down.Down = slices.Sorted(slices.Values(down.Down))
	if down.Unlisted {
		down.Down = nil
	}
	return c.publish(ctx, func(st *selfState) { st.healthy, st.down = healthy, down })
}

// selfState is what this node publishes about itself.
type selfState struct {
	healthy, holding bool
	down             Interfaces
}

// published is this node's published state.
func (c *Cluster) published() selfState {
	if st := c.state.Load(); st != nil {
		return *st
	}
	return selfState{}
}

// publish applies set to this node's metadata and gossips the result if
// it changed.
func (c *Cluster) publish(ctx context.Context, set func(*selfState)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrShutdown
	}
	was := c.published()
	next := was
	set(&next)
	if next.healthy == was.healthy && next.holding == was.holding && next.down.Equal(was.down) {
		return nil
	}
	c.state.Store(&next)
	timeout := defaultUpdateTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	if err := c.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("publishing health %t, holding %t, interfaces down %v (unlisted %t): %w", next.healthy, next.holding, next.down.Down, next.down.Unlisted, err)
	}
	c.log.Info("published health", "healthy", next.healthy, "holding", next.holding, "interfacesDown", next.down.Down, "interfacesUnlisted", next.down.Unlisted)
	return nil
}

// Leave tells the other members that this node is leaving, waiting up to
// timeout for the message to be gossiped, so they elect new owners for its
// addresses while it still answers for them. It stops re-joining peers.
// Call Shutdown afterwards.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdown {
		return ErrShutdown
	}
	c.stopped = true
	c.stopLoop()
	if err := c.ml.Leave(timeout); err != nil {
		return fmt.Errorf("leaving memberlist: %w", err)
	}
	c.log.Info("left memberlist")
	return nil
}

// Shutdown stops this member without telling the others (they detect it as
// failed). Call Leave first for a graceful stop. It is safe to call more
// than once.
func (c *Cluster) Shutdown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdown {
		return nil
	}
	c.stopped, c.shutdown = true, true
	c.stopLoop()
	if err := c.ml.Shutdown(); err != nil {
		return fmt.Errorf("shutting down memberlist: %w", err)
	}
	return nil
}

// stopLoop stops the rejoin loop and waits for it (at most one join
// attempt, tcpTimeout).
func (c *Cluster) stopLoop() {
	c.cancel()
	<-c.loopDone
	<-c.keysDone
}

func (c *Cluster) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *Cluster) setMember(n *memberlist.Node) {
	addr, _ := netip.AddrFromSlice(n.Addr)
	addr = addr.Unmap()
	c.membersMu.Lock()
	meta := decodeMeta(n.Meta)
	c.members[n.Name] = member{
		Member:  Member{Name: n.Name, Addr: addr, Healthy: meta.healthy, Holding: meta.holding, Interfaces: meta.down},
		addr:    netip.AddrPortFrom(addr, n.Port),
		keyring: meta.keyring,
	}
	c.membersMu.Unlock()
	c.signal()
	c.kickKeys()
}

func (c *Cluster) dropMember(name string) {
	c.membersMu.Lock()
	delete(c.members, name)
	c.membersMu.Unlock()
	c.signal()
	c.kickKeys()
}
