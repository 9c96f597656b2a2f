package layer2

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// Defaults for Config's zero values.
const (
	// DefaultGratuitousCount rounds of gratuitous ARP / unsolicited NA are
	// sent on takeover: one lost packet must not leave a client on the old
	// node until its neighbour entry times out (~20 s).
	DefaultGratuitousCount = 5
	// DefaultGratuitousInterval spaces the rounds; 5 × 500 ms covers ~2 s,
	// the time a switch or a busy client may need to settle.
	DefaultGratuitousInterval = 500 * time.Millisecond
	// DefaultConflictGrace is 2 s: a graceful handover overlaps
	// the old and the new owner on purpose.
	DefaultConflictGrace = 2 * time.Second
)

// retryInterval is how soon an interface whose responder could not be
// opened is retried (e.g. no IPv6 link-local address yet during DAD), on top
// of every link, address or route change.
const retryInterval = time.Second

// ErrNoInterface means no usable interface was found for an address: the
// pool's interfaces are missing or down, or no connected subnet or default
// route of its family exists.
var ErrNoInterface = errors.New("no usable interface")

// AddrError is Set's failure for one address. Set joins one per address it
// cannot announce, so that a caller can tell the Services of that address
// (and only those) why.
type AddrError struct {
	Addr netip.Addr
	Err  error
}

func (e *AddrError) Error() string { return e.Err.Error() }
func (e *AddrError) Unwrap() error { return e.Err }

// FailedAddr is the address that could not be announced.
func (e *AddrError) FailedAddr() netip.Addr { return e.Addr }

// Target is one address this node must announce.
type Target struct {
	Addr       netip.Addr
	Interfaces []string // the pool's layer2.interfaces; empty = automatic choice
	Service    string   // "ns/name" of one Service using the address, for logs and conflict reports
}

// Config configures an Announcer. The zero value works.
type Config struct {
	Log      *slog.Logger          // nil = discard
	Registry prometheus.Registerer // nil = no metrics
	Clock    clock.WithTicker      // nil = real clock

	GratuitousCount    int           // rounds sent on takeover; 0 = DefaultGratuitousCount
	GratuitousInterval time.Duration // between rounds, the first is immediate; 0 = DefaultGratuitousInterval

	// OnConflict is called once per conflict episode when another MAC
	// answers for an address this node announces. It is called from a
	// responder goroutine and must not block.
	OnConflict func(addr netip.Addr, iface string, otherMAC net.HardwareAddr)
	// ConflictGrace: answers from other MACs are ignored this long after
	// this node took an address over, and an answer seen by an older owner
	// is reported only if it still owns the address this long afterwards.
	// 0 = DefaultConflictGrace; negative = no grace.
	ConflictGrace time.Duration

	// OnChange, if set, is called whenever what Interfaces returns changes
	// (a link went down or up, an address moved, a socket could not be
	// opened), so the speaker can report health and Events without
	// polling. It is called without locks held and must not block.
	OnChange func()
}

// family of a responder.
type family string

const (
	famIPv4 family = "ipv4"
	famIPv6 family = "ipv6"
)

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return famIPv4
	}
	return famIPv6
}

// responder answers for a set of addresses of one family on one interface.
type responder interface {
	setAddrs(want map[netip.Addr]string)
	reannounce(addrs []netip.Addr)
	close()
}

type respKey struct {
	iface string
	fam   family
}

// linkID identifies the link a responder was opened on: a recreated link
// gets a new index, and a changed MAC must be announced afresh.
type linkID struct {
	index int
	mac   string
}

type respEntry struct {
	id linkID
	r  responder
}

// Announcer answers ARP and NDP for the addresses it is given on the
// interfaces it chooses for them. Create it with New, start Run, and call
// Set with the full desired state whenever it changes.
type Announcer struct {
	log     *slog.Logger
	clk     clock.WithTicker
	metrics *metrics
	cfg     Config

	// open opens a responder on an interface; tests replace it.
	open func(ifname string, fam family) (responder, linkID, error)

	runMu   sync.Mutex
	running bool

	mu         sync.Mutex
	targets    map[netip.Addr]Target
	state      *netState // nil until Run has read the links
	responders map[respKey]respEntry
	announced  map[netip.Addr][]string
	changed    bool // announced changed since OnChange was last called
	needRetry  bool
	retryKick  chan struct{} // tells Run to arm its retry timer
}

