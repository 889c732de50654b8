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
	"sync/atomic"
	"time"

	"go.uber.org/zap"

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
	httpAddr := fs.String("http-addr", ":8080", "HTTP/JSON listen address; empty disables")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	logger, err := log.New(shared.LogFormat, shared.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	srv, err := server.New(*shared, logger, server.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))
	if err != nil {
		return err
	}
	cm, err := client.NewMetrics(srv.Registry())
	if err != nil {
		return err
	}
	genConn, err := client.Dial(*genTarget, client.WithHealthCheck("hirez.v1.GeneratorService"), client.WithMetrics(cm),
		client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))
	if err != nil {
		return &config.UsageError{Err: fmt.Errorf("--generator-target: %w", err)}
	}
	defer genConn.Close()
	upConn, err := client.Dial(*upTarget, client.WithHealthCheck("hirez.v1.UpscalerService"), client.WithMetrics(cm),
		client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))
	if err != nil {
		return &config.UsageError{Err: fmt.Errorf("--upscaler-target: %w", err)}
	}
	defer upConn.Close()
	// Connect now rather than on the first request, so health checks start early.
	genConn.Connect()
	upConn.Connect()

	svc := pipeline.New(
		downstream.NewGenerator(genConn, downstream.DefaultRetry),
		downstream.NewUpscaler(upConn, downstream.DefaultRetry),
		grpcapi.Limits)
	pb.RegisterGatewayServiceServer(srv, grpcapi.New(svc))

	if *httpAddr != "" {
		lis, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("listen --http-addr %s: %w", *httpAddr, err)
		}
		var serving atomic.Bool
		hs := &http.Server{Handler: grpcapi.HTTP(svc, serving.Load), ReadHeaderTimeout: 10 * time.Second}
		srv.Go(func(ctx context.Context) error {
			serving.Store(true)
			logger.Info("serving HTTP/JSON", zap.Stringer("http.addr", lis.Addr()))
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(lis) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			serving.Store(false)
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
	logger.Info("starting", zap.String("generator_target", *genTarget), zap.String("upscaler_target", *upTarget))
	return srv.Run(ctx)
}
