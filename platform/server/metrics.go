package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics use the names of the widely used go-grpc-prometheus middleware so
// existing dashboards and alerts work unchanged.
type metrics struct {
	handled  *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{"grpc_service", "grpc_method", "grpc_type"}
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "RPCs completed on the server, by method and status code.",
		}, append(labels, "grpc_code")),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "grpc_server_handling_seconds",
			Help: "Time from the start of an RPC to its end on the server.",
			// 1 ms .. 60 s: a health check is sub-millisecond, a 256² SRCNN
			// batch on CPU takes seconds, a server stream can last a minute.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, labels),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "grpc_server_in_flight_requests",
			Help: "RPCs started but not yet completed on the server.",
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.handled, m.seconds, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register gRPC server metrics: %w", err)
		}
	}
	return m, nil
}
