// Package server assembles a hirez gRPC server the same way for every binary:
// per-RPC logging, panic recovery, Prometheus metrics and the error → status
// mapping (package rpcerr) in interceptors; grpc.health.v1 and server reflection;
// optional TLS/mTLS from PEM files reloaded when they change; keepalive enforcement, message-size and per-connection
// stream limits, a send deadline per server-stream message; a /metrics HTTP server;
// and a Run that serves until the context ends or SIGTERM/SIGINT and then
// drains gracefully (health NOT_SERVING → drain delay → GracefulStop with a
// deadline → Stop).
//
// A service main builds a Server, registers its services on it (Server is a
// grpc.ServiceRegistrar), starts its background work with Go, flips health with
// SetServing once its model is loaded, and returns Run's error:
//
//	srv, err := server.New(*shared, logger, server.WithModelServices(svcName))
//	pb.RegisterGeneratorServiceServer(srv, api)
//	srv.Go(func(ctx context.Context) error { return batcher.Run(ctx) })
//	return srv.Run(ctx)
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/tlsconfig"
)

// LivenessService is the grpc.health.v1 service name that answers SERVING
// whenever the process answers at all, during the drain too: liveness probes
// check it, so that a restart never follows from a dependency's outage or a
// drain (that is readiness, the overall "" status; docs/kubernetes.md).
const LivenessService = "liveness"

// Default limits. Images are big: a batch of 256×256 float32 RGB images is
// 768 KiB per image, so the 4 MiB gRPC default is far too small.
const (
	DefaultMaxRecvMsgSize = 32 << 20
	DefaultMaxSendMsgSize = 32 << 20
	// DefaultMaxConnectionAge makes clients reconnect, and so re-resolve DNS,
	// every few minutes: without it a gateway that resolved a headless service
	// never sees upscaler replicas added by the autoscaler. Streams in flight
	// are not cut (the grace is infinite); only new RPCs move.
	DefaultMaxConnectionAge = 5 * time.Minute
)

// Keepalive: clients ping at most every 10s (client.Dial pings every 30s) even
// without active streams, so idle long-lived connections survive NATs and
// proxies; the server pings idle connections after 30s and drops dead peers
// after 10s more.
var (
	enforcement = keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}
	kaParams    = keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}
)

// Option configures New.
type Option func(*options)

type options struct {
	registry      *prometheus.Registry
	modelServices []string
	listener      net.Listener
	metricsLis    net.Listener
	recvMsgSize   int
	sendMsgSize   int
	maxConnAge    time.Duration
	grpcOptions   []grpc.ServerOption
	handlers      map[string]http.Handler
}

// WithRegistry makes the server register its metrics on reg and serve reg on
// /metrics. Without it the server makes its own registry with the Go and
// process collectors. Services add their own metrics through Registry.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(o *options) { o.registry = reg }
}

// WithModelServices declares the services that need a model: their health
// (and the overall "" health) is NOT_SERVING until SetServing(name, true).
func WithModelServices(names ...string) Option {
	return func(o *options) { o.modelServices = append(o.modelServices, names...) }
}

// WithListener makes Run serve gRPC on lis instead of listening on
// config.Server.GRPCAddr (tests pass a bufconn or 127.0.0.1:0 listener).
// Run closes it.
func WithListener(lis net.Listener) Option {
	return func(o *options) { o.listener = lis }
}

// WithMetricsListener makes Run serve HTTP /metrics on lis instead of
// config.Server.MetricsAddr. Run closes it.
func WithMetricsListener(lis net.Listener) Option {
	return func(o *options) { o.metricsLis = lis }
}

// WithMaxMsgSize sets the largest message the server receives and sends, in
// bytes (defaults DefaultMaxRecvMsgSize, DefaultMaxSendMsgSize); 0 keeps a default.
func WithMaxMsgSize(recv, send int) Option {
	return func(o *options) {
		if recv > 0 {
			o.recvMsgSize = recv
		}
		if send > 0 {
			o.sendMsgSize = send
		}
	}
}

// WithMaxConnectionAge overrides DefaultMaxConnectionAge; 0 disables it.
func WithMaxConnectionAge(d time.Duration) Option {
	return func(o *options) { o.maxConnAge = d }
}

// WithGRPCOptions appends raw grpc.ServerOptions. Interceptors added with
// grpc.ChainUnaryInterceptor run inside the platform's (after logging,
// metrics and recovery).
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return func(o *options) { o.grpcOptions = append(o.grpcOptions, opts...) }
}

// WithHTTPHandler serves h at pattern on the metrics HTTP server (e.g. pprof).
func WithHTTPHandler(pattern string, h http.Handler) Option {
	return func(o *options) {
		if o.handlers == nil {
			o.handlers = make(map[string]http.Handler)
		}
		o.handlers[pattern] = h
	}
}

