package election

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the memberlist port (TCP and UDP) of SPEC §4, MetalLB's too.
const DefaultPort = 7946

// DefaultRejoinInterval is how often a speaker re-joins known peers that are
// not live members. SPEC §4: after a partition heals exactly one owner must
// remain within 2 s, whatever the partition's length. memberlist marks the
// other side dead during a partition and stops probing it, so without this
// the two halves only find each other again by chance (MetalLB re-joins once
// a minute and was measured with two owners for ~31 s). Healing takes the
// wait for the next round plus a follow-up join (see join): with 2 s rounds
// BenchmarkPartitionHeal measured a median of 1.8 s and a maximum of 2.04 s,
// too close to the target; with 1 s, median 0.80 s, maximum 1.04 s. A failed
// attempt is one TCP connection attempt per unreachable peer, so once a
// second costs nothing noticeable.
const DefaultRejoinInterval = 1 * time.Second

// rejoinFanIn is how many rejoin rounds per RejoinInterval the whole
// cluster aims at. Up to this many known peers every member rejoins once
// per interval; above, each member waits proportionally longer (with
// jitter), so the cluster as a whole still makes about rejoinFanIn
// attempts per interval at a partition, which heals it as fast, while a
// large cluster with some members falsely held dead does not answer with a
// full state sync per member per second: in the 250-member simulation that
// storm kept the cluster from ever converging.
const rejoinFanIn = 8

// Timing defaults. SPEC §5 asks for layer-2 failover (detection, election,
// gratuitous ARP) with a median ≤ 0.5 s and a worst of 20 trials ≤ 1 s.
// Almost all of it is memberlist's failure detection; for a cluster of n < 10
// members a killed member is dropped by everyone after roughly
//
//	wait for someone to probe it   0 … ~ProbeInterval (round robin, all probe)
//	+ failed probe                 ProbeInterval (direct, indirect and TCP
//	                               pings all wait for the probe deadline)
//	+ suspicion timeout            SuspicionMult·max(1, log10 n)·ProbeInterval
//	+ gossip of suspect/dead       ~1–2 GossipInterval
//
// memberlist starts the suspicion timer at SuspicionMaxTimeoutMult times
// that and shrinks it with independent confirmations, expecting
// k = SuspicionMult-2 of them; with SuspicionMult 2, k is 0 and the minimum
// applies at once, which is what makes sub-second detection possible at all
// (with k > 0 a lone prober waits SuspicionMaxTimeoutMult times longer).
//
// Measured on the development machine (2 vCPUs; BenchmarkFailureDetection:
// 5 members on loopback, 20 kills, time until every survivor stops listing
// the killed member):
//
//	memberlist DefaultLANConfig (1 s/500 ms/×4/200 ms): 5.6–6.8 s (SPEC §5)
//	200 ms / 100 ms / ×2 / 100 ms:  median 0.80 s, max 1.00 s
//	150 ms /  75 ms / ×2 /  50 ms:  median 0.62 s, max 0.99 s
//	100 ms /  50 ms / ×2 /  50 ms:  median 0.39–0.40 s, max 0.55–0.63 s (shipped)
//	 80 ms /  40 ms / ×2 /  40 ms:  median 0.33 s, max 0.76 s
//	100 ms /  50 ms / ×3 /  50 ms:  median 0.59 s, max 1.95 s
//
// With 50 members in one process the shipped values gave median 0.58 s,
// max 1.08 s (the suspicion timeout grows with log10 n). BenchmarkSimulation
// (SPEC §5: 250 members in one process on loopback, encrypted, started
// 300 ms apart; shipped timing except a probe timeout of 80 ms and a
// suspicion multiplier of 1, see simProbeTimeout and simSuspicionMult), on
// this 2-vCPU machine, three runs of 10 kills each:
//
//	every survivor agreed on the members again 0.44–0.81 s after a kill
//	    (medians 0.50, 0.52 and 0.55 s); all 250 had joined 75 s after the
//	    first start
//	steady traffic sent per member: mean 2.3 kB/s, max 3.7 kB/s
//	CPU: 1.6–1.7 ms per member per second (a fifth of the 2 CPUs)
//
// With the shipped multiplier of 2 the worst of 10 kills was 0.93–1.03 s
// (four runs). With the shipped 50 ms probe timeout, 150 members or more
// never settled on those two shared CPUs: every garbage collection of the
// process made many acks late at once, and the indirect and TCP probes
// that followed kept them late (execution traces: HERALD_SIM_TRACE). A
// real node's speaker collects alone, on its own CPUs.
//
// Until the transport of this package replaced memberlist's (see
// transport), not even 100 members converged: every datagram cost 64 KiB.
const (
	// DefaultProbeInterval is how often each member probes one other member
	// (round robin). It scales everything above. 100 ms is the largest
	// value that keeps the median detection under SPEC's 0.5 s (150 ms
	// gave 0.62 s). Cost: each member sends and answers ~10 pings a second;
	// measured with encryption, 1.7 kB/s of memberlist payload sent per node
	// at 5 members and 1.5 kB/s at 50 (well under the 20 kB/s budget), and
	// 5–8 ms of CPU per second per member.
	DefaultProbeInterval = 100 * time.Millisecond
	// DefaultProbeTimeout is how long a direct UDP ping waits for its ack
	// before indirect pings (through other members) and a TCP ping are
	// tried within the rest of the probe interval. Half the interval leaves
	// those fallbacks 50 ms, two orders of magnitude above a LAN round
	// trip; a member that misses it because its own CPU is starved is
	// protected by memberlist's self-awareness (Lifeguard), which stretches
	// its probe interval up to AwarenessMaxMultiplier (8) times.
	DefaultProbeTimeout = 50 * time.Millisecond
	// DefaultSuspicionMult sets the suspicion timeout to 2 probe intervals
	// (200 ms below 10 members, 2·log10(n) intervals above: 480 ms at 250).
	// A falsely suspected member refutes as soon as it hears the suspicion,
	// which takes a gossip round or two (50–100 ms), so 200 ms still leaves
	// room for that. 2 is also the value at which memberlist expects no
	// confirmations (see above); 3 or more would multiply a lone prober's
	// wait by SuspicionMaxTimeoutMult.
	DefaultSuspicionMult = 2
	// DefaultGossipInterval is how often queued broadcasts (suspect, dead,
	// alive, leave, metadata updates) are sent to GossipNodes (3) random
	// members. It costs nothing when nothing changes (memberlist sends only
	// when there is something queued), so it is short: a leave or a
	// health change reaches 3 members in 50 ms and 250 in ~5 rounds.
	DefaultGossipInterval = 50 * time.Millisecond
)