// New returns an Announcer. It announces nothing until Run has read the
// node's links.
func New(cfg Config) *Announcer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.GratuitousCount <= 0 {
		cfg.GratuitousCount = DefaultGratuitousCount
	}
	if cfg.GratuitousInterval <= 0 {
		cfg.GratuitousInterval = DefaultGratuitousInterval
	}
	switch {
	case cfg.ConflictGrace == 0:
		cfg.ConflictGrace = DefaultConflictGrace
	case cfg.ConflictGrace < 0:
		cfg.ConflictGrace = 0
	}
	a := &Announcer{
		log:        cfg.Log,
		clk:        cfg.Clock,
		metrics:    newMetrics(cfg.Registry),
		cfg:        cfg,
		targets:    map[netip.Addr]Target{},
		responders: map[respKey]respEntry{},
		announced:  map[netip.Addr][]string{},
		retryKick:  make(chan struct{}, 1),
	}
	a.open = a.openSocket
	return a
}

// Set makes targets the full set of addresses this node announces. A new
// address is answered for from now on and announced with a gratuitous burst
// starting before Set returns; an address no longer listed stops being
// answered before Set returns.
//
// Set always records the whole desired state. The error, if any, lists the
// addresses that could not be announced anywhere right now (wrapping
// ErrNoInterface or the socket error); they are retried on every link,
// address or route change and every second. Before Run has read the links,
// Set only records.
func (a *Announcer) Set(_ context.Context, targets []Target) error {
	want := make(map[netip.Addr]Target, len(targets))
	var errs []error
	for _, t := range targets {
		addr := t.Addr.Unmap().WithZone("")
		if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() {
			errs = append(errs, &AddrError{t.Addr, fmt.Errorf("announcing %v: invalid address", t.Addr)})
			continue
		}
		if _, dup := want[addr]; dup {
			continue // a shared address: the first Service names it
		}
		t.Addr = addr
		t.Interfaces = slices.Clone(t.Interfaces)
		want[addr] = t
	}
	a.mu.Lock()
	a.targets = want
	err := a.reconcileLocked()
	changed := a.takeChanged()
	a.mu.Unlock()
	a.notify(changed)
	return errors.Join(append(errs, err)...)
}

// Reannounce sends a fresh gratuitous burst for each of addrs that is
// announced now, on every interface it is announced on; other addresses
// are ignored. Set already announces every address it adds; this is for
// an owner that keeps an address but must reclaim neighbour caches that
// another node's burst moved, such as after a network partition heals.
func (a *Announcer) Reannounce(addrs ...netip.Addr) {
	a.mu.Lock()
	rs := make([]responder, 0, len(a.responders))
	for _, e := range a.responders {
		rs = append(rs, e.r)
	}
	a.mu.Unlock()
	for _, r := range rs {
		r.reannounce(addrs)
	}
}

// takeChanged reports and clears whether announced changed since the last
// call. a.mu must be held.
func (a *Announcer) takeChanged() bool {
	c := a.changed
	a.changed = false
	return c
}

func (a *Announcer) notify(changed bool) {
	if changed && a.cfg.OnChange != nil {
		a.cfg.OnChange()
	}
}

// Interfaces returns where each address is announced now (sorted interface
// names). Addresses without a usable interface are absent.
func (a *Announcer) Interfaces() map[netip.Addr][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[netip.Addr][]string, len(a.announced))
	for k, v := range a.announced {
		out[k] = slices.Clone(v)
	}
	return out
}

// reconcileLocked opens, updates and closes responders so that every target
// is answered on the interfaces chosen for it in the current link state.
func (a *Announcer) reconcileLocked() error {
	if a.state == nil {
		return nil
	}
	want := map[respKey]map[netip.Addr]string{}
	chosen := map[netip.Addr][]string{}
	var errs []error
	for _, addr := range slices.SortedFunc(maps.Keys(a.targets), netip.Addr.Compare) {
		t := a.targets[addr]
		ifs := chooseInterfaces(a.state, addr, t.Interfaces)
		if len(ifs) == 0 {
			errs = append(errs, &AddrError{addr, fmt.Errorf("announcing %s (%s): %w", addr, t.Service, ErrNoInterface)})
			continue
		}
		chosen[addr] = ifs
		for _, name := range ifs {
			k := respKey{name, familyOf(addr)}
			if want[k] == nil {
				want[k] = map[netip.Addr]string{}
			}
			want[k][addr] = t.Service
		}
	}

	// Close responders that are no longer wanted or whose link was
	// recreated or changed its MAC since they were opened.
	for k, e := range a.responders {
		l := a.state.byName(k.iface)
		if _, ok := want[k]; !ok || l == nil || (linkID{l.Index, l.MAC}) != e.id {
			e.r.close()
			delete(a.responders, k)
			a.log.Debug("closed responder", "iface", k.iface, "family", string(k.fam))
		}
	}

	failed := map[respKey]error{}
	for _, k := range slices.SortedFunc(maps.Keys(want), func(x, y respKey) int {
		return cmp.Or(cmp.Compare(x.iface, y.iface), cmp.Compare(x.fam, y.fam))
	}) {
		e, ok := a.responders[k]
		if !ok {
			r, id, err := a.open(k.iface, k.fam)
			if err != nil {
				failed[k] = err
				continue
			}
			e = respEntry{id: id, r: r}
			a.responders[k] = e
			a.log.Debug("opened responder", "iface", k.iface, "family", string(k.fam))
		}
		e.r.setAddrs(want[k])
	}

	a.needRetry = len(failed) > 0
	if a.needRetry {
		select {
		case a.retryKick <- struct{}{}:
		default:
		}
	}
	announced := map[netip.Addr][]string{}
	for _, addr := range slices.SortedFunc(maps.Keys(chosen), netip.Addr.Compare) {
		ifs := chosen[addr]
		var ok []string
		for _, name := range ifs {
			k := respKey{name, familyOf(addr)}
			if err, bad := failed[k]; bad {
				errs = append(errs, &AddrError{addr, fmt.Errorf("announcing %s (%s) on %s: %w", addr, a.targets[addr].Service, name, err)})
				continue
			}
			ok = append(ok, name)
		}
		if len(ok) > 0 {
			announced[addr] = ok
		}
	}
	if !maps.EqualFunc(a.announced, announced, slices.Equal) {
		a.changed = true
	}
	a.announced = announced
	return errors.Join(errs...)
}

