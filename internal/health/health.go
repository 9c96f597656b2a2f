package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	LinkUp   func() (bool, error)
	Interval time.Duration // 0: 500 ms
	Client   *http.Client
	Log      *slog.Logger
	Clock    clock.Clock // paces Run; nil is the real clock

	// kube-proxy health is only enforced once it has answered: a cluster
	// without kube-proxy (a replacement such as Cilium's) never answers,
	// and must not leave every node unhealthy.
	proxySeen    bool
	proxyAbsent  bool
	healthyGauge prometheus.Gauge
	proxyGauge   prometheus.Gauge
}

// Register exports the health metrics.
func (h *Health) Register(reg prometheus.Registerer) {
	h.healthyGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_speaker_healthy", Help: "1 while this node considers itself able to forward (interface up, kube-proxy healthy)."})
	h.proxyGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_speaker_kube_proxy_check_active", Help: "1 once kube-proxy's health endpoint has answered and is being enforced; 0 while it never answered (check off)."})
	if reg != nil {
		reg.MustRegister(h.healthyGauge, h.proxyGauge)
	}
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

// Run checks every Interval and publishes changes through set (the
// memberlist metadata), so other speakers stop counting this node within
// one gossip round.
func (h *Health) Run(ctx context.Context, set func(context.Context, bool) error) {
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
	last, first := true, true
	for {
		ok, why := h.Check(ctx)
		if h.healthyGauge != nil {
			h.healthyGauge.Set(map[bool]float64{true: 1, false: 0}[ok])
		}
		if ok != last || first {
			if h.Log != nil {
				if ok {
					h.Log.Info("node healthy")
				} else {
					h.Log.Warn("node unhealthy: other speakers take over its addresses", "reason", why)
				}
			}
			if err := set(ctx, ok); err != nil && h.Log != nil {
				h.Log.Error("publishing health", "err", err)
			} else {
				last, first = ok, false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			t.Reset(interval)
		}
	}
}
