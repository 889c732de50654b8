// Package modelserver is the main of a binary that serves one hot-swapped
// model with dynamic batching: the generator and the upscaler. Run does what
// both do, in this order:
//
//  1. flags: the shared ones (config.Register), --backend, the batching
//     flags (batch.RegisterFlags), the model source (modelsync.RegisterSource:
//     --model or --registry and theirs) and the service's own (Spec.Flags);
//     parse, then validate source, batching and own flags, each a
//     *config.UsageError (exit status 2);
//  2. the logger; the backend (Spec.OpenBackend; a bad --backend is a usage
//     error naming the flag);
//  3. the server (server.New with the service as a model service and the
//     API's message size), and the holder (hotswap.New with Spec.Load on the
//     backend) whose every swap logs "model loaded" and flips the service's
//     health to SERVING;
//  4. the batcher's metrics, labelled stage=Spec.Stage
//     (batch.NewPrometheusObserver), and the service itself (Spec.Start
//     registers it on the server);
//  5. the model feed (modelsync.Source.Feeder) as a server task, the
//     "starting" log line, and server.Run;
//  6. once the gRPC server has drained, the service's Close, bounded by
//     --shutdown-timeout; then the feeder, the holder (the last version is
//     released once no request uses it), the backend and the logger.
//
// A main keeps only what is its own:
//
//	func main() {
//		platform.Main(modelserver.Spec[backend.Backend, *generate.Model]{
//			Name: "generator", GRPCAddr: ":9001", What: "a generator",
//			Service: grpcapi.ServiceName, Stage: "generate",
//			Backends: choose.Describe(false), OpenBackend: choose.Open,
//			Load: generate.Loader, Release: generate.Release,
//			Describe: func(v *hotswap.Version[*generate.Model]) string { ... },
//			Start: func(d modelserver.Deps[*generate.Model]) (modelserver.Service, error) { ... },
//		}.Run)
//	}
package modelserver

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/log"
	"github.com/hirez-ml/hirez/platform/modelsync"
	"github.com/hirez-ml/hirez/platform/server"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// Backend is what Run needs of an engine backend (the engine's
// backend.Backend has it; the platform does not import the engine).
type Backend interface {
	Name() string
	Close() error
}

// Service is the served service, closed once the gRPC server has drained
// (its batchers finish what they hold).
type Service interface {
	Close(ctx context.Context) error
}

// Deps is what Run hands Spec.Start.
type Deps[M any] struct {
	Server   *server.Server     // register the gRPC service and any metrics here
	Holder   *hotswap.Holder[M] // the served model, fed by --model or --registry
	Batch    batch.Config       // from --max-batch, --max-wait, --queue-size
	Observer batch.Observer     // the batcher's Prometheus metrics, labelled with Spec.Stage
	Logger   *zap.Logger
}

// Spec is one model-serving binary: what is its own. Fields are required
// unless they say otherwise.
type Spec[B Backend, M any] struct {
	// Name is the binary's name (its flag set's).
	Name string
	// GRPCAddr is the default of --grpc-addr (":9001").
	GRPCAddr string
	// What names the kind of model in the model source's messages ("a generator").
	What string
	// Service is the full name of the gRPC service that needs the model
	// ("hirez.v1.GeneratorService"): NOT_SERVING until a version is loaded.
	Service string
	// Stage labels the batcher's metrics (batch.NewPrometheusObserver: "generate").
	Stage string

	// Backends describes the --backend choices for its usage line, and
	// OpenBackend opens one by name ("" the default): choose.Describe(false)
	// and choose.Open.
	Backends    string
	OpenBackend func(name string) (B, error)

	// Load builds a served value on the backend from a weights file's
	// content; Release frees one that no request uses any more (nil: nothing to free).
	Load    func(be B) func(ctx context.Context, path string, data []byte) (M, error)
	Release func(M)
	// Describe says which model a version is, for the "model loaded" log line.
	Describe func(*hotswap.Version[M]) string

	// Flags defines the service's own flags (optional); Validate checks them
	// once parsed (optional; its error is a usage error), and Fields adds
	// them to the "starting" log line (optional).
	Flags    func(fs *flag.FlagSet)
	Validate func() error
	Fields   func() []zap.Field

	// ServerOptions are added to the server's, and LogOptions to the
	// logger's (optional; tests pass server.WithListener and a zap core that
	// records).
	ServerOptions []server.Option
	LogOptions    []zap.Option

	// Start builds the service on the holder and registers it on the server.
	Start func(Deps[M]) (Service, error)
}

// Run runs the binary with the command-line arguments args until ctx ends
// (platform.Main(spec.Run)); see the package doc.
func (s Spec[B, M]) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet(s.Name, flag.ContinueOnError)
	shared := config.Register(fs, s.GRPCAddr)
	backendName := fs.String("backend", "", "engine backend: "+s.Backends+" (empty picks the default)")
	bcfg := batch.RegisterFlags(fs)
	if s.Flags != nil {
		s.Flags(fs)
	}
	source := modelsync.RegisterSource(fs, s.What)
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	for _, validate := range []func() error{source.Validate, bcfg.Validate, s.Validate} {
		if validate == nil {
			continue
		}
		if err := validate(); err != nil {
			return &config.UsageError{Err: err}
		}
	}
	logger, err := log.New(shared.LogFormat, shared.LogLevel, s.LogOptions...)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	be, err := s.OpenBackend(*backendName)
	if err != nil {
		return &config.UsageError{Err: fmt.Errorf("--backend: %w", err)}
	}
	defer be.Close()

	opts := append([]server.Option{server.WithModelServices(s.Service),
		server.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes)}, s.ServerOptions...)
	srv, err := server.New(*shared, logger, opts...)
	if err != nil {
		return err
	}
	holder := hotswap.New(s.Load(be), s.Release,
		hotswap.OnSwap(func(v *hotswap.Version[M]) {
			logger.Info("model loaded", zap.String("model", s.Describe(v)), zap.String("path", v.Path))
			srv.SetServing(s.Service, true)
		}))
	defer holder.Close()
	obs, err := batch.NewPrometheusObserver(srv.Registry(), s.Stage)
	if err != nil {
		return err
	}
	svc, err := s.Start(Deps[M]{Server: srv, Holder: holder, Batch: *bcfg, Observer: obs, Logger: logger})
	if err != nil {
		return err
	}
	feeder, err := source.Feeder(holder, logger)
	if err != nil {
		return &config.UsageError{Err: err}
	}
	defer feeder.Close()
	srv.Go(feeder.Run)
	fields := append(source.Fields(), zap.String("backend", be.Name()),
		zap.Int("max_batch", bcfg.MaxBatch), zap.Duration("max_wait", bcfg.MaxWait), zap.Int("queue_size", bcfg.QueueSize))
	if s.Fields != nil {
		fields = append(fields, s.Fields()...)
	}
	logger.Info("starting", fields...)

	runErr := srv.Run(ctx)
	// The gRPC server has drained: nothing submits any more.
	closeCtx, cancel := context.WithTimeout(context.Background(), shared.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, svc.Close(closeCtx))
}
