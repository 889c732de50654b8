package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/rpcerr"
)

// The boundary: one interceptor per RPC kind does metrics, recovery, the
// error → status mapping and the single log line, in that nesting, so the log
// and the metrics see the code the client sees.

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	done := s.begin(info.FullMethod, "unary")
	var resp any
	err, panicked := recovered(func() (err error) {
		resp, err = handler(ctx, req)
		return err
	})
	mapped := s.end(ctx, info.FullMethod, "unary", done, err, panicked)
	if mapped != nil {
		return nil, mapped
	}
	return resp, nil
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	typ := streamType(info)
	done := s.begin(info.FullMethod, typ)
	err, panicked := recovered(func() error { return handler(srv, ss) })
	return s.end(ss.Context(), info.FullMethod, typ, done, err, panicked)
}

func streamType(info *grpc.StreamServerInfo) string {
	switch {
	case info.IsClientStream && info.IsServerStream:
		return "bidi_stream"
	case info.IsClientStream:
		return "client_stream"
	default:
		return "server_stream"
	}
}

// panicked describes a recovered panic; nil when none.
type panicked struct {
	value any
	stack string
}

// recovered runs fn, turning a panic into an Internal error: one bad request
// must not take down a server holding a loaded model and other clients' RPCs.
func recovered(fn func() error) (err error, p *panicked) {
	defer func() {
		if r := recover(); r != nil {
			p = &panicked{value: r, stack: string(debug.Stack())}
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return fn(), nil
}

type rpcStart struct {
	start   time.Time
	service string
	method  string
}

func (s *Server) begin(fullMethod, typ string) rpcStart {
	svc, m := splitMethod(fullMethod)
	s.metrics.inFlight.WithLabelValues(svc, m, typ).Inc()
	return rpcStart{start: time.Now(), service: svc, method: m}
}

func (s *Server) end(ctx context.Context, fullMethod, typ string, b rpcStart, err error, p *panicked) error {
	d := time.Since(b.start)
	mapped := rpcerr.Error(err)
	code := status.Code(mapped)
	s.metrics.inFlight.WithLabelValues(b.service, b.method, typ).Dec()
	s.metrics.handled.WithLabelValues(b.service, b.method, typ, code.String()).Inc()
	s.metrics.seconds.WithLabelValues(b.service, b.method, typ).Observe(d.Seconds())

	lvl := logLevel(fullMethod, code)
	if p != nil {
		lvl = zapcore.ErrorLevel
	}
	if ce := s.log.Check(lvl, "rpc"); ce != nil {
		fields := []zap.Field{
			zap.String("grpc.method", fullMethod),
			zap.String("grpc.code", code.String()),
			zap.Duration("duration", d),
		}
		if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
			fields = append(fields, zap.String("peer.address", pr.Addr.String()))
		}
		if err != nil {
			fields = append(fields, zap.Error(err)) // the error before mapping: more detail
			if d := rpcerr.Detail(err); d != "" {
				fields = append(fields, zap.String("error.detail", d)) // what the client was not shown
			}
		}
		if p != nil {
			fields = append(fields, zap.String("panic", fmt.Sprint(p.value)), zap.String("stack", p.stack))
		}
		ce.Write(fields...)
	}
	return mapped
}

// logLevel: probes and reflection are debug noise; caller mistakes are info;
// transient trouble is warn; our own bugs are error.
func logLevel(fullMethod string, code codes.Code) zapcore.Level {
	if strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.") {
		if code == codes.OK || code == codes.Canceled || code == codes.Unavailable {
			return zapcore.DebugLevel
		}
	}
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return zapcore.ErrorLevel
	case codes.DeadlineExceeded, codes.ResourceExhausted, codes.Unavailable, codes.Aborted:
		return zapcore.WarnLevel
	default:
		return zapcore.InfoLevel
	}
}

// splitMethod splits "/pkg.Service/Method" into "pkg.Service" and "Method".
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