// ownerConfig builds the per-responder configuration.
func (a *Announcer) ownerConfig(iface string, fam family) ownerConfig {
	return ownerConfig{
		clk:        a.clk,
		log:        a.log,
		iface:      iface,
		family:     string(fam),
		count:      a.cfg.GratuitousCount,
		interval:   a.cfg.GratuitousInterval,
		grace:      a.cfg.ConflictGrace,
		onConflict: a.cfg.OnConflict,
		metrics:    a.metrics.forIface(iface, string(fam)),
	}
}

// openSocket opens the real ARP or NDP socket on an interface.
func (a *Announcer) openSocket(ifname string, fam family) (responder, linkID, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, linkID{}, fmt.Errorf("looking up interface %q: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, linkID{}, fmt.Errorf("interface %q has no Ethernet address", ifname)
	}
	id := linkID{ifi.Index, ifi.HardwareAddr.String()}
	cfg := a.ownerConfig(ifname, fam)
	if fam == famIPv4 {
		c, err := listenARP(ifi)
		if err != nil {
			return nil, linkID{}, err
		}
		return newARPResponder(cfg, ifi.HardwareAddr, c), id, nil
	}
	c, err := listenNDP(ifi)
	if err != nil {
		return nil, linkID{}, err
	}
	return newNDPResponder(cfg, ifi.HardwareAddr, c), id, nil
}

// applyState installs a new link snapshot and reconciles.
func (a *Announcer) applyState(st *netState) {
	a.mu.Lock()
	a.state = st
	if err := a.reconcileLocked(); err != nil {
		a.log.Warn("some addresses are not announced", "err", err)
	}
	changed := a.takeChanged()
	a.mu.Unlock()
	a.notify(changed)
}

// retry reconciles again if a responder failed to open.
func (a *Announcer) retry() {
	a.mu.Lock()
	if a.needRetry {
		_ = a.reconcileLocked()
	}
	changed := a.takeChanged()
	a.mu.Unlock()
	a.notify(changed)
}

// shutdown closes every responder: nothing is answered any more.
func (a *Announcer) shutdown() {
	a.mu.Lock()
	for k, e := range a.responders {
		e.r.close()
		delete(a.responders, k)
	}
	a.state = nil
	changed := len(a.announced) > 0
	a.announced = map[netip.Addr][]string{}
	a.changed = false
	a.mu.Unlock()
	a.notify(changed)
}

// Run tracks the node's links, addresses and default routes through netlink
// subscriptions and keeps the responders in line with them and with Set.
// It returns nil when ctx ends, after closing every responder, or an error
// if the first netlink subscription or listing fails (later failures are
// retried). Run may be called only once at a time.
func (a *Announcer) Run(ctx context.Context) error {
	a.runMu.Lock()
	if a.running {
		a.runMu.Unlock()
		return errors.New("layer2: Run is already running")
	}
	a.running = true
	a.runMu.Unlock()
	defer func() {
		a.shutdown()
		a.runMu.Lock()
		a.running = false
		a.runMu.Unlock()
	}()

	first := true
	for {
		err := a.watch(ctx, func() { first = false })
		if ctx.Err() != nil {
			return nil
		}
		if first {
			return fmt.Errorf("watching links: %w", err)
		}
		a.log.Warn("netlink watch failed, restarting", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-a.clk.After(retryInterval):
		}
	}
}
