package servertest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const model = "test.Model" // a service that needs a model to serve

func TestStartServesOverBufconnAndTCP(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []servertest.Option
		tcp  bool
	}{{"bufconn", nil, false}, {"tcp", []servertest.Option{servertest.TCP()}, true}} {
		t.Run(tt.name, func(t *testing.T) {
			opts := append(tt.opts, servertest.WithServerOptions(server.WithModelServices(model)))
			s := servertest.Start(t, nil, opts...)
			if got := servertest.HealthOf(t, s.Dial(t), server.LivenessService); got != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("liveness over a second connection: %v", got)
			}
			if isTCP := !strings.Contains(s.Listener.Target, "bufnet"); isTCP != tt.tcp {
				t.Fatalf("target %q", s.Listener.Target)
			}
			for _, svc := range []string{"", model} {
				if got := servertest.HealthOf(t, s.Conn, svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
					t.Fatalf("health %q before SetServing: %v", svc, got)
				}
			}
			s.SetServing(model, true)
			servertest.WaitServing(t, s.Conn, "")
			if err := s.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if err := s.Stop(); err != nil {
				t.Fatalf("second Stop: %v", err)
			}
			select {
			case <-s.Done():
			default:
				t.Fatal("Done open after Stop")
			}
		})
	}
}

// Cleanups that register adds run once the server has stopped.
func TestRegisterCleanupsRunAfterTheServerStops(t *testing.T) {
	var s *servertest.Server
	t.Run("serve", func(t *testing.T) {
		s = servertest.Start(t, func(*server.Server) {
			t.Cleanup(func() {
				select {
				case <-s.Done():
				default:
					t.Error("register's cleanup ran while the server was running")
				}
			})
		})
	})
}

func TestGoReturnsRunsError(t *testing.T) {
	boom := errors.New("boom")
	r := servertest.Go(t, func(ctx context.Context) error { <-ctx.Done(); return boom })
	select {
	case <-r.Done():
		t.Fatal("returned before Cancel")
	case <-time.After(10 * time.Millisecond):
	}
	r.Cancel()
	<-r.Done()
	if err := r.Stop(); !errors.Is(err, boom) {
		t.Fatalf("Stop = %v, want %v", err, boom)
	}
}

func TestHealthOfFailsFastOnUnknownService(t *testing.T) {
	s := servertest.Start(t, nil)
	// What HealthOf would fail on: NOT_FOUND is not retried.
	_, err := healthpb.NewHealthClient(s.Conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v", err)
	}
	if got := servertest.HealthOf(t, s.Conn, server.LivenessService); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("liveness %v", got)
	}
}

func TestServeBare(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus(model, healthpb.HealthCheckResponse_SERVING)
	b := servertest.ServeBare(t, func(srv *grpc.Server) { healthpb.RegisterHealthServer(srv, hs) })
	conn := servertest.Dial(t, b.Addr)
	servertest.WaitServing(t, conn, model)
	b.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: model}); err == nil {
		t.Fatal("a call succeeded after Stop")
	}
	again := servertest.ServeBareAt(t, b.Addr, func(srv *grpc.Server) { healthpb.RegisterHealthServer(srv, hs) })
	if again.Addr != b.Addr {
		t.Fatalf("restarted on %s, want %s", again.Addr, b.Addr)
	}
	servertest.WaitServing(t, conn, model)
}

func TestFreeAddrAndBuffer(t *testing.T) {
	if a, b := servertest.FreeAddr(t), servertest.FreeAddr(t); !strings.HasPrefix(a, "127.0.0.1:") || a == "" || b == "" {
		t.Fatalf("FreeAddr: %q, %q", a, b)
	}
	var buf servertest.Buffer
	done := make(chan struct{})
	go func() { defer close(done); _, _ = buf.Write([]byte("a")) }()
	_, _ = buf.Write([]byte("a"))
	<-done
	if buf.String() != "aa" {
		t.Fatalf("Buffer %q", buf.String())
	}
}
