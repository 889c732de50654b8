// Package client dials hirez services the same way everywhere: round-robin
// over every resolved address per call, with outlier ejection and retries
// elsewhere (BalancerName; gRPC keeps long-lived HTTP/2 connections, so a
// Kubernetes ClusterIP balances nothing; the gateway resolves a headless
// service with dns:/// and spreads calls itself), a reconnect backoff of at
// most a second, keepalive,
// big-message limits, optional TLS/mTLS, optional client-side health checking
// and metrics.
//
// Targets are gRPC target strings: "dns:///upscaler:9002", "host:port"
// (DNS), or a fixed list "static:///127.0.0.1:9102,127.0.0.1:9202" (also
// accepted without the scheme when it holds a comma) so a local demo can run
// several replicas without DNS.
//
// Nothing is injected into calls: deadlines and cancellation travel in the
// ctx the caller passes, as gRPC propagates them.
package client

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers client-side health checking for WithHealthCheck
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"

	"github.com/hirez-ml/hirez/platform/tlsconfig"
)

// StaticScheme is the target scheme of a fixed, comma-separated address list.
const StaticScheme = "static"

// Default limits, matching package server.
const (
	DefaultMaxRecvMsgSize = 32 << 20
	DefaultMaxSendMsgSize = 32 << 20
)

// TLS names the PEM files for a TLS client. All fields are optional: CA empty
// trusts the system roots; Cert and Key (together) present a client
// certificate for mTLS; ServerName overrides the name checked in the server's
// certificate (default: the target's host; for a static list, each
// address's host). The files are read again when they change, so every new
// connection uses the CA and certificate on disk at that moment
// (package tlsconfig).
type TLS struct {
	CA, Cert, Key, ServerName string
}

// Option configures Dial.
type Option func(*options)

type options struct {
	tls         *TLS
	tlsConfig   *tls.Config
	log         *zap.Logger
	recvMsgSize int
	sendMsgSize int
	healthCheck string
	metrics     *Metrics
	dialOptions []grpc.DialOption
}

// WithTLS dials with TLS from the files in t (insecure without it or WithTLSConfig).
func WithTLS(t TLS) Option { return func(o *options) { o.tls = &t } }

// WithTLSConfig dials with TLS using cfg as given.
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.tlsConfig = cfg } }

// WithLogger logs what the connection's TLS files do (reloads, replacements
// that do not load); without it nothing is logged.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithMaxMsgSize sets the largest message received and sent per call, in bytes;
// 0 keeps a default.
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

// WithHealthCheck turns on client-side health checking against service (its
// full name, e.g. "hirez.v1.UpscalerService"): round-robin skips replicas that
// report NOT_SERVING, such as one still loading its model or draining.
func WithHealthCheck(service string) Option {
	return func(o *options) { o.healthCheck = service }
}

// WithMetrics records per-call metrics into m (see NewMetrics).
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithDialOptions appends raw grpc.DialOptions.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Keepalive: ping after 30s without activity, give up after 10s more; allowed
// by the server's enforcement policy (10s minimum, pings without streams ok).
var kaParams = keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}

// Reconnect backoff: gRPC's default grows from 1 s by 1.6× to 120 s, so a
// replica that was down for a while (a restart, a rollout) waited up to
// 17 s for the gateway to try again. Replicas are few and reconnecting to
// one costs a TCP handshake, so retry every second at most: a restarted
// replica gets traffic about a second after it listens.
var connectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 20 * time.Second, // gRPC's default
}

// Dial returns a client connection to target (see the package doc). Like
// grpc.NewClient it connects lazily; Close it when done.
func Dial(target string, opts ...Option) (*grpc.ClientConn, error) {
	o := options{recvMsgSize: DefaultMaxRecvMsgSize, sendMsgSize: DefaultMaxSendMsgSize}
	for _, opt := range opts {
		opt(&o)
	}
	if !strings.Contains(target, "://") && strings.Contains(target, ",") {
		target = StaticScheme + ":///" + target
	}

	creds := insecure.NewCredentials()
	switch {
	case o.tlsConfig != nil:
		creds = credentials.NewTLS(o.tlsConfig)
	case o.tls != nil:
		var topts []tlsconfig.Option
		if o.log != nil {
			topts = append(topts, tlsconfig.WithLogger(o.log.With(zap.String("target", target))))
		}
		files, err := tlsconfig.Client(o.tls.CA, o.tls.Cert, o.tls.Key, o.tls.ServerName, topts...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", target, err)
		}
		creds = reloadingTLS{files: files}
	}

	registerBalancer()
	sc, err := serviceConfig(o.healthCheck)
	if err != nil {
		return nil, err
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(staticBuilder{}), // per ClientConn: nothing global is registered
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithDisableServiceConfig(), // ignore configs from DNS TXT records: ours is the contract
		grpc.WithKeepaliveParams(kaParams),
		grpc.WithConnectParams(connectParams),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(o.recvMsgSize),
			grpc.MaxCallSendMsgSize(o.sendMsgSize),
		),
	}
	if o.metrics != nil {
		dopts = append(dopts,
			grpc.WithChainUnaryInterceptor(o.metrics.unary),
			grpc.WithChainStreamInterceptor(o.metrics.stream))
	}
	dopts = append(dopts, o.dialOptions...)
	cc, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return cc, nil
}

func serviceConfig(healthService string) (string, error) {
	type lbConfig map[string]struct{}
	cfg := map[string]any{"loadBalancingConfig": []lbConfig{{BalancerName: {}}}}
	if healthService != "" {
		cfg["healthCheckConfig"] = map[string]string{"serviceName": healthService}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("service config: %w", err)
	}
	return string(b), nil
}

// staticBuilder resolves "static:///a:1,b:2" to the fixed endpoints a:1 and b:2.
type staticBuilder struct{}

var _ resolver.Builder = staticBuilder{}

func (staticBuilder) Scheme() string { return StaticScheme }

func (staticBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	var eps []resolver.Endpoint
	for a := range strings.SplitSeq(t.Endpoint(), ",") {
		if a = strings.TrimSpace(a); a != "" {
			// Each address is its own authority: TLS checks its host, not
			// the whole list (which is no name at all).
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				host = a
			}
			eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: host}}})
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("static resolver: no addresses in target")
	}
	if err := cc.UpdateState(resolver.State{Endpoints: eps}); err != nil {
		return nil, fmt.Errorf("static resolver: %w", err)
	}
	return staticResolver{}, nil
}

type staticResolver struct{}

func (staticResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (staticResolver) Close()                                {}
