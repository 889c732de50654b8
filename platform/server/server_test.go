package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/rpcerr"
	"github.com/hirez-ml/hirez/platform/server"
	"github.com/hirez-ml/hirez/platform/servertest"
	"github.com/hirez-ml/hirez/platform/tlsconfig/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testService = "grpc.testing.TestService"

// testServer answers by the request's ResponseStatus message: "panic" panics,
// "invalid" returns a fault; otherwise it echoes its name. Its stream sends one
// message, then waits for release (or the RPC's end) and sends another; asked
// for ResponseParameters, it sends messages of the first one's size until a
// send fails, and reports that error on sendErr.
type testServer struct {
	testpb.UnimplementedTestServiceServer
	name    string
	started chan struct{} // receives when a stream has sent its first message
	release chan struct{} // closed to let streams finish
	sendErr chan error    // receives the error that ended a flooding stream
}

func newTestServer(name string) *testServer {
	return &testServer{name: name, started: make(chan struct{}, 16), release: make(chan struct{}), sendErr: make(chan error, 16)}
}

func (s *testServer) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	switch req.GetResponseStatus().GetMessage() {
	case "panic":
		panic("handler bug")
	case "invalid":
		return nil, fault.Invalid("seed must be positive")
	}
	return &testpb.SimpleResponse{Username: s.name}, nil
}

func (s *testServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	if p := req.GetResponseParameters(); len(p) > 0 {
		body := make([]byte, p[0].GetSize())
		for {
			if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
				s.sendErr <- err
				return err
			}
		}
	}
	if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
		return err
	}
	s.started <- struct{}{}
	select {
	case <-s.release:
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	return stream.Send(&testpb.StreamingOutputCallResponse{})
}

// harness is a server with the test service registered, and that service.
type harness struct {
	*servertest.Server
	impl *testServer
}

// serve runs a server with a testServer called name registered until the
// test ends; see servertest.Start.
func serve(t *testing.T, name string, opts ...servertest.Option) *harness {
	t.Helper()
	impl := newTestServer(name)
	s := servertest.Start(t, func(srv *server.Server) { testpb.RegisterTestServiceServer(srv, impl) }, opts...)
	return &harness{Server: s, impl: impl}
}

// start runs a server on a bufconn listener with the test service registered
// and returns it with a connection to it made by client.Dial (h.Conn).
func start(t *testing.T, cfg config.Server, logger *zap.Logger, opts ...server.Option) *harness {
	t.Helper()
	return serve(t, "bufnet", servertest.WithConfig(cfg), servertest.WithLogger(logger), servertest.WithServerOptions(opts...))
}

func TestHealth(t *testing.T) {
	h := start(t, servertest.Config(), zaptest.NewLogger(t), server.WithModelServices(testService))
	check := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		return servertest.HealthOf(t, h.Conn, svc)
	}
	tests := []struct {
		name    string
		set     *bool
		overall healthpb.HealthCheckResponse_ServingStatus
		svc     healthpb.HealthCheckResponse_ServingStatus
	}{
		{"before the model", nil, healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_NOT_SERVING},
		{"model loaded", new(true), healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_SERVING},
		{"model lost", new(false), healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_NOT_SERVING},
		{"model back", new(true), healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_SERVING},
	}
	for _, tt := range tests {
		if tt.set != nil {
			h.SetServing(testService, *tt.set)
		}
		if got := check(""); got != tt.overall {
			t.Errorf("%s: overall %v, want %v", tt.name, got, tt.overall)
		}
		if got := check(testService); got != tt.svc {
			t.Errorf("%s: %s %v, want %v", tt.name, testService, got, tt.svc)
		}
	}
	// Services that need no model serve from the start.
	if got := check("grpc.health.v1.Health"); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health service: %v", got)
	}
	if _, err := healthpb.NewHealthClient(h.Conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v, want NotFound", err)
	}
}

func TestReflection(t *testing.T) {
	h := start(t, servertest.Config(), zaptest.NewLogger(t))
	stream, err := reflectionpb.NewServerReflectionClient(h.Conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		got[s.GetName()] = true
	}
	for _, want := range []string{testService, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !got[want] {
			t.Errorf("reflection does not list %s (got %v)", want, got)
		}
	}
}

