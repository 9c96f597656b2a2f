package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// Health decides whether this node can forward traffic it attracts: a node
// that is alive but cannot forward must not keep an address (Cilium #35507,
// OpenELB #392). The speaker publishes the answer in its memberlist
// metadata, and the election counts only healthy nodes.
type Health struct {
	// KubeProxyURL is kube-proxy's health endpoint; "" disables the check.
	KubeProxyURL string
	// LinkUp reports whether the announcing interface is up; nil skips it.
	LinkUp func() (bool, error)
	// InterfacesDown returns those of the watched interfaces (SetWatched)
	// that cannot carry traffic; nil counts every one as up. Unlike the
	// link of the node's own address, they do not make the node
	// unhealthy: each is published, and only the layer-2 pools that name
	// it and no other usable interface move away.
	InterfacesDown func(names []string) ([]string, error)
	Interval       time.Duration // 0: 500 ms
	Client         *http.Client
	Log            *slog.Logger
	Clock          clock.Clock // paces Run; nil is the real clock

	// kube-proxy health is only enforced once it has answered: a cluster
	// without kube-proxy (a replacement such as Cilium's) never answers,
	// and must not leave every node unhealthy.
	proxySeen    bool
	proxyAbsent  bool
	healthyGauge prometheus.Gauge
	proxyGauge   prometheus.Gauge
	ifaceGauge   *prometheus.GaugeVec
	gauged       []string // the interfaces ifaceGauge has, sorted

	watchMu sync.Mutex
	watched []string
	// watchSet: SetWatched was called. Until then the node does not
	// know which interfaces matter, and says so (Status.Unknown).
	watchSet bool
	kickOnce sync.Once
	kick     chan struct{}
}

// SetWatched sets the interfaces to judge (those the layer-2 pools name)
// and checks again at once if they changed.
func (h *Health) SetWatched(names []string) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	h.watchMu.Lock()
	same := h.watchSet && slices.Equal(names, h.watched)
	h.watched, h.watchSet = names, true
	h.watchMu.Unlock()
	if !same {
		h.Kick()
	}
}

func (h *Health) watchedNow() []string {
	names, _ := h.watchState()
	return names
}

func (h *Health) watchState() ([]string, bool) {
	h.watchMu.Lock()
	defer h.watchMu.Unlock()
	return h.watched, h.watchSet
}

// LinkChanged checks at once if name is a watched interface: a node
// with a hundred Pods sees their veths come and go, which need no check.
func (h *Health) LinkChanged(name string) {
	if _, ok := slices.BinarySearch(h.watchedNow(), name); ok {
		h.Kick()
	}
}

// Kick makes Run check now instead of at the next interval (a link
// changed); kicks while a check is pending are merged.
func (h *Health) Kick() {
	select {
	case h.kicks() <- struct{}{}:
	default:
	}
}

func (h *Health) kicks() chan struct{} {
	h.kickOnce.Do(func() { h.kick = make(chan struct{}, 1) })
	return h.kick
}

// Status is what Run publishes.
type Status struct {
	Healthy bool
	// Why the node is unhealthy; "" when it is healthy.
	Why string
	// Down are the watched interfaces that cannot carry traffic, sorted.
	Down []string
	// Unknown: the interfaces to watch are not known yet (the speaker
	// has not read the pools): the node must count as unable to answer on
	// any interface a pool names, or it would be elected for a pool on an
	// interface it may not have.
	Unknown bool
}

// Register exports the health metrics.
func (h *Health) Register(reg prometheus.Registerer) {
	h.healthyGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_speaker_healthy", Help: "1 while this node considers itself able to forward (interface up, kube-proxy healthy)."})
	h.proxyGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_speaker_kube_proxy_check_active", Help: "1 once kube-proxy's health endpoint has answered and is being enforced; 0 while it never answered (check off)."})
	h.ifaceGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "herald_speaker_interface_up", Help: "For each interface a layer-2 pool names: 1 while it can carry traffic on this node, 0 while it is down or absent (the pools naming only it are answered by other nodes)."}, []string{"interface"})
	if reg != nil {
		reg.MustRegister(h.healthyGauge, h.proxyGauge, h.ifaceGauge)
	}
}

// Interfaces returns those of the watched interfaces that cannot carry
// traffic now, and whether the interfaces to watch are known at all. An
// interface that cannot be read counts as down (InterfacesDown includes
// it and reports the error): the pools that name only it go to other
// nodes rather than stay where they may not be reachable.
func (h *Health) Interfaces() (down []string, known bool, err error) {
	watched, known := h.watchState()
	if h.InterfacesDown == nil {
		return nil, true, nil
	}
	if len(watched) == 0 {
		return nil, known, nil
	}
	down, err = h.InterfacesDown(watched)
	return slices.Sorted(slices.Values(down)), known, err
}

