package batch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusObserver exports a batcher's measurements as hirez_queue_depth (a
// gauge) and hirez_batch_size (a histogram), both labelled with the stage
// ("generate", "upscale") so one process or dashboard can hold several.
type PrometheusObserver struct {
	depth prometheus.Gauge
	size  prometheus.Observer
}

var _ Observer = (*PrometheusObserver)(nil)

// Metric names, shared by every batcher.
const (
	MetricQueueDepth = "hirez_queue_depth"
	MetricBatchSize  = "hirez_batch_size"
)

// NewPrometheusObserver registers (or reuses, when already registered on reg)
// the two metrics and returns an observer for the given stage.
func NewPrometheusObserver(reg prometheus.Registerer, stage string) (*PrometheusObserver, error) {
	depth := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricQueueDepth,
		Help: "Requests waiting in the dynamic batcher's queue.",
	}, []string{"stage"})
	size := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricBatchSize,
		Help:    "Requests per batch run by the dynamic batcher.",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
	}, []string{"stage"})
	var err error
	if depth, err = register(reg, depth); err != nil {
		return nil, err
	}
	if size, err = register(reg, size); err != nil {
		return nil, err
	}
	return &PrometheusObserver{
		depth: depth.WithLabelValues(stage),
		size:  size.WithLabelValues(stage),
	}, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// QueueDepth implements Observer.
func (o *PrometheusObserver) QueueDepth(n int) { o.depth.Set(float64(n)) }

// BatchSize implements Observer.
func (o *PrometheusObserver) BatchSize(n int) { o.size.Observe(float64(n)) }
