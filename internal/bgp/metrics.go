package bgp

import (
	"context"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	sessionUpDesc = prometheus.NewDesc("herald_bgp_session_up",
		"1 while the BGP session with the peer is Established.", []string{"peer"}, nil)
	advertisedDesc = prometheus.NewDesc("herald_bgp_prefixes_advertised",
		"Prefixes this node advertises to the peer (0 while the session is down).", []string{"peer"}, nil)
	updatesSentDesc = prometheus.NewDesc("herald_bgp_updates_sent_total",
		"BGP UPDATE messages sent to the peer, from GoBGP's counters (they restart when the peer is re-created).", []string{"peer"}, nil)
)

// scrapeTimeout bounds the GoBGP query a scrape makes.
const scrapeTimeout = 2 * time.Second

// collector reads the metrics at scrape time, so an idle speaker does no
// periodic work for them.
type collector struct {
	a *Announcer

	mu      sync.Mutex
	lastErr string // the last failure to read GoBGP's counters, logged once
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionUpDesc
	ch <- advertisedDesc
	ch <- updatesSentDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	a.stateMu.Lock()
	names := make(map[netip.Addr]string, len(a.byAddr))
	for addr, name := range a.byAddr {
		names[addr] = name
	}
	for name, s := range a.sessions {
		up, adv := 0.0, 0.0
		if s.Up {
			up, adv = 1, float64(a.advertised[name])
		}
		ch <- prometheus.MustNewConstMetric(sessionUpDesc, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(advertisedDesc, prometheus.GaugeValue, adv, name)
	}
	a.stateMu.Unlock()
	if len(names) == 0 {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	err := a.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetState().GetNeighborAddress())
		if err != nil {
			return
		}
		// GoBGP lists an interface peer's address with its zone.
		name, ok := names[addr.Unmap().WithZone("")]
		if !ok {
			return
		}
		sent := p.GetState().GetMessages().GetSent().GetUpdate()
		ch <- prometheus.MustNewConstMetric(updatesSentDesc, prometheus.CounterValue, float64(sent), name)
	})
	// A failure leaves the updates counter out of this scrape; it is
	// logged when it starts or changes, not at every scrape.
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.mu.Lock()
	changed := msg != c.lastErr
	c.lastErr = msg
	c.mu.Unlock()
	if changed && msg != "" {
		a.log.Warn("reading BGP message counters for the metrics", "err", msg)
	}
}
