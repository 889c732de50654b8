// Command generator serves hirez.v1.GeneratorService: batched DCGAN inference.
// Flags and their HIREZ_* environment variables are in docs/operations.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/backends"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/batch/swap"
	"github.com/hirez-ml/hirez/platform/config"
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
	modelPath := fs.String("model", "", "safetensors file, or a directory watched for new versions (newest *.safetensors); or use --registry")
	backendName := fs.String("backend", "", fmt.Sprintf("engine backend: %v (empty: the fastest built in)", backends.Names()))
	poll := fs.Duration("model-poll-interval", 2*time.Second, "how often --model is checked for a new version")
	bcfg := batch.RegisterFlags(fs)
	follow := modelsync.RegisterFlags(fs)
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case *modelPath == "" && !follow.Enabled():
		return &config.UsageError{Err: errors.New("a model is required: --model (HIREZ_MODEL), a generator safetensors file or a directory of them, " +
			"or --registry (HIREZ_REGISTRY) with --model-name and --model-cache to follow a registry alias")}
	case *modelPath != "" && follow.Enabled():
		return &config.UsageError{Err: errors.New("--model (HIREZ_MODEL) and --registry (HIREZ_REGISTRY) are alternatives: " +
			"serve a file or directory, or follow a registry alias, not both")}
	}
	if err := follow.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	if err := bcfg.Validate(); err != nil {
		return &config.UsageError{Err: err}
	}
	if *poll <= 0 {
		return &config.UsageError{Err: fmt.Errorf("--model-poll-interval must be positive, got %v", *poll)}
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
	holder := swap.New(generate.Loader(be), generate.Release,
		swap.OnSwap(func(v *swap.Version[*generate.Model]) {
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
	if follow.Enabled() {
		syncer, err := modelsync.New(holder, follow.Options(logger))
		if err != nil {
			return &config.UsageError{Err: fmt.Errorf("--registry: %w", err)}
		}
		defer syncer.Close()
		srv.Go(syncer.Run)
	} else {
		srv.Go(func(ctx context.Context) error {
			return holder.Watch(ctx, *modelPath, *poll, func(err error) { logger.Error("model not loaded", zap.Error(err)) })
		})
	}
	logger.Info("starting", zap.String("backend", be.Name()), zap.String("model", *modelPath), zap.String("registry", follow.Registry),
		zap.Int("max_batch", bcfg.MaxBatch), zap.Duration("max_wait", bcfg.MaxWait), zap.Int("queue_size", bcfg.QueueSize))

	runErr := srv.Run(ctx)
	// The gRPC server has drained: nothing submits any more.
	closeCtx, cancel := context.WithTimeout(context.Background(), shared.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, svc.Close(closeCtx))
}
