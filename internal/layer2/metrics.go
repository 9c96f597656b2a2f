package layer2

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the herald_layer2_* counters, labelled by interface and
// address family ("ipv4", "ipv6").
type metrics struct {
	requests   *prometheus.CounterVec
	replies    *prometheus.CounterVec
	gratuitous *prometheus.CounterVec
	conflicts  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"iface", "family"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_layer2_requests_received_total",
			Help: "ARP requests and Neighbor Solicitations received for addresses this node announces.",
		}, labels),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_layer2_replies_sent_total",
			Help: "ARP replies and solicited Neighbor Advertisements sent.",
		}, labels),
		gratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_layer2_gratuitous_sent_total",
			Help: "Gratuitous ARP packets (request and reply forms) and unsolicited Neighbor Advertisements sent.",
		}, labels),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_layer2_conflicts_total",
			Help: "Answers from another MAC address for an address this node announces (split brain or a foreign host), after the ownership grace period.",
		}, labels),
	}
	if reg == nil {
		return m
	}
	for _, c := range []**prometheus.CounterVec{&m.requests, &m.replies, &m.gratuitous, &m.conflicts} {
		if err := reg.Register(*c); err != nil {
			// A second Announcer on the same registry shares the counters.
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					*c = existing
				}
			}
		}
	}
	return m
}

// ifaceMetrics are the counters of one responder (one interface, one family).
type ifaceMetrics struct {
	requests, replies, gratuitous, conflicts prometheus.Counter
}

func (m *metrics) forIface(iface, family string) ifaceMetrics {
	return ifaceMetrics{
		requests:   m.requests.WithLabelValues(iface, family),
		replies:    m.replies.WithLabelValues(iface, family),
		gratuitous: m.gratuitous.WithLabelValues(iface, family),
		conflicts:  m.conflicts.WithLabelValues(iface, family),
	}
}
