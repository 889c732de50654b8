package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/hirez-ml/hirez/platform/client"
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

// replica runs a platform server on 127.0.0.1 answering with name.
func replica(t *testing.T, name string, needsModel bool) (addr string, srv *server.Server) {
	t.Helper()
	var opts []server.Option
	if needsModel {
		opts = append(opts, server.WithModelServices(testService))
	}
	s := servertest.Start(t, func(srv *server.Server) { testpb.RegisterTestServiceServer(srv, named{name: name}) },
		servertest.TCP(), servertest.WithServerOptions(opts...))
	return s.Listener.Target, s.Server
}

func callNames(t *testing.T, conn *grpc.ClientConn, n int) map[string]int {
	t.Helper()
	tc := testpb.NewTestServiceClient(conn)
	got := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got[resp.GetUsername()]++
	}
	return got
}

func TestRoundRobinStatic(t *testing.T) {
	a, _ := replica(t, "a", false)
	b, _ := replica(t, "b", false)
	for _, target := range []string{"static:///" + a + "," + b, a + ", " + b} {
		t.Run(target, func(t *testing.T) {
			conn, err := client.Dial(target)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Wait until both subchannels are up, then calls alternate.
			deadline := time.Now().Add(5 * time.Second)
			for len(callNames(t, conn, 2)) < 2 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := callNames(t, conn, 10); got["a"] != 5 || got["b"] != 5 {
				t.Errorf("calls per replica %v, want 5 each", got)
			}
		})
	}
}

func TestHealthCheckSkipsNotServing(t *testing.T) {
	a, _ := replica(t, "a", false)
	b, srvB := replica(t, "b", true) // loading its model
	conn, err := client.Dial("static:///"+a+","+b, client.WithHealthCheck(testService))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := callNames(t, conn, 6); got["a"] != 6 {
		t.Fatalf("calls per replica %v: a NOT_SERVING replica got traffic", got)
	}
	srvB.SetServing(testService, true)
	deadline := time.Now().Add(5 * time.Second)
	for callNames(t, conn, 2)["b"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("replica b never got traffic after SERVING")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	a, _ := replica(t, "a", false)
	reg := prometheus.NewRegistry()
	m, err := client.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(a, client.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	callNames(t, conn, 3)
	want := `
# HELP grpc_client_handled_total RPCs completed by the client, by method and status code.
# TYPE grpc_client_handled_total counter
grpc_client_handled_total{grpc_code="OK",grpc_method="UnaryCall",grpc_service="grpc.testing.TestService",grpc_type="unary"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "grpc_client_handled_total"); err != nil {
		t.Error(err)
	}
}

func TestDialErrors(t *testing.T) {
	for _, tt := range []struct {
		target string
		opts   []client.Option
	}{
		{"static:///", nil},
		{"127.0.0.1:1", []client.Option{client.WithTLS(client.TLS{CA: "/nonexistent/ca.pem"})}},
		{"127.0.0.1:1", []client.Option{client.WithTLS(client.TLS{Cert: "only-cert.pem"})}},
	} {
		conn, err := client.Dial(tt.target, tt.opts...)
		if err == nil {
			// NewClient builds the resolver lazily; the error shows on first use.
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			_, err = testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
			cancel()
			_ = conn.Close()
		}
		if err == nil {
			t.Errorf("Dial(%q) and a call succeeded", tt.target)
		}
	}
}
