package servertest_test

import (
	"context"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
)

// A service's fixture: its implementation registered on a platform server
// that needs a model, a client on the connection, and SERVING once the model
// is in.
func Example() {
	_ = func(t *testing.T) {
		const service = "grpc.testing.TestService"
		s := servertest.Start(t, func(srv *server.Server) {
			testpb.RegisterTestServiceServer(srv, testpb.UnimplementedTestServiceServer{})
		}, servertest.WithServerOptions(server.WithModelServices(service)))
		if got := servertest.HealthOf(t, s.Conn, service); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("before the model: %v", got)
		}
		s.SetServing(service, true) // what loading the model does
		servertest.WaitServing(t, s.Conn, service)
		_, _ = testpb.NewTestServiceClient(s.Conn).EmptyCall(context.Background(), &testpb.Empty{})
	}
}

// A main run in-process on a listener it is handed, as a service's
// main_test does with its serve(ctx, args, opts...).
func ExampleGo() {
	_ = func(t *testing.T, serve func(ctx context.Context, args []string, opts ...server.Option) error) {
		lis := servertest.ListenBufconn()
		servertest.Go(t, func(ctx context.Context) error { return serve(ctx, nil, server.WithListener(lis)) })
		conn := lis.Dial(t)
		servertest.WaitServing(t, conn, "")
	}
}