// tcpTimeout bounds memberlist's TCP connections (joins, push/pull, fallback
// pings). Peers are on the node network; one second is ample for a LAN, and
// a short value keeps a rejoin round against an unreachable peer short.
const tcpTimeout = time.Second

// pushPullInterval is memberlist's anti-entropy period: every member syncs
// its full state with one random member. It repairs any broadcast that was
// lost (a health update, a leave) within seconds instead of default 30 s.
// memberlist scales it up above 32 members (×4 at 250), so at 250 members
// a ~15 kB state every 40 s in each direction: ≈ 1 kB/s per node.
const pushPullInterval = 10 * time.Second

// deadNodeReclaimTime lets a node that died come back under the same name
// with a different address (a Node whose InternalIP changed) after this
// long; memberlist's default, 0, would refuse it forever.
const deadNodeReclaimTime = 10 * time.Second

// defaultUpdateTimeout bounds SetHealthy's wait for its broadcast when ctx
// has no deadline.
const defaultUpdateTimeout = time.Second

// maxParallelJoins is how many peers a rejoin round tries at once: a few,
// so that peers that are down (each costing up to tcpTimeout) delay the
// round little, without a burst of full state syncs when they all answer.
const maxParallelJoins = 3

// followUpGossipRounds is how many gossip intervals join waits before its
// follow-up join: enough for refutations to reach the members (three
// members per round).
const followUpGossipRounds = 4

// answeredBackoffRounds: a peer address that answered two joins but that no
// live member advertises (a Node address other than the one its speaker
// binds, or a side of a partition slow to refute) is skipped for this many
// rejoin intervals. Without it such an address would cost a full state sync
// every interval; other peers of the same side still heal a partition
// meanwhile.
const answeredBackoffRounds = 10

// Node metadata format (a compatibility contract between speaker versions):
// byte 0 is the format version (1); byte 1 holds flags, bit 0 = healthy.
// Later versions may append bytes but must keep bit 0 of byte 1.
const (
	metaVersion     = 1
	metaFlagHealthy = 1 << 0
)

// ErrShutdown is returned by methods called after Shutdown or Leave.
var ErrShutdown = errors.New("memberlist cluster is shut down")