// Server is a gRPC server with the hirez platform around it. Build it with New,
// register services, then call Run once.
type Server struct {
	cfg     config.Server
	log     *zap.Logger
	reg     *prometheus.Registry
	grpc    *grpc.Server
	health  *health.Server
	metrics *metrics
	opts    options

	// drain is cancelled when shutdown begins past the drain delay; it ends
	// health Watch streams, which would otherwise hold GracefulStop to its deadline.
	drain       context.Context
	cancelDrain context.CancelFunc

	sends sync.WaitGroup // sends of deadlineStreams that may outlive their RPC's handler

	mu       sync.Mutex
	needs    map[string]bool // services that need a model
	ready    map[string]bool // per-service readiness, published to health
	tasks    []func(context.Context) error
	started  bool
	stopping bool
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// New builds a Server from the shared config (validated here) and logger.
func New(cfg config.Server, logger *zap.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{
		recvMsgSize: DefaultMaxRecvMsgSize,
		sendMsgSize: DefaultMaxSendMsgSize,
		maxConnAge:  DefaultMaxConnectionAge,
	}
	for _, opt := range opts {
		opt(&o)
	}
	reg := o.registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     logger,
		reg:     reg,
		health:  health.NewServer(),
		metrics: m,
		opts:    o,
		needs:   make(map[string]bool),
		ready:   make(map[string]bool),
	}
	s.drain, s.cancelDrain = context.WithCancel(context.Background())

	kp := kaParams
	if o.maxConnAge > 0 {
		kp.MaxConnectionAge = o.maxConnAge
	}
	gopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor, s.sendDeadline),
		grpc.KeepaliveEnforcementPolicy(enforcement),
		grpc.KeepaliveParams(kp),
		grpc.MaxRecvMsgSize(o.recvMsgSize),
		grpc.MaxSendMsgSize(o.sendMsgSize),
	}
	if n := cfg.MaxConcurrentStreams; n > 0 {
		gopts = append(gopts, grpc.MaxConcurrentStreams(uint32(n)))
	}
	if cfg.TLSCert != "" {
		// Reloaded when the files change: a rotated certificate or CA
		// serves from the next connection on, without a restart.
		tc, err := tlsconfig.Server(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA, tlsconfig.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tc)))
	}
	gopts = append(gopts, o.grpcOptions...)
	s.grpc = grpc.NewServer(gopts...)

	healthgrpc.RegisterHealthServer(s.grpc, &healthService{Server: s.health, drain: s.drain})
	reflection.Register(s.grpc)
	for _, name := range o.modelServices {
		s.needs[name] = true
		s.ready[name] = false
	}
	s.publishLocked() // "" starts NOT_SERVING: Run flips it when all are ready
	return s, nil
}

// RegisterService registers a service implementation (grpc.ServiceRegistrar),
// so generated RegisterXServer(srv, impl) functions take a *Server.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}

// GRPC returns the underlying *grpc.Server.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Registry returns the Prometheus registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Logger returns the server's logger.
func (s *Server) Logger() *zap.Logger { return s.log }

// SetServing sets the health of one service (its full name, e.g.
// "hirez.v1.UpscalerService"); "" sets every service that needs a model.
// The overall "" status is SERVING when every known service is. Once shutdown
// has begun every status stays NOT_SERVING. Safe for concurrent use.
func (s *Server) SetServing(service string, serving bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if service == "" {
		for name := range s.needs {
			s.ready[name] = serving
		}
	} else {
		s.ready[service] = serving
	}
	s.publishLocked()
}

func (s *Server) publishLocked() {
	all := true
	for name, ok := range s.ready {
		s.health.SetServingStatus(name, servingStatus(ok))
		all = all && ok
	}
	s.health.SetServingStatus("", servingStatus(all && s.started && !s.stopping))
}

