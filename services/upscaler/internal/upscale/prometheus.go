package upscale

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the in-flight budget, exported by the upscaler.
const (
	MetricInFlightBytes      = "hirez_upscaler_inflight_bytes"
	MetricInFlightBytesLimit = "hirez_upscaler_inflight_bytes_limit"
	MetricInFlightWaiters    = "hirez_upscaler_inflight_waiters"
)

// Collector exports a Service's in-flight budget (InFlight) at each scrape,
// so the budget's lock is taken per scrape, not per request.
type Collector struct {
	s                     *Service
	bytes, limit, waiters *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of s's budget; register it on the
// server's registry.
func NewCollector(s *Service) *Collector {
	return &Collector{
		s:       s,
		bytes:   prometheus.NewDesc(MetricInFlightBytes, "Image bytes (inputs, outputs, tiles) of the requests admitted and being served.", nil, nil),
		limit:   prometheus.NewDesc(MetricInFlightBytesLimit, "The in-flight budget (--max-inflight-bytes).", nil, nil),
		waiters: prometheus.NewDesc(MetricInFlightWaiters, "Requests waiting for room in the in-flight budget.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.bytes
	ch <- m.limit
	ch <- m.waiters
}

// Collect implements prometheus.Collector.
func (m *Collector) Collect(ch chan<- prometheus.Metric) {
	f := m.s.InFlight()
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, float64(f.Bytes))
	ch <- prometheus.MustNewConstMetric(m.limit, prometheus.GaugeValue, float64(f.Limit))
	ch <- prometheus.MustNewConstMetric(m.waiters, prometheus.GaugeValue, float64(f.Waiting))
}
