package cpvip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldlb/herald/internal/membership"
)

// Membership is the memberlist cluster of the control-plane nodes.
type Membership interface {
	// Members are the live members, this node included.
	Members() []membership.Member
	// Changed signals that Members or their metadata changed.
	Changed() <-chan struct{}
	// SetState publishes this node's health and holding in one update.
	SetState(ctx context.Context, healthy, holding bool) error
}

// Announcer makes this node answer for the VIPs, or stop.
type Announcer interface {
	// Hold(true) makes the VIPs local and announces them (with gratuitous
	// ARP / unsolicited NA); Hold(false) withdraws them. Both are
	// idempotent.
	Hold(ctx context.Context, hold bool) error
	// Reannounce repeats the gratuitous burst of a held VIP.
	Reannounce()
}

// Defaults of Config's timing.
const (
	// DefaultCheckInterval paces the /readyz checks. A killed API server
	// refuses the next check at once, so the VIP leaves it within one
	// interval plus a gossip round; 100 ms costs one small HTTPS request
	// on a kept-alive connection.
	DefaultCheckInterval = 100 * time.Millisecond
	// DefaultCheckTimeout bounds one check: an API server that takes
	// longer to say it is ready is not one clients should be sent to.
	DefaultCheckTimeout = 500 * time.Millisecond
	// DefaultAloneSettle is how long a node that sees no other member
	// waits before it takes a VIP nobody holds. A node whose link comes
	// back, or whose speaker restarts, sees only itself until memberlist
	// has joined the others again (one rejoin round, a second); taking the
	// VIP at once would move it from the node holding it, and announce it
	// twice. The first node of a new cluster pays this once.
	DefaultAloneSettle = 2 * time.Second
)

// benchTime is how long a node that failed to announce the VIP stays out
// of the election before it tries again.
const benchTime = 5 * time.Second

// Config configures a Keeper.
type Config struct {
	Node string     // this node's memberlist name
	Key  netip.Addr // the address the election ranks by (the first VIP)

	Membership Membership
	Announcer  Announcer
	// Check returns nil while this node's kube-apiserver is ready.
	Check func(ctx context.Context) error

	// EveryReady makes every node whose API server is ready announce the
	// VIP, with no election: BGP, where routers spread the clients over
	// all of them (ECMP).
	EveryReady bool

	Interval    time.Duration // 0: DefaultCheckInterval
	Timeout     time.Duration // 0: DefaultCheckTimeout
	AloneSettle time.Duration // 0: DefaultAloneSettle

	Log      *slog.Logger          // nil: discard
	Registry prometheus.Registerer // nil: no metrics
}

// Keeper holds the VIP on this node while the election says so.
type Keeper struct {
	cfg Config
	log *slog.Logger

	ready, holding prometheus.Gauge
	takeovers      prometheus.Counter

	conflicts chan struct{} // see Conflict
}