// DefaultTiming returns the shipped memberlist timing defaults; the reason
// for each value is documented on its constant.
func DefaultTiming() (probeInterval, probeTimeout time.Duration, suspicionMult int, gossipInterval time.Duration) {
	return DefaultProbeInterval, DefaultProbeTimeout, DefaultSuspicionMult, DefaultGossipInterval
}

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
	// Key is a 16-, 24- or 32-byte AES key encrypting and authenticating all
	// memberlist traffic. nil disables encryption (labs only).
	Key []byte

	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
	GossipInterval              time.Duration
	// RejoinInterval is how often known peers that are not live members are
	// joined again (heals partitions); 0 means DefaultRejoinInterval.
	RejoinInterval time.Duration

	// Log receives herald's and memberlist's messages; nil discards them.
	Log *slog.Logger

	// wrapTransport, when set (tests only), wraps memberlist's UDP/TCP
	// transport, for example to simulate a network partition.
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// Member is a live memberlist member (alive or suspect).
type Member struct {
	Name    string
	Addr    netip.Addr
	Healthy bool
}

// member is a Member and the address and port it advertises.
type member struct {
	Member
	addr netip.AddrPort
}

// Cluster is this speaker's membership in the memberlist cluster of all
// speakers.
type Cluster struct {
	ml   *memberlist.Memberlist
	log  *slog.Logger
	self netip.AddrPort
	cfg  Config

	healthy atomic.Bool
	changed chan struct{}

	// members mirrors memberlist's live members, maintained by events.
	membersMu sync.Mutex
	members   map[string]member

	peersMu  sync.Mutex
	peers    []netip.AddrPort
	answered map[netip.AddrPort]time.Time // see answeredBackoffRounds
	kick     chan struct{}

	// mu serializes SetHealthy, Leave and Shutdown: memberlist panics on a
	// Leave after Shutdown.
	mu       sync.Mutex
	stopped  bool // Leave or Shutdown called
	shutdown bool
	cancel   context.CancelFunc
	loopDone chan struct{}
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
	switch len(cfg.Key) {
	case 0, 16, 24, 32:
	default:
		return nil, fmt.Errorf("starting memberlist: key is %d bytes, want 16, 24 or 32", len(cfg.Key))
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
	// LZW writer allocates and clears its tables each time: in the
	// 250-member simulation that was the largest CPU cost of all (18%),
	// for packets of a few hundred bytes on a LAN. Only the push/pull
	// state (≈15 kB at 250 members, every 40 s) is worth compressing,
	// and that is within the traffic budget uncompressed.
	mc.EnableCompression = false
	mc.SecretKey = cfg.Key
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
	c.log.Info("memberlist started", "name", cfg.NodeName, "addr", c.self.String(), "encrypted", len(cfg.Key) > 0,
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrShutdown
	}
	if c.healthy.Load() == healthy {
		return nil
	}
	c.healthy.Store(healthy)
	timeout := defaultUpdateTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	if err := c.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("publishing health %t: %w", healthy, err)
	}
	c.log.Info("published health", "healthy", healthy)
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
}

func (c *Cluster) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *Cluster) rejoinLoop(ctx context.Context) {
	defer close(c.loopDone)
	t := time.NewTimer(c.rejoinWait())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-t.C:
		}
		c.rejoin(ctx)
		t.Reset(c.rejoinWait())
	}
}

// rejoinWait is the wait before the next rejoin round: RejoinInterval, or
// with more than rejoinFanIn known peers that times peers/rejoinFanIn,
// randomised ±50% so that members do not rejoin in lockstep.
func (c *Cluster) rejoinWait() time.Duration {
	c.peersMu.Lock()
	n := len(c.peers)
	c.peersMu.Unlock()
	if n <= rejoinFanIn {
		return c.cfg.RejoinInterval
	}
	scaled := float64(c.cfg.RejoinInterval) * float64(n) / rejoinFanIn
	return time.Duration(scaled * (0.5 + rand.Float64()))
}

