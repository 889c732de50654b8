// Package modelservertest runs a model-serving binary's modelserver.Spec for
// real in a test: a real server on 127.0.0.1:0, stopped when the test ends.
package modelservertest

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hirez-ml/hirez/platform/modelserver"
	"github.com/hirez-ml/hirez/platform/server"
)

// Run runs spec with args, its gRPC and metrics servers on loopback
// listeners, and waits (up to 60 s) for spec.Service to be SERVING, that is
// for the model to load. It returns a connection to the gRPC server and the
// metrics server's base URL. At cleanup it stops the binary as SIGTERM does
// and fails the test if Run returns an error.
func Run[B modelserver.Backend, M any](t testing.TB, spec modelserver.Spec[B, M], args ...string) (*grpc.ClientConn, string) {
	t.Helper()
	lis, mlis := listen(t), listen(t)
	spec.ServerOptions = append(spec.ServerOptions, server.WithListener(lis), server.WithMetricsListener(mlis))
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- spec.Run(ctx, append([]string{"--log-level", "warn", "--shutdown-timeout", "5s"}, args...))
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("%s: %v", spec.Name, err)
		}
	})
	hc := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(60 * time.Second); ; {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: spec.Service})
		ccancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return conn, "http://" + mlis.Addr().String()
		}
		select {
		case err := <-runErr:
			runErr <- err // for the cleanup
			t.Fatalf("%s returned before serving: %v", spec.Name, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not SERVING after 60 s: %v, %v", spec.Name, spec.Service, resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}
