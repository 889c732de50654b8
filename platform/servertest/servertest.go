// Package servertest runs real gRPC servers inside a test: a platform
// server.Server on an in-memory (bufconn) or loopback TCP listener with the
// test's services registered, a client connection to it, and everything
// stopped through t.Cleanup, Run's error included, which fails the test.
//
// A service's fixture is one call:
//
//	s := servertest.Start(t, func(srv *server.Server) {
//		pb.RegisterGeneratorServiceServer(srv, grpcapi.New(svc))
//	}, servertest.WithServerOptions(server.WithModelServices(grpcapi.ServiceName)))
//	client := pb.NewGeneratorServiceClient(s.Conn)
//	servertest.WaitServing(t, s.Conn, grpcapi.ServiceName)
//
// The pieces serve tests that run the rest themselves: a main run in-process
// (ListenBufconn or ListenTCP, Go, Listener.Dial), a built binary (FreeAddr,
// Dial, Buffer for its output), or a bare grpc.Server without the platform's
// interceptors and health (ServeBare, ServeBareAt).
//
// Every wait here (a health check to answer, SERVING, Run to return) is
// bounded by Timeout: a bound on a failing test, never what a passing one
// waits for.
package servertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/server"
)

// Timeout bounds every wait of this package.
const Timeout = 30 * time.Second

// Config is the server configuration tests start from: the defaults, no
// metrics listener, and a 5 s shutdown timeout.
func Config() config.Server {
	c := config.Defaults("127.0.0.1:0")
	c.MetricsAddr = ""
	c.ShutdownTimeout = 5 * time.Second
	return c
}

// Listener is a listener for a server under test and the way to reach it.
// Hand it to server.WithListener; the server closes it.
type Listener struct {
	net.Listener
	// Target is what a client dials: host:port over TCP,
	// "passthrough:///bufnet" over bufconn (which needs Dial's dialer).
	Target string
	dial   []grpc.DialOption
}

// ListenBufconn is an in-memory listener (a 1 MiB bufconn).
func ListenBufconn() *Listener {
	lis := bufconn.Listen(1 << 20)
	return &Listener{Listener: lis, Target: "passthrough:///bufnet", dial: []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}}
}

// ListenTCP is a real listener on a free loopback port.
func ListenTCP(t testing.TB) *Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &Listener{Listener: lis, Target: lis.Addr().String()}
}

// Dial is a client.Dial connection to l (plaintext unless opts say TLS),
// closed at the test's end.
func (l *Listener) Dial(t testing.TB, opts ...client.Option) *grpc.ClientConn {
	t.Helper()
	if len(l.dial) > 0 {
		opts = append([]client.Option{client.WithDialOptions(l.dial...)}, opts...)
	}
	return Dial(t, l.Target, opts...)
}

// Dial is client.Dial(target, opts...), closed at the test's end.
func Dial(t testing.TB, target string, opts ...client.Option) *grpc.ClientConn {
	t.Helper()
	conn, err := client.Dial(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// FreeAddr is a loopback address that was free a moment ago: for a binary's
// --grpc-addr, or an address where nothing listens.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// Running is a function run by Go until Stop or the test's end.
type Running struct {
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // run's; set before done closes
	once    sync.Once
	stopErr error
	checked atomic.Bool // the test took the error from Stop
}

// Go runs run in a goroutine with a context that Cancel, Stop or the test's
// end cancels. At cleanup it waits for run to return; an error (or run not
// returning within Timeout) fails t unless the test already took it from
// Stop.
func Go(t testing.TB, run func(ctx context.Context) error) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); r.err = run(ctx) }()
	t.Cleanup(func() {
		if err := r.wait(); err != nil && !r.checked.Load() {
			t.Errorf("run: %v", err)
		}
	})
	return r
}

// Cancel cancels run's context, as SIGTERM does a process's, and returns at
// once.
func (r *Running) Cancel() { r.cancel() }

// Done is closed once run has returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// Stop cancels run's context and returns its error once it has returned, or
// an error when it has not within Timeout. Later calls return the same.
func (r *Running) Stop() error {
	r.checked.Store(true)
	return r.wait()
}

func (r *Running) wait() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
			r.stopErr = r.err
		case <-time.After(Timeout):
			r.stopErr = fmt.Errorf("did not return within %v of being cancelled", Timeout)
		}
	})
	return r.stopErr
}

// Option configures Start.
type Option func(*options)

type options struct {
	cfg    *config.Server
	log    *zap.Logger
	tcp    bool
	server []server.Option
	dial   []client.Option
}