func TestErrorsAndPanics(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	h := start(t, servertest.Config(), zap.New(core))
	tc := testpb.NewTestServiceClient(h.Conn)
	tests := []struct {
		msg    string
		code   codes.Code
		reason string
	}{
		{"", codes.OK, ""},
		{"panic", codes.Internal, ""},
		{"invalid", codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"", codes.OK, ""}, // still serving after the panic
	}
	for _, tt := range tests {
		_, err := tc.UnaryCall(t.Context(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Message: tt.msg}})
		if got := status.Code(err); got != tt.code {
			t.Errorf("%q: code %v, want %v (%v)", tt.msg, got, tt.code, err)
		}
		if got := rpcerr.Reason(err); got != tt.reason {
			t.Errorf("%q: reason %q, want %q", tt.msg, got, tt.reason)
		}
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}

	rpcs := logs.FilterMessage("rpc").FilterField(zap.String("grpc.method", "/grpc.testing.TestService/UnaryCall")).All()
	if len(rpcs) != len(tests) {
		t.Fatalf("%d rpc log lines, want one per RPC (%d)", len(rpcs), len(tests))
	}
	p := rpcs[1]
	fields := p.ContextMap()
	if p.Level != zap.ErrorLevel || fields["grpc.code"] != "Internal" || fields["panic"] != "handler bug" ||
		!strings.Contains(fields["stack"].(string), "UnaryCall") || fields["peer.address"] == nil || fields["duration"] == nil {
		t.Errorf("panic log line: %v %v", p.Level, fields)
	}
	if inv := rpcs[2].ContextMap(); rpcs[2].Level != zap.InfoLevel || inv["grpc.code"] != "InvalidArgument" || inv["error"] != "seed must be positive" {
		t.Errorf("invalid log line: %v %v", rpcs[2].Level, inv)
	}
}

func TestMetrics(t *testing.T) {
	mlis := servertest.ListenTCP(t)
	h := start(t, servertest.Config(), zaptest.NewLogger(t), server.WithMetricsListener(mlis))
	tc := testpb.NewTestServiceClient(h.Conn)
	if _, err := tc.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	_, _ = tc.UnaryCall(t.Context(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Message: "invalid"}})

	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+mlis.Addr().String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="UnaryCall",grpc_service="grpc.testing.TestService",grpc_type="unary"} 1`,
		`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="UnaryCall",grpc_service="grpc.testing.TestService",grpc_type="unary"} 1`,
		`grpc_server_handling_seconds_count{grpc_method="UnaryCall",grpc_service="grpc.testing.TestService",grpc_type="unary"} 2`,
		`grpc_server_in_flight_requests{grpc_method="UnaryCall",grpc_service="grpc.testing.TestService",grpc_type="unary"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestTLS(t *testing.T) {
	pki := tlstest.New(t)
	tests := []struct {
		name     string
		clientCA string
		creds    *client.TLS // nil: plaintext
		ok       bool
	}{
		{"tls", "", &client.TLS{CA: pki.CA}, true},
		{"tls, client trusts another CA", "", &client.TLS{CA: pki.OtherCA}, false},
		{"tls, plaintext client", "", nil, false},
		{"mtls", pki.CA, &client.TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}, true},
		{"mtls, client without certificate", pki.CA, &client.TLS{CA: pki.CA}, false},
		{"mtls, client cert from another CA", pki.OtherCA, &client.TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := servertest.Config()
			cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = pki.ServerCert, pki.ServerKey, tt.clientCA
			h := serve(t, "tls", servertest.TCP(), servertest.WithConfig(cfg))
			var opts []client.Option
			if tt.creds != nil {
				opts = append(opts, client.WithTLS(*tt.creds))
			}
			conn := h.Dial(t, opts...)
			callCtx, callCancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer callCancel()
			resp, err := testpb.NewTestServiceClient(conn).UnaryCall(callCtx, &testpb.SimpleRequest{})
			if tt.ok && (err != nil || resp.GetUsername() != "tls") {
				t.Fatalf("call failed: %v", err)
			}
			if !tt.ok && status.Code(err) != codes.Unavailable {
				t.Fatalf("call: %v, want Unavailable (refused handshake)", err)
			}
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		release  bool // let the in-flight stream finish
		wantCode codes.Code
	}{
		{"in-flight stream finishes within the deadline", 5 * time.Second, true, codes.OK},
		{"stream cut at the deadline", 200 * time.Millisecond, false, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := servertest.Config()
			cfg.ShutdownTimeout = tt.timeout
			h := start(t, cfg, zaptest.NewLogger(t))
			stream, err := testpb.NewTestServiceClient(h.Conn).StreamingOutputCall(t.Context(), &testpb.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			<-h.impl.started

			began := time.Now()
			h.Cancel()
			// Draining: health says NOT_SERVING before the stream is done.
			waitFor(t, func() bool {
				resp, err := healthpb.NewHealthClient(h.Conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
				return err != nil || resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
			})
			if tt.release {
				close(h.impl.release)
			}
			var code codes.Code
			for {
				if _, err := stream.Recv(); err != nil {
					if !errors.Is(err, io.EOF) {
						code = status.Code(err)
					}
					break
				}
			}
			if err := h.Stop(); err != nil {
				t.Fatal(err)
			}
			took := time.Since(began)
			if code != tt.wantCode {
				t.Errorf("stream ended with %v, want %v", code, tt.wantCode)
			}
			if !tt.release && (took < tt.timeout || took > tt.timeout+3*time.Second) {
				t.Errorf("hard stop after %v, want about %v", took, tt.timeout)
			}
			if tt.release && took > 3*time.Second {
				t.Errorf("graceful stop took %v", took)
			}
		})
	}
}

// A health Watch stream (a monitoring client, grpc-go's client-side health
// check) lasts as long as the server; draining must end it rather than let it
// hold GracefulStop to its deadline.
func TestShutdownEndsHealthWatch(t *testing.T) {
	cfg := servertest.Config()
	cfg.ShutdownTimeout = 10 * time.Second
	h := start(t, cfg, zaptest.NewLogger(t))
	watch, err := healthpb.NewHealthClient(h.Conn).Watch(t.Context(), &healthpb.HealthCheckRequest{Service: testService})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch update: %v, %v", resp, err)
	}
	began := time.Now()
	h.Cancel()
	var last healthpb.HealthCheckResponse_ServingStatus
	for {
		resp, err := watch.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("watch ended with %v, want Unavailable", err)
			}
			break
		}
		last = resp.GetStatus()
	}
	if last != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("last watch update %v, want NOT_SERVING before the end", last)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("shutdown took %v: health Watch held GracefulStop", took)
	}
}

