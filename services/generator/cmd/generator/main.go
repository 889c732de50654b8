// Command generator serves hirez.v1.GeneratorService: batched DCGAN inference.
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
	"github.com/hirez-ml/hirez/services/generator/internal/generate"
	"github.com/hirez-ml/hirez/services/generator/internal/grpcapi"
)

func main() { platform.Main(run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("generator", flag.ContinueOnError)
	shared := config.Register(fs, ":9001")
	backendName := fs.String("backend", "", "engine backend: "+backends.Describe(false)+" (empty picks the default)")
	bcfg := batch.RegisterFlags(fs)
	source := modelsync.RegisterSource(fs, "a generator")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := source.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	if err := bcfg.Validate(); err != nil {
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
		server.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes))
	if err != nil {
		return err
	}
	holder := hotswap.New(generate.Loader(be), generate.Release,
		hotswap.OnSwap(func(v *hotswap.Version[*generate.Model]) {
			logger.Info("model loaded", zap.String("model", grpcapi.String(generate.Info(v))), zap.String("path", v.Path))
			srv.SetServing(grpcapi.ServiceName, true)
		}))
	defer holder.Close()
	obs, err := batch.NewPrometheusObserver(srv.Registry(), "generate")
	if err != nil {
		return err
	}
	svc, err := generate.New(holder, *bcfg, generate.Limits{MaxCount: pb.MaxStreamGenerateCount, MaxLatentDim: pb.MaxLatentDim}, obs)
	if err != nil {
		return err
	}
	pb.RegisterGeneratorServiceServer(srv, grpcapi.New(svc))
	feeder, err := source.Feeder(holder, logger)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	defer feeder.Close()
	srv.Go(feeder.Run)
	logger.Info("starting", append(source.Fields(), zap.String("backend", be.Name()),
		zap.Int("max_batch", bcfg.MaxBatch), zap.Duration("max_wait", bcfg.MaxWait), zap.Int("queue_size", bcfg.QueueSize))...)

	runErr := srv.Run(ctx)
	// The gRPC server has drained: nothing submits any more.
	closeCtx, cancel := context.WithTimeout(context.Background(), shared.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, svc.Close(closeCtx))
}
