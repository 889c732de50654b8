// Command upscaler serves hirez.v1.UpscalerService: batched super-resolution.
// Flags and their HIREZ_* environment variables are in docs/operations.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/backends"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/log"
	"github.com/hirez-ml/hirez/platform/modelsync"
	"github.com/hirez-ml/hirez/platform/server"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
	"github.com/hirez-ml/hirez/services/upscaler/internal/grpcapi"
	"github.com/hirez-ml/hirez/services/upscaler/internal/upscale"
)

func main() { platform.Main(run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upscaler", flag.ContinueOnError)
	shared := config.Register(fs, ":9002")
	backendName := fs.String("backend", "", "engine backend: "+backends.Describe(false)+" (empty picks the default)")
	bcfg := batch.RegisterFlags(fs)
	mem := upscale.RegisterMemoryFlags(fs)
	source := modelsync.RegisterSource(fs, "an upscaler")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := source.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	if err := bcfg.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	if err := mem.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	logger, err := log.New(shared.LogFormat, shared.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	be, err := backends.Open(*backendName)
	if err != nil {
		return &config.UsageError{Err: fmt.Errorf("--backend: %w", err)}
	}
	defer be.Close()

	srv, err := server.New(*shared, logger, server.WithModelServices(grpcapi.ServiceName),
		server.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes), server.WithGRPCOptions(grpcapi.ServerOptions()...))
	if err != nil {
		return err
	}
	holder := hotswap.New(upscale.Loader(be), upscale.Release,
		hotswap.OnSwap(func(v *hotswap.Version[*upscale.Model]) {
			logger.Info("model loaded", zap.String("model", grpcapi.String(upscale.Info(v))), zap.String("path", v.Path))
			srv.SetServing(grpcapi.ServiceName, true)
		}))
	defer holder.Close()
	obs, err := batch.NewPrometheusObserver(srv.Registry(), "upscale")
	if err != nil {
		return err
	}
	svc, err := upscale.New(holder, *bcfg, grpcapi.Limits, *mem, obs)
	if err != nil {
		return err
	}
	if err := srv.Registry().Register(upscale.NewCollector(svc)); err != nil {
		return fmt.Errorf("register in-flight metrics: %w", err)
	}
	pb.RegisterUpscalerServiceServer(srv, grpcapi.New(svc))
	feeder, err := source.Feeder(holder, logger)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	defer feeder.Close()
	srv.Go(feeder.Run)
	logger.Info("starting", append(source.Fields(), zap.String("backend", be.Name()),
		zap.Int("max_batch", bcfg.MaxBatch), zap.Duration("max_wait", bcfg.MaxWait), zap.Int("queue_size", bcfg.QueueSize),
		zap.Int("tile", mem.TileSide), zap.Int64("max_inflight_bytes", mem.MaxInFlightBytes))...)

	runErr := srv.Run(ctx)
	// The gRPC server has drained: nothing submits any more.
	closeCtx, cancel := context.WithTimeout(context.Background(), shared.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, svc.Close(closeCtx))
}