// Check returns the node's health now and why it is unhealthy.
func (h *Health) Check(ctx context.Context) (bool, string) {
	if h.LinkUp != nil {
		up, err := h.LinkUp()
		if err != nil {
			return false, fmt.Sprintf("checking the announcing interface: %v", err)
		}
		if !up {
			return false, "announcing interface is down"
		}
	}
	if h.KubeProxyURL == "" {
		return true, ""
	}
	code, err := h.get(ctx)
	switch {
	case err == nil && code == http.StatusOK:
		h.proxySeen = true
		h.setProxyGauge(1)
		return true, ""
	case err == nil:
		h.proxySeen = true
		h.setProxyGauge(1)
		return false, fmt.Sprintf("kube-proxy health %s answered %d", h.KubeProxyURL, code)
	case h.proxySeen:
		return false, fmt.Sprintf("kube-proxy health %s stopped answering: %v", h.KubeProxyURL, err)
	default:
		if !h.proxyAbsent && h.Log != nil {
			h.Log.Warn("kube-proxy health endpoint never answered; the check stays off until it does", "url", h.KubeProxyURL, "err", err)
		}
		h.proxyAbsent = true
		h.setProxyGauge(0)
		return true, ""
	}
}

func (h *Health) setProxyGauge(v float64) {
	if h.proxyGauge != nil {
		h.proxyGauge.Set(v)
	}
}

func (h *Health) get(ctx context.Context) (int, error) {
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.KubeProxyURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read to the end so that the connection is reused: a check runs
	// every 500 ms, a new TCP connection each time is needless work.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// Run checks every Interval, and at once when kicked, and publishes
// changes through set (the memberlist metadata), so other speakers stop
// counting this node, or stop counting it for the pools of an interface,
// within one gossip round.
func (h *Health) Run(ctx context.Context, set func(context.Context, Status) error) {
	interval := h.Interval
	if interval == 0 {
		interval = 500 * time.Millisecond
	}
	clk := h.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	t := clk.NewTimer(interval)
	defer t.Stop()
	var last Status
	first, lastErr := true, ""
	for {
		st := Status{}
		st.Healthy, st.Why = h.Check(ctx)
		down, known, err := h.Interfaces()
		st.Down, st.Unknown = down, !known
		if err != nil && err.Error() != lastErr && h.Log != nil {
			h.Log.Error("reading the layer-2 pools' interfaces; counting those that failed as down", "err", err)
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		h.setGauges(st)
		if first || st.Healthy != last.Healthy || st.Unknown != last.Unknown || !slices.Equal(st.Down, last.Down) {
			h.logChange(first, last, st)
			if err := set(ctx, st); err != nil && h.Log != nil {
				h.Log.Error("publishing health", "err", err)
			} else {
				last, first = st, false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			t.Reset(interval)
		case <-h.kicks():
		}
	}
}

func (h *Health) setGauges(st Status) {
	if h.healthyGauge != nil {
		h.healthyGauge.Set(map[bool]float64{true: 1, false: 0}[st.Healthy])
	}
	if h.ifaceGauge != nil {
		watched := h.watchedNow()
		for _, name := range h.gauged {
			if _, still := slices.BinarySearch(watched, name); !still {
				h.ifaceGauge.DeleteLabelValues(name)
			}
		}
		h.gauged = watched
		for _, name := range watched {
			_, down := slices.BinarySearch(st.Down, name)
			h.ifaceGauge.WithLabelValues(name).Set(map[bool]float64{true: 0, false: 1}[down])
		}
	}
}

func (h *Health) logChange(first bool, last, st Status) {
	if h.Log == nil {
		return
	}
	if first || st.Healthy != last.Healthy {
		if st.Healthy {
			h.Log.Info("node healthy")
		} else {
			h.Log.Warn("node unhealthy: other speakers take over its addresses", "reason", st.Why)
		}
	}
	for _, name := range st.Down {
		if _, was := slices.BinarySearch(last.Down, name); !was {
			h.Log.Warn("interface down or absent: other speakers take over the layer-2 pools that name no other interface usable here", "interface", name)
		}
	}
	for _, name := range last.Down {
		if _, still := slices.BinarySearch(st.Down, name); !still {
			h.Log.Info("interface usable again", "interface", name)
		}
	}
}