// Ready reports the overall "" health status: every service ready, serving
// started, shutdown not begun. It is the one readiness rule; HTTP readiness
// endpoints (the metrics port's, the gateway's) answer from it, so they fail
// with gRPC health during the drain delay.
func (s *Server) Ready() bool {
	resp, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

func servingStatus(ok bool) healthpb.HealthCheckResponse_ServingStatus {
	if ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// Go registers a background task that Run starts once serving begins and
// waits for before returning. The task's context is cancelled only after the
// gRPC server has stopped, so work that in-flight RPCs depend on (a batcher, a
// model watcher) keeps running while they drain. A task returning an error
// other than its context's stops the server and Run returns that error.
// Go must be called before Run.
func (s *Server) Go(task func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks = append(s.tasks, task)
}

// Run serves until ctx is cancelled, SIGTERM or SIGINT arrives, or a server or
// task fails; then it shuts down: health NOT_SERVING for all, DrainDelay,
// GracefulStop bounded by ShutdownTimeout then Stop, the metrics server shut
// down, tasks cancelled, and every goroutine it started waited for. It returns
// nil after a requested shutdown. After the first signal, a second one kills
// the process at once. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("server: Run called twice")
	}
	s.started = true
	tasks := s.tasks
	for name := range s.grpc.GetServiceInfo() {
		if !s.needs[name] {
			s.ready[name] = true
		}
	}
	s.mu.Unlock()

	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	context.AfterFunc(ctx, stopSignals) // restore default handling: a second signal kills

	lis, mlis, err := s.listen()
	if err != nil {
		s.cancelDrain()
		return err
	}

	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()

	// Tasks outlive ctx until the gRPC server has drained.
	taskCtx, cancelTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTasks()

	var wg sync.WaitGroup
	errc := make(chan error, 2+len(tasks)) // every goroutine sends at most once; never blocks
	wg.Go(func() {
		if err := s.grpc.Serve(lis); err != nil {
			errc <- fmt.Errorf("serve gRPC: %w", err)
		}
	})
	var httpSrv *http.Server
	if mlis != nil {
		httpSrv = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := httpSrv.Serve(mlis); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve metrics: %w", err)
			}
		})
	}
	for _, task := range tasks {
		wg.Go(func() {
			if err := task(taskCtx); err != nil && taskCtx.Err() == nil {
				errc <- fmt.Errorf("task: %w", err)
			}
		})
	}
	fields := []zap.Field{zap.Stringer("grpc.addr", lis.Addr()), zap.Bool("tls", s.cfg.TLSCert != "")}
	if mlis != nil {
		fields = append(fields, zap.Stringer("metrics.addr", mlis.Addr()))
	}
	s.log.Info("serving", fields...)

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", zap.NamedError("cause", context.Cause(ctx)))
	case runErr = <-errc:
		s.log.Error("shutting down after failure", zap.Error(runErr))
	}

	s.shutdown(runErr == nil)
	if httpSrv != nil {
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := httpSrv.Shutdown(hctx); err != nil {
			_ = httpSrv.Close()
		}
		cancel()
	}
	cancelTasks()
	wg.Wait()
	s.sends.Wait() // the gRPC server has stopped: every transport stream has ended
	s.log.Info("stopped")
	return runErr
}

func (s *Server) listen() (lis, mlis net.Listener, err error) {
	lis = s.opts.listener
	if lis == nil {
		if lis, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
			return nil, nil, fmt.Errorf("listen --grpc-addr %s: %w", s.cfg.GRPCAddr, err)
		}
	}
	mlis = s.opts.metricsLis
	if mlis == nil && s.cfg.MetricsAddr != "" {
		if mlis, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			_ = lis.Close()
			return nil, nil, fmt.Errorf("listen --metrics-addr %s: %w", s.cfg.MetricsAddr, err)
		}
	}
	return lis, mlis, nil
}

// shutdown drains the gRPC server; drainDelay is skipped after a failure.
func (s *Server) shutdown(drainDelay bool) {
	s.mu.Lock()
	s.stopping = true
	s.health.Shutdown() // everything NOT_SERVING; later SetServingStatus calls are ignored
	s.mu.Unlock()

	if d := s.cfg.DrainDelay; drainDelay && d > 0 {
		s.log.Info("draining: NOT_SERVING before refusing new RPCs", zap.Duration("delay", d))
		time.Sleep(d)
	}
	s.cancelDrain()

	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(s.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("shutdown timeout: cancelling RPCs still in flight", zap.Duration("timeout", s.cfg.ShutdownTimeout))
		s.grpc.Stop()
		<-done
	}
}

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	for pattern, h := range s.opts.handlers {
		mux.Handle(pattern, h)
	}
	return mux
}

// healthService answers LivenessService itself (SERVING while the process
// answers; health.Server would report it NOT_SERVING from Shutdown on) and
// ends Watch streams when draining begins, so clients doing client-side health
// checks do not hold GracefulStop until its deadline.
type healthService struct {
	*health.Server
	drain context.Context
}

var livenessServing = &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}

func (h *healthService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() == LivenessService {
		return livenessServing, nil
	}
	return h.Server.Check(ctx, req)
}

func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream healthgrpc.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(h.drain, cancel)()
	var err error
	if req.GetService() == LivenessService {
		if err = stream.Send(livenessServing); err == nil {
			<-ctx.Done() // the status never changes
			err = status.FromContextError(ctx.Err()).Err()
		}
	} else {
		err = h.Server.Watch(req, watchStream{Health_WatchServer: stream, ctx: ctx})
	}
	if h.drain.Err() != nil {
		return status.Error(codes.Unavailable, "server shutting down")
	}
	return err
}

type watchStream struct {
	healthgrpc.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