// New validates cfg and registers the Keeper's metrics.
func New(cfg Config) (*Keeper, error) {
	switch {
	case cfg.Node == "":
		return nil, errors.New("control plane: node name is empty")
	case !cfg.Key.IsValid():
		return nil, errors.New("control plane: no VIP")
	case cfg.Membership == nil || cfg.Announcer == nil || cfg.Check == nil:
		return nil, errors.New("control plane: membership, announcer and check are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultCheckInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultCheckTimeout
	}
	if cfg.AloneSettle <= 0 {
		cfg.AloneSettle = DefaultAloneSettle
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{
		cfg: cfg, log: cfg.Log, conflicts: make(chan struct{}, 1),
		ready:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_control_plane_apiserver_ready", Help: "1 while this node's kube-apiserver answers /readyz (the node is a candidate for the VIP)."}),
		holding:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_control_plane_vip_holding", Help: "1 while this node holds and announces the control-plane VIP."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_control_plane_vip_takeovers_total", Help: "Times this node took the control-plane VIP."}),
	}
	if cfg.Registry != nil {
		if err := errors.Join(cfg.Registry.Register(k.ready), cfg.Registry.Register(k.holding), cfg.Registry.Register(k.takeovers)); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Conflict tells the keeper that another host answers for the VIP it
// holds (layer 2 sees another MAC claim it). A holder that sees other
// members announces the VIP again, to take clients back. A holder that
// sees nobody is most likely the node that cannot join the others (a
// wrong key, a closed port): it lets the VIP go and does not take it
// again until it has joined them. It does not block.
func (k *Keeper) Conflict() {
	select {
	case k.conflicts <- struct{}{}:
	default:
	}
}

// Run checks the local API server and holds or releases the VIP until ctx
// ends; then it publishes that this node neither is healthy nor holds the
// VIP (so another node takes it at once) and only then withdraws it. The
// caller leaves memberlist afterwards.
func (k *Keeper) Run(ctx context.Context) error {
	// A previous run that crashed may have left the VIP local; this node
	// holds nothing until it is elected.
	if err := k.cfg.Announcer.Hold(ctx, false); err != nil {
		return fmt.Errorf("releasing the VIP at start: %w", err)
	}
	results := make(chan checkResult, 1)
	checkDone := make(chan struct{})
	go func() {
		defer close(checkDone)
		k.checkLoop(ctx, results)
	}()
	defer func() { <-checkDone }()

	var healthy, holding bool
	// yielded: this node, alone, let the VIP go to another host that
	// answers for it; it stays aside until it sees another member.
	yielded, conflict := false, false
	// releasePending: a withdrawal failed (the VIP may still be local, and
	// answered by the kernel): it is retried on every pass until it works.
	releasePending := false
	// known are the members seen at the last pass: one that (re)appears
	// may have announced the VIP while it could not see this node (a
	// partition, a cut link that came back), moving clients' neighbour
	// caches to itself; the holder takes them back.
	known := map[string]bool{}
	// After a failed Hold the node stays out of the election for a while,
	// so that a node that cannot announce does not keep winning it.
	var benchedUntil time.Time
	// aloneSince is when this node last saw no other member (it starts
	// alone); cutOff is when it last found its own link down, and with it
	// its view of the others frozen (memberlist does not suspect a member
	// it cannot even send to, so the view keeps what it was at the cut).
	// Until AloneSettle after either, it takes no VIP nobody holds: see
	// DefaultAloneSettle.
	aloneSince := time.Now()
	var cutOff time.Time
	settled := time.NewTimer(k.cfg.AloneSettle)
	defer settled.Stop()
	for {
		select {
		case <-ctx.Done():
			k.stop(holding)
			return nil
		case r := <-results:
			healthy = r.ok
			if r.cutOff {
				cutOff = time.Now()
				settled.Reset(k.cfg.AloneSettle)
			}
		case <-k.cfg.Membership.Changed():
		case <-settled.C:
		case <-k.conflicts:
			conflict = !k.cfg.EveryReady
		}
		healthy = healthy && !time.Now().Before(benchedUntil)
		members := k.members(healthy, holding)
		returned := false
		next := make(map[string]bool, len(members))
		for _, m := range members {
			next[m.Name] = true
			returned = returned || !known[m.Name]
		}
		known = next
		switch {
		case len(members) > 1:
			aloneSince = time.Time{}
			yielded = false
		case aloneSince.IsZero():
			aloneSince = time.Now()
			settled.Reset(k.cfg.AloneSettle)
		}
		if conflict && holding {
			if len(members) > 1 {
				k.log.Warn("another host answers for the VIP; announcing it again")
				k.cfg.Announcer.Reannounce()
			} else {
				k.log.Error("another host answers for the VIP and this node sees no other member: letting the VIP go until it has joined the others (check the memberlist key, port and --peers)")
				yielded = true
			}
		}
		conflict = false
		want := healthy && !yielded && (k.cfg.EveryReady || Owner(members, k.cfg.Key) == k.cfg.Node)
		if holding && !healthy && !yielded && !k.cfg.EveryReady && !otherHealthy(members, k.cfg.Node) {
			// Nobody could take over: keep the VIP rather than leave it
			// unannounced, so that an outage of every API server (etcd
			// unreachable, say) does not also move the VIP when they
			// recover. Another node that becomes ready takes it over.
			want = true
		}
		if releasePending && !holding {
			if err := k.cfg.Announcer.Hold(ctx, false); err == nil {
				releasePending = false
				k.log.Info("withdrew the VIP after an earlier failure")
			}
		}
		unsure := (!aloneSince.IsZero() && time.Since(aloneSince) < k.cfg.AloneSettle) ||
			(!cutOff.IsZero() && time.Since(cutOff) < k.cfg.AloneSettle)
		if want && !holding && !k.cfg.EveryReady && unsure {
			// Nobody this node can see holds the VIP, but what it sees may
			// be stale: wait until the others had a chance to show
			// themselves (settled fires then).
			k.publish(ctx, healthy, holding)
			continue
		}
		if want == holding {
			if holding && returned && !k.cfg.EveryReady {
				k.log.Info("a member came back: announcing the VIP again")
				k.cfg.Announcer.Reannounce()
			}
			// Health alone changed (or nothing): publish it.
			k.publish(ctx, healthy, holding)
			continue
		}
		if want {
			if err := k.cfg.Announcer.Hold(ctx, true); err != nil {
				// Not holding: another node can take it.
				k.log.Error("cannot announce the VIP; standing aside", "for", benchTime, "err", err)
				_ = k.cfg.Announcer.Hold(ctx, false)
				benchedUntil = time.Now().Add(benchTime)
				healthy = false
				k.publish(ctx, false, false)
				continue
			}
			holding = true
			k.takeovers.Inc()
			k.holding.Set(1)
			k.log.Info("holding the VIP")
			k.publish(ctx, healthy, true)
			continue
		}
		// Giving it up: tell the others first, so the next owner starts
		// as early as possible.
		holding = false
		k.publish(ctx, healthy, false)
		if err := k.cfg.Announcer.Hold(ctx, false); err != nil {
			k.log.Error("cannot withdraw the VIP; retrying", "err", err)
			releasePending = true
		}
		k.holding.Set(0)
		k.log.Info("released the VIP", "apiserverReady", healthy)
	}
}

// members is the membership with this node's own entry as it is now,
// not as last gossiped.
func (k *Keeper) members(healthy, holding bool) []Member {
	var out []Member
	self := false
	for _, m := range k.cfg.Membership.Members() {
		if m.Name == k.cfg.Node {
			self = true
			m.Healthy, m.Holding = healthy, holding
		}
		out = append(out, Member{Name: m.Name, Healthy: m.Healthy, Holding: m.Holding})
	}
	if !self {
		out = append(out, Member{Name: k.cfg.Node, Healthy: healthy, Holding: holding})
	}
	return out
}

// otherHealthy reports whether a member other than self is healthy.
func otherHealthy(members []Member, self string) bool {
	for _, m := range members {
		if m.Name != self && m.Healthy {
			return true
		}
	}
	return false
}

func (k *Keeper) publish(ctx context.Context, healthy, holding bool) {
	if err := k.cfg.Membership.SetState(ctx, healthy, holding); err != nil && ctx.Err() == nil {
		k.log.Warn("publishing state", "err", err)
	}
}

// stop hands the VIP over at shutdown.
func (k *Keeper) stop(holding bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	k.publish(ctx, false, false)
	if holding {
		if err := k.cfg.Announcer.Hold(ctx, false); err != nil {
			k.log.Error("cannot withdraw the VIP", "err", err)
		}
		k.holding.Set(0)
		k.log.Info("released the VIP", "reason", "stopping")
	}
}

// ErrCutOff, wrapped by a Check error, says this node's own link is down:
// it cannot reach the others, and its view of them is frozen.
var ErrCutOff = errors.New("this node's link is down")

// checkResult is one check's outcome.
type checkResult struct {
	ok, cutOff bool
}

// checkLoop sends every check's result (the newest one wins when the loop
// is busy) and logs changes with their reason.
func (k *Keeper) checkLoop(ctx context.Context, results chan checkResult) {
	tick := time.NewTicker(k.cfg.Interval)
	defer tick.Stop()
	last, first := false, true
	for {
		cctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
		err := k.cfg.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		ok := err == nil
		if ok != last || first {
			if ok {
				k.log.Info("kube-apiserver is ready")
				k.ready.Set(1)
			} else {
				k.log.Warn("kube-apiserver is not ready", "err", err)
				k.ready.Set(0)
			}
			last, first = ok, false
		}
		select {
		case <-results:
		default:
		}
		results <- checkResult{ok: ok, cutOff: errors.Is(err, ErrCutOff)}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
