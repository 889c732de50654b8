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
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testService = "grpc.testing.TestService"

type named struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (n named) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Username: n.name}, nil
}

func call(t *testing.T, conn grpc.ClientConnInterface) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetUsername()
}

func TestStartServesOverBufconnAndTCP(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []servertest.Option
		tcp  bool
	}{{"bufconn", nil, false}, {"tcp", []servertest.Option{servertest.TCP()}, true}} {
		t.Run(tt.name, func(t *testing.T) {
			opts := append(tt.opts, servertest.WithServerOptions(server.WithModelServices(testService)))
			s := servertest.Start(t, func(srv *server.Server) { testpb.RegisterTestServiceServer(srv, named{name: tt.name}) }, opts...)
			if got := call(t, s.Conn); got != tt.name {
				t.Fatalf("call answered by %q", got)
			}
			if got := call(t, s.Dial(t)); got != tt.name {
				t.Fatalf("second connection answered by %q", got)
			}
			if isTCP := !strings.Contains(s.Listener.Target, "bufnet"); isTCP != tt.tcp {
				t.Fatalf("target %q", s.Listener.Target)
			}
			for _, svc := range []string{"", testService} {
				if got := servertest.HealthOf(t, s.Conn, svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
					t.Fatalf("health %q before SetServing: %v", svc, got)
				}
			}
			s.SetServing(testService, true)
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
	b := servertest.ServeBare(t, func(srv *grpc.Server) { testpb.RegisterTestServiceServer(srv, named{name: "bare"}) })
	conn := servertest.Dial(t, b.Addr)
	if got := call(t, conn); got != "bare" {
		t.Fatalf("answered by %q", got)
	}
	b.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{}); err == nil {
		t.Fatal("a call succeeded after Stop")
	}
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