// rejoin joins known peer addresses that no live member advertises. It
// tries them in random order, a few at a time, and stops at the first round
// of attempts in which one answers: joining one member of a cluster brings
// in all of it (push/pull, then gossip), and anything still missing is
// tried again next interval. Joining every missing peer at once would make
// a whole cluster of speakers starting together (a fresh install) sync
// full state with each other hundreds of times a second; random order keeps
// them from all syncing with the same peer.
func (c *Cluster) rejoin(ctx context.Context) {
	live := c.liveAddrs()
	now := time.Now()
	var missing []netip.AddrPort
	c.peersMu.Lock()
	for _, p := range c.peers {
		if !live[p] && now.After(c.answered[p]) {
			missing = append(missing, p)
		}
	}
	c.peersMu.Unlock()
	rand.Shuffle(len(missing), func(i, j int) { missing[i], missing[j] = missing[j], missing[i] })

	for len(missing) > 0 && ctx.Err() == nil {
		n := min(len(missing), maxParallelJoins)
		var (
			wg      sync.WaitGroup
			reached atomic.Bool
		)
		for _, p := range missing[:n] {
			wg.Go(func() {
				if c.join(ctx, p) {
					reached.Store(true)
				}
			})
		}
		wg.Wait()
		if reached.Load() {
			return
		}
		missing = missing[n:]
	}
}

// join joins one peer address and reports whether the peer answered. After
// a partition the two sides hold each other dead at incarnations the other
// side has not exceeded, so the first push/pull only makes both sides refute
// (bump their incarnations); a second one, once the refutations have been
// gossiped, brings them together. Hence the follow-up join.
func (c *Cluster) join(ctx context.Context, p netip.AddrPort) bool {
	for attempt := 1; ; attempt++ {
		if _, err := c.ml.Join([]string{p.String()}); err != nil {
			// A peer that is down fails here every round: debug only.
			c.log.Debug("joining memberlist peer failed", "peer", p.String(), "err", err)
			return attempt > 1
		}
		if c.liveAddrs()[p] {
			c.log.Info("joined memberlist peer", "peer", p.String())
			return true
		}
		if attempt == 2 {
			c.log.Debug("memberlist peer answered but is not a member at this address", "peer", p.String())
			c.peersMu.Lock()
			c.answered[p] = time.Now().Add(answeredBackoffRounds * c.cfg.RejoinInterval)
			c.peersMu.Unlock()
			return true
		}
		t := time.NewTimer(followUpGossipRounds * c.cfg.GossipInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return true
		case <-t.C:
		}
	}
}

// liveAddrs returns the advertised addresses of the live members.
func (c *Cluster) liveAddrs() map[netip.AddrPort]bool {
	c.membersMu.Lock()
	defer c.membersMu.Unlock()
	live := make(map[netip.AddrPort]bool, len(c.members))
	for _, m := range c.members {
		live[m.addr] = true
	}
	return live
}

func metaHealthy(meta []byte) bool {
	return len(meta) >= 2 && meta[1]&metaFlagHealthy != 0
}

// delegate publishes the health flag; herald sends no user messages.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(int) []byte {
	var flags byte
	if d.c.healthy.Load() {
		flags |= metaFlagHealthy
	}
	return []byte{metaVersion, flags}
}
func (delegate) NotifyMsg([]byte)                {}
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (delegate) LocalState(bool) []byte          { return nil }
func (delegate) MergeRemoteState([]byte, bool)   {}

// events keeps the Cluster's copy of the membership and raises the Changed
// signal. memberlist calls it while holding its node lock, so it must not
// call back into memberlist; it is also the only race-free moment to read a
// *memberlist.Node, whose fields memberlist updates in place after
// Memberlist.Members has returned pointers to them.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.setMember(n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.setMember(n) }
func (e events) NotifyLeave(n *memberlist.Node) {
	e.c.membersMu.Lock()
	delete(e.c.members, n.Name)
	e.c.membersMu.Unlock()
	e.c.signal()
}

func (c *Cluster) setMember(n *memberlist.Node) {
	addr, _ := netip.AddrFromSlice(n.Addr)
	addr = addr.Unmap()
	c.membersMu.Lock()
	c.members[n.Name] = member{
		Member: Member{Name: n.Name, Addr: addr, Healthy: metaHealthy(n.Meta)},
		addr:   netip.AddrPortFrom(addr, n.Port),
	}
	c.membersMu.Unlock()
	c.signal()
}

// logWriter bridges memberlist's *log.Logger into slog: memberlist prefixes
// each line with its level ("[DEBUG] memberlist: ...").
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if tag, text, ok := strings.Cut(rest, "]"); ok {
			switch tag {
			case "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = strings.TrimSpace(text)
		}
	}
	ctx := context.Background()
	if w.log.Enabled(ctx, level) {
		w.log.Log(ctx, level, strings.TrimPrefix(msg, "memberlist: "))
	}
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)
