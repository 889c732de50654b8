package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metrics are client-side per-call metrics, shared by every connection dialled
// WithMetrics(m): make one per registry.
type Metrics struct {
	handled *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// NewMetrics registers grpc_client_handled_total and
// grpc_client_handling_seconds (by service, method, type; code on the counter)
// on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"grpc_service", "grpc_method", "grpc_type"}
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_client_handled_total",
			Help: "RPCs completed by the client, by method and status code.",
		}, append(labels, "grpc_code")),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_client_handling_seconds",
			Help:    "Time from the start of an RPC to its end on the client.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, labels),
	}
	for _, c := range []prometheus.Collector{m.handled, m.seconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register gRPC client metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(fullMethod, typ string, start time.Time, err error) {
	svc, meth := "unknown", strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndex(meth, "/"); i >= 0 {
		svc, meth = meth[:i], meth[i+1:]
	}
	m.handled.WithLabelValues(svc, meth, typ, status.Code(err).String()).Inc()
	m.seconds.WithLabelValues(svc, meth, typ).Observe(time.Since(start).Seconds())
}

func (m *Metrics) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	m.observe(method, "unary", start, err)
	return err
}

func (m *Metrics) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	typ := "server_stream"
	switch {
	case desc.ClientStreams && desc.ServerStreams:
		typ = "bidi_stream"
	case desc.ClientStreams:
		typ = "client_stream"
	}
	start := time.Now()
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		m.observe(method, typ, start, err)
		return nil, err
	}
	return &observedStream{ClientStream: cs, single: !desc.ServerStreams, done: func(err error) { m.observe(method, typ, start, err) }}, nil
}

// observedStream records the call when the stream ends, seen as RecvMsg
// returning an error (io.EOF is a clean end), or, when the server sends a
// single reply, as that reply arriving.
type observedStream struct {
	grpc.ClientStream
	single bool
	once   sync.Once
	done   func(error)
}

func (s *observedStream) RecvMsg(msg any) error {
	err := s.ClientStream.RecvMsg(msg)
	if err != nil || s.single {
		s.once.Do(func() {
			if errors.Is(err, io.EOF) {
				s.done(nil)
			} else {
				s.done(err)
			}
		})
	}
	return err
}
