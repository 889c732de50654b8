package admit

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the admission state, exported by the gateway.
const (
	MetricAdmitted      = "hirez_gateway_admitted_requests"
	MetricChainsRunning = "hirez_gateway_chains_running"
	MetricChainsWaiting = "hirez_gateway_chains_waiting"
	MetricBacklog       = "hirez_gateway_backlog_images"
	MetricBytes         = "hirez_gateway_inflight_bytes"
	MetricBytesLimit    = "hirez_gateway_inflight_bytes_limit"
	MetricShed          = "hirez_gateway_shed_total"
	MetricChainSeconds  = "hirez_gateway_chain_seconds_average"
	MetricForecastSkew  = "hirez_gateway_admission_forecast_skew"
)

// Collector exports a Controller's Stats at each scrape. It reads the
// accounting once per scrape rather than updating gauges on every grant,
// so admission's hot path does not change for metrics.
type Collector struct {
	c *Controller

	admitted, running, waiting, backlog, bytes, limit, shed, chainSecs, skew *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of c's state; register it on the
// server's registry.
func NewCollector(c *Controller) *Collector {
	return &Collector{
		c:         c,
		admitted:  prometheus.NewDesc(MetricAdmitted, "GenerateImages requests admitted and not yet finished.", nil, nil),
		running:   prometheus.NewDesc(MetricChainsRunning, "Chains (one image's upscaling passes, encoding and send) holding a grant (at most --max-chains).", nil, nil),
		waiting:   prometheus.NewDesc(MetricChainsWaiting, "Chains of admitted requests queued for a grant.", nil, nil),
		backlog:   prometheus.NewDesc(MetricBacklog, "Images admitted and not yet sent (a request that would pass --max-backlog is shed).", nil, nil),
		bytes:     prometheus.NewDesc(MetricBytes, "Accounted bytes of the chains holding a grant.", nil, nil),
		limit:     prometheus.NewDesc(MetricBytesLimit, "The bound on the accounted bytes in flight (--max-inflight-bytes).", nil, nil),
		shed:      prometheus.NewDesc(MetricShed, "Requests refused at the door with RESOURCE_EXHAUSTED, by ErrorInfo reason.", []string{"reason"}, nil),
		chainSecs: prometheus.NewDesc(MetricChainSeconds, "Moving average of a chain's time from grant to sent image, the admission forecast's unit (0 until measured).", nil, nil),
		skew:      prometheus.NewDesc(MetricForecastSkew, "Moving average of finished requests' real time over the admission forecast made for them; forecasts are scaled by it (1 until measured).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.admitted, m.running, m.waiting, m.backlog, m.bytes, m.limit, m.shed, m.chainSecs, m.skew} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Collector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(m.admitted, float64(s.Admitted))
	gauge(m.running, float64(s.Running))
	gauge(m.waiting, float64(s.Waiting))
	gauge(m.backlog, float64(s.Backlog))
	gauge(m.bytes, float64(s.Bytes))
	gauge(m.limit, float64(m.c.Limits().MaxBytes))
	gauge(m.chainSecs, s.ChainSeconds)
	gauge(m.skew, s.ForecastSkew)
	// Both reasons always, so that a rate() over a fresh gateway has a series.
	for _, reason := range []string{ReasonBusy, ReasonDeadline} {
		ch <- prometheus.MustNewConstMetric(m.shed, prometheus.CounterValue, float64(s.ShedByReason[reason]), reason)
	}
}
