package membership

import "time"

// DefaultPort is the memberlist port (TCP and UDP), the one MetalLB's
// speakers use too.
const DefaultPort = 7946

// Timing defaults. herald's layer-2 failover target (detection, election,
// gratuitous ARP: a median of at most 0.5 s, the worst of 20 trials at most
// 1 s) is almost all memberlist's failure detection. For a cluster of
// n < 10 members a killed member is dropped by everyone after roughly
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
// BenchmarkFailureDetection (5 members), BenchmarkPartitionHeal and
// BenchmarkSimulation (250 members) measure the effect of these values.
const (
	// DefaultProbeInterval is how often each member probes one other member
	// (round robin). It scales everything above: 100 ms is the largest
	// value that keeps the median detection under 0.5 s. Each member then
	// sends and answers ~10 pings a second, a few kB/s.
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

// DefaultTiming returns the shipped memberlist timing defaults; the reason
// for each value is documented on its constant.
func DefaultTiming() (probeInterval, probeTimeout time.Duration, suspicionMult int, gossipInterval time.Duration) {
	return DefaultProbeInterval, DefaultProbeTimeout, DefaultSuspicionMult, DefaultGossipInterval
}

// DefaultRejoinInterval is how often a speaker re-joins known peers that are
// not live members. After a partition heals exactly one owner must remain
// within 2 s, whatever the partition's length. memberlist marks the other
// side dead during a partition and stops probing it, so without this the
// two halves only find each other again by chance (MetalLB re-joins once a
// minute). Healing takes the wait for the next round plus a follow-up join
// (see join), so the interval must stay well under 2 s; 2 s rounds healed
// too close to the target in BenchmarkPartitionHeal. A failed attempt is
// one TCP connection attempt per unreachable peer, so once a second costs
// nothing noticeable.
const DefaultRejoinInterval = 1 * time.Second

// rejoinFanIn is how many rejoin rounds per RejoinInterval the whole
// cluster aims at. Up to this many known peers every member rejoins once
// per interval; above, each member waits proportionally longer (with
// jitter), so the cluster as a whole still makes about rejoinFanIn
// attempts per interval at a partition, which heals it as fast, while a
// large cluster with some members falsely held dead does not answer with a
// full state sync per member per second (a storm that keeps a large
// cluster from ever converging).
const rejoinFanIn = 8

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
