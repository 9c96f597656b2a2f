package controller

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	poolAddresses *prometheus.GaugeVec
	allocations   *prometheus.CounterVec
	allocErrors   *prometheus.CounterVec
	releases      prometheus.Counter
	syncs         *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		poolAddresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_pool_addresses",
			Help: "Addresses of an IPPool by family and state (total, allocated, free). IPv6 totals beyond 2^53 lose precision.",
		}, []string{"pool", "family", "state"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_allocations_total",
			Help: "Addresses newly assigned to Services, by pool.",
		}, []string{"pool"}),
		allocErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_allocation_errors_total",
			Help: "Failed allocations by reason (PoolExhausted, AddressInUse, ...).",
		}, []string{"reason"}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_releases_total",
			Help: "Service assignments released (Service deleted, no longer a LoadBalancer of ours).",
		}),
		syncs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_controller_sync_seconds",
			Help:    "Time to reconcile one work item, API writes included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.poolAddresses, m.allocations, m.allocErrors, m.releases, m.syncs)
	}
	return m
}
