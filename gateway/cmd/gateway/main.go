// Command gateway serves hirez.v1.GatewayService, the public front door: it
// chains the generator and the upscalers, over gRPC and as HTTP/JSON. Flags
// and their HIREZ_* environment variables are in docs/operations.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/hirez-ml/hirez/gateway/internal/admit"
	"github.com/hirez-ml/hirez/gateway/internal/downstream"
	"github.com/hirez-ml/hirez/gateway/internal/grpcapi"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/log"
	"github.com/hirez-ml/hirez/platform/server"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func main() { platform.Main(run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	shared := config.Register(fs, ":9000")
	genTarget := fs.String("generator-target", "dns:///generator:9001", "gRPC target of the generators (dns:///host:port, host:port, or a comma-separated list)")
	upTarget := fs.String("upscaler-target", "dns:///upscaler:9002", "gRPC target of the upscalers (a headless service; round-robin per call)")
	upsamplerTarget := fs.String("upsampler-target", "", "gRPC target of upscalers serving an Up Sampler model, for PIPELINE_MULTISTAGE_GAN; empty: that pipeline answers FAILED_PRECONDITION")
	singleTarget := fs.String("single-generator-target", "", "gRPC target of generators serving a DCGAN trained at the output size, for PIPELINE_SINGLE_DCGAN; empty: that pipeline answers FAILED_PRECONDITION")
	httpAddr := fs.String("http-addr", ":8080", "HTTP/JSON listen address; empty disables")
	// 30 s takes the largest body (11 MiB of base64) at 3 Mbit/s and drops a
	// client dribbling its body within half a minute; each write of a
	// response has the shared --send-timeout.
	httpRead := fs.Duration("http-read-timeout", 30*time.Second, "longest time to read one HTTP request, headers and body (then 408); 0: no bound")
	httpIdle := fs.Duration("http-idle-timeout", 60*time.Second, "longest time an HTTP keep-alive connection waits for its next request; 0: --http-read-timeout")
	admission := admit.RegisterFlags(fs)
	hops := downstream.RegisterFlags(fs)
	downTLS := client.RegisterTLSFlags(fs, "downstream", "the generators and upscalers")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := downTLS.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	if *httpRead < 0 || *httpIdle < 0 {
		return &config.UsageError{Err: fmt.Errorf("--http-read-timeout (%s) and --http-idle-timeout (%s) must not be negative",
			config.EnvName("http-read-timeout"), config.EnvName("http-idle-timeout"))}
	}
	logger, err := log.New(shared.LogFormat, shared.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	// The gateway is SERVING only while a healthy generator and a healthy
	// upscaler are reachable (the pool watches below), so a load balancer or a
	// Kubernetes readiness probe stops sending it work it can only fail.
	gwService := pb.GatewayService_ServiceDesc.ServiceName
	srv, err := server.New(*shared, logger, server.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes),
		server.WithModelServices(gwService))
	if err != nil {
		return err
	}
	cm, err := client.NewMetrics(srv.Registry())
	if err != nil {
		return err
	}
	poolReady := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hirez_gateway_pool_ready",
		Help: "1 while the pool has a healthy replica (client-side health checks), else 0; by pool.",
	}, []string{"pool"})
	if err := srv.Registry().Register(poolReady); err != nil {
		return fmt.Errorf("register pool metrics: %w", err)
	}
	dial := func(flagName, target, healthService string) (*grpc.ClientConn, error) {
		conn, err := client.Dial(target, append(downTLS.Options(logger), client.WithHealthCheck(healthService), client.WithMetrics(cm),
			client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))...)
		if err != nil {
			return nil, &config.UsageError{Err: fmt.Errorf("--%s: %w", flagName, err)}
		}
		// Connect now rather than on the first request, so health checks start early.
		conn.Connect()
		return conn, nil
	}
	genConn, err := dial("generator-target", *genTarget, "hirez.v1.GeneratorService")
	if err != nil {
		return err
	}
	defer genConn.Close()
	upConn, err := dial("upscaler-target", *upTarget, "hirez.v1.UpscalerService")
	if err != nil {
		return err
	}
	defer upConn.Close()
	pools := []downstream.Pool{{Name: "generator", Conn: genConn, Required: true}, {Name: "upscaler", Conn: upConn, Required: true}}

	// The optional pools serve the other two pipelines. They do not take
	// part in the gateway's readiness (a gateway that can run the default
	// pipeline should get traffic); their health is logged and exported as
	// hirez_gateway_pool_ready, and a request for a pool with no healthy
	// replica gets UNAVAILABLE naming the flag (downstream's InPool).
	adm := admit.New(*admission)
	if err := srv.Registry().Register(admit.NewCollector(adm)); err != nil {
		return fmt.Errorf("register admission metrics: %w", err)
	}
	opts := []pipeline.Option{pipeline.WithAdmission(adm)}
	if *upsamplerTarget != "" {
		conn, err := dial("upsampler-target", *upsamplerTarget, "hirez.v1.UpscalerService")
		if err != nil {
			return err
		}
		defer conn.Close()
		// The pool is named by its flag, not its target: statuses reach
		// public clients, and the target is an internal address.
		opts = append(opts, pipeline.WithUpsampler(downstream.NewUpscaler(conn, downstream.DefaultRetry).WithHops(*hops).
			InPool(fmt.Sprintf("the Up Sampler pool (%s)", pipeline.UpsamplerFlag))))
		pools = append(pools, downstream.Pool{Name: "upsampler", Conn: conn})
	}
	if *singleTarget != "" {
		conn, err := dial("single-generator-target", *singleTarget, "hirez.v1.GeneratorService")
		if err != nil {
			return err
		}
		defer conn.Close()
		opts = append(opts, pipeline.WithSingleGenerator(downstream.NewGenerator(conn, downstream.DefaultRetry).
			InPool(fmt.Sprintf("the single-DCGAN pool (%s)", pipeline.SingleGeneratorFlag))))
		pools = append(pools, downstream.Pool{Name: "single_generator", Conn: conn})
	}

	svc := pipeline.New(
		downstream.NewGenerator(genConn, downstream.DefaultRetry),
		downstream.NewUpscaler(upConn, downstream.DefaultRetry).WithHops(*hops),
		grpcapi.Limits, opts...)
	pb.RegisterGatewayServiceServer(srv, grpcapi.New(svc))
	// Each pool's state goes to the log and the metric; the required pools'
	// states make the gateway's readiness.
	srv.Go(func(ctx context.Context) error {
		downstream.WatchReady(ctx, pools, func(name string, ok bool) {
			v := 0.0
			if ok {
				v = 1
			}
			poolReady.WithLabelValues(name).Set(v)
			logger.Info("pool", zap.String("pool", name), zap.Bool("ready", ok))
		}, func(ok bool) {
			srv.SetServing(gwService, ok)
			logger.Info("downstreams", zap.Bool("ready", ok))
		})
		return nil
	})

	if *httpAddr != "" {
		lis, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("listen --http-addr %s: %w", *httpAddr, err)
		}
		// HTTP readiness is the gRPC server's (srv.Ready): the pools, and
		// NOT_SERVING from the first moment of shutdown, drain delay included.
		hs := grpcapi.NewHTTPServer(svc, srv.Ready, grpcapi.HTTPTimeouts{Read: *httpRead, Idle: *httpIdle, Write: shared.SendTimeout})
		srv.Go(func(ctx context.Context) error {
			logger.Info("serving HTTP/JSON", zap.Stringer("http.addr", lis.Addr()))
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(lis) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), shared.ShutdownTimeout)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				_ = hs.Close()
			}
			if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	logger.Info("starting", zap.String("generator_target", *genTarget), zap.String("upscaler_target", *upTarget),
		zap.String("upsampler_target", *upsamplerTarget), zap.String("single_generator_target", *singleTarget))
	return srv.Run(ctx)
}