// WithConfig serves with cfg instead of Config().
func WithConfig(cfg config.Server) Option { return func(o *options) { o.cfg = &cfg } }

// WithLogger logs to l instead of the test's log.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// TCP serves on loopback TCP instead of bufconn.
func TCP() Option { return func(o *options) { o.tcp = true } }

// WithServerOptions adds options to server.New (after its listener).
func WithServerOptions(opts ...server.Option) Option {
	return func(o *options) { o.server = append(o.server, opts...) }
}

// WithClientOptions adds options to the client.Dial of Server.Conn.
func WithClientOptions(opts ...client.Option) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// Server is a platform server started by Start, with a connection to it.
type Server struct {
	*server.Server
	*Running // Run's
	// Listener is where it serves; Listener.Dial makes more connections.
	Listener *Listener
	// Conn is a client.Dial connection to it (with WithClientOptions).
	Conn *grpc.ClientConn
}

// Start runs a platform server until the test ends: server.New on a bufconn
// (or, with TCP, loopback) listener, register to add the test's services,
// Run, and a connection to it. Cleanups that register adds run after the
// server has stopped, so they may free what its handlers use.
func Start(t testing.TB, register func(*server.Server), opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg := Config()
	if o.cfg != nil {
		cfg = *o.cfg
	}
	if o.log == nil {
		o.log = zaptest.NewLogger(t)
	}
	lis := ListenBufconn()
	if o.tcp {
		lis = ListenTCP(t)
	}
	srv, err := server.New(cfg, o.log, append([]server.Option{server.WithListener(lis)}, o.server...)...)
	if err != nil {
		_ = lis.Close()
		t.Fatal(err)
	}
	if register != nil {
		register(srv)
	}
	s := &Server{Server: srv, Listener: lis}
	s.Running = Go(t, srv.Run)
	s.Conn = lis.Dial(t, o.dial...) // closes before Run is stopped
	return s
}

// Dial is another connection to s, closed at the test's end.
func (s *Server) Dial(t testing.TB, opts ...client.Option) *grpc.ClientConn {
	t.Helper()
	return s.Listener.Dial(t, opts...)
}

// Bare is a bare grpc.Server (none of the platform's interceptors, health
// or drain) on loopback TCP.
type Bare struct {
	// Addr is its host:port.
	Addr string
	srv  *grpc.Server
	done chan struct{}
}

// ServeBare serves a grpc.Server with opts, its services added by register,
// on a free loopback port until Stop or the test's end.
func ServeBare(t testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) *Bare {
	t.Helper()
	return ServeBareAt(t, "127.0.0.1:0", register, opts...)
}

// ServeBareAt is ServeBare on addr: a restart on the address a stopped
// server had (whose port may take a moment to be free) or, with port 0, a
// free one.
func ServeBareAt(t testing.TB, addr string, register func(*grpc.Server), opts ...grpc.ServerOption) *Bare {
	t.Helper()
	var lis net.Listener
	var err error
	for range 50 {
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &Bare{Addr: lis.Addr().String(), srv: grpc.NewServer(opts...), done: make(chan struct{})}
	register(b.srv)
	go func() { defer close(b.done); _ = b.srv.Serve(lis) }()
	t.Cleanup(b.Stop)
	return b
}

// Stop stops the server at once (grpc.Server.Stop), closing its
// connections, and waits for Serve to return. It may be called again.
func (b *Bare) Stop() { b.srv.Stop(); <-b.done }

// HealthOf is conn's health status of service. A Check that fails
// UNAVAILABLE or DEADLINE_EXCEEDED (the server still starting) is tried again
// for up to Timeout; any other failure fails t at once.
func HealthOf(t testing.TB, conn grpc.ClientConnInterface, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(Timeout)
	for {
		st, err := check(hc, service)
		if err == nil {
			return st
		}
		if c := status.Code(err); (c != codes.Unavailable && c != codes.DeadlineExceeded) || time.Now().After(deadline) {
			t.Fatalf("health check of %q: %v", service, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitServing waits up to Timeout for conn's health of service to read
// SERVING, and fails t with the last status or error otherwise.
func WaitServing(t testing.TB, conn grpc.ClientConnInterface, service string) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(Timeout)
	for {
		st, err := check(hc, service)
		if err == nil && st == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not SERVING after %v (last: %v, %v)", service, Timeout, st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func check(hc healthpb.HealthClient, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return resp.GetStatus(), err
}

// Buffer is a bytes.Buffer safe for concurrent use: a process's output,
// written while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is all that was written.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