func TestTaskFailureStopsServer(t *testing.T) {
	lis := servertest.ListenBufconn()
	srv, err := server.New(servertest.Config(), zaptest.NewLogger(t), server.WithListener(lis))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("model watcher died")
	var wg sync.WaitGroup
	wg.Add(1)
	srv.Go(func(ctx context.Context) error {
		defer wg.Done()
		<-ctx.Done() // a well-behaved task: ends when cancelled
		return ctx.Err()
	})
	srv.Go(func(context.Context) error { return boom })
	if err := srv.Run(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want %v", err, boom)
	}
	wg.Wait()
	if err := srv.Run(t.Context()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := servertest.Config()
	cfg.TLSCert = "cert.pem" // without a key
	if _, err := server.New(cfg, zaptest.NewLogger(t)); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("New: %v, want an error naming --tls-key", err)
	}
	cfg = servertest.Config()
	cfg.TLSCert, cfg.TLSKey = "/nonexistent/cert.pem", "/nonexistent/key.pem"
	if _, err := server.New(cfg, zaptest.NewLogger(t)); err == nil {
		t.Error("New with missing TLS files succeeded")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Liveness is the process only: SERVING before the model is loaded and through
// the drain delay, while readiness (gRPC "" and the metrics port's /readyz)
// follows the services and fails as soon as shutdown begins.
func TestLivenessIsTheProcessReadinessFollowsDrain(t *testing.T) {
	mlis := servertest.ListenTCP(t)
	cfg := servertest.Config()
	cfg.DrainDelay = 3 * time.Second // the checks below take milliseconds
	h := start(t, cfg, zaptest.NewLogger(t), server.WithModelServices(testService), server.WithMetricsListener(mlis))
	check := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		return servertest.HealthOf(t, h.Conn, svc)
	}
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get("http://" + mlis.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	const serving, notServing = healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING
	type want struct {
		live, ready     healthpb.HealthCheckResponse_ServingStatus
		healthz, readyz int
		readyFn         bool
	}
	expect := func(stage string, w want) {
		t.Helper()
		if got := check(server.LivenessService); got != w.live {
			t.Errorf("%s: liveness %v, want %v", stage, got, w.live)
		}
		if got := check(""); got != w.ready {
			t.Errorf("%s: readiness %v, want %v", stage, got, w.ready)
		}
		if got := h.Ready(); got != w.readyFn {
			t.Errorf("%s: Ready() = %v, want %v", stage, got, w.readyFn)
		}
		if got := get("/healthz"); got != w.healthz {
			t.Errorf("%s: /healthz %d, want %d", stage, got, w.healthz)
		}
		if got := get("/readyz"); got != w.readyz {
			t.Errorf("%s: /readyz %d, want %d", stage, got, w.readyz)
		}
	}
	expect("before the model", want{serving, notServing, 200, 503, false})
	h.SetServing(testService, true)
	expect("ready", want{serving, serving, 200, 200, true})

	h.Cancel()
	waitFor(t, func() bool { return !h.Ready() })
	expect("draining", want{serving, notServing, 200, 503, false})
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// startTCP runs a server with the test service on loopback TCP and returns it
// with its address; Run's error is checked at cleanup.
func startTCP(t *testing.T, cfg config.Server) (*testServer, string) {
	t.Helper()
	h := serve(t, "tcp", servertest.TCP(), servertest.WithConfig(cfg))
	return h.impl, h.Listener.Target
}

// A client that never reads a server stream: the send that finds its window
// full fails after --send-timeout with DEADLINE_EXCEEDED, the handler ends,
// and the client, once it reads, gets what was sent and then that status.
func TestSendTimeoutEndsStreamOfSilentClient(t *testing.T) {
	cfg := servertest.Config()
	cfg.SendTimeout = 200 * time.Millisecond
	impl, addr := startTCP(t, cfg)
	// A fixed 64 KiB window (no BDP growth): 256 KiB messages fill it at once.
	conn, err := client.Dial(addr, client.WithDialOptions(grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(t.Context(), &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 256 << 10}},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-impl.sendErr:
		if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "--send-timeout") {
			t.Fatalf("send to a silent client: %v; want DEADLINE_EXCEEDED naming --send-timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler is still blocked sending to a client that does not read")
	}
	var n int
	for {
		_, err := stream.Recv()
		if err == nil {
			n++
			continue
		}
		if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "--send-timeout") {
			t.Fatalf("client's stream ended with %v after %d messages; want DEADLINE_EXCEEDED naming --send-timeout", err, n)
		}
		break
	}
	if n == 0 {
		t.Error("the client got none of the messages sent before the deadline")
	}
}

// --max-concurrent-streams bounds the RPCs of one connection: with 2 open,
// a third waits (here until its deadline) and its handler never starts.
func TestMaxConcurrentStreamsPerConnection(t *testing.T) {
	cfg := servertest.Config()
	cfg.MaxConcurrentStreams = 2
	impl, addr := startTCP(t, cfg)
	conn, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := testpb.NewTestServiceClient(conn)
	for range 2 {
		stream, err := tc.StreamingOutputCall(t.Context(), &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		<-impl.started
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	third, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err == nil {
		_, err = third.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("third stream on the connection: %v; want it to wait for a slot (DEADLINE_EXCEEDED)", err)
	}
	select {
	case <-impl.started:
		t.Error("the third stream's handler ran past the limit of 2")
	default:
	}
	close(impl.release)
}

// Keepalive enforcement: a peer that pings more often than the policy's
// MinTime (a raw HTTP/2 client: grpc-go clients cannot ping that fast) is sent
// GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and dropped, so pings cannot keep
// a server busy.
func TestKeepaliveEnforcementDropsPingFlood(t *testing.T) {
	_, addr := startTCP(t, servertest.Config())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_ = fr.WritePing(false, [8]byte{byte(i)}) // the server may have closed already
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound on failure, not a threshold
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended (%v) without GOAWAY too_many_pings", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
				t.Fatalf("GOAWAY %v %q; want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
			}
			return
		}
	}
}
