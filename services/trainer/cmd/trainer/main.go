// Command trainer serves hirez.v1.TrainerService and hirez.v1.ModelRegistryService:
// it runs training jobs on the engine one at a time, persists them in SQLite in
// --data-dir, and keeps the model registry the serving services pull from.
// See docs/training-service.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/platform/log"
	"github.com/hirez-ml/hirez/platform/server"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"

	"github.com/hirez-ml/hirez/services/trainer/internal/grpcapi"
	"github.com/hirez-ml/hirez/services/trainer/internal/job"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
	"github.com/hirez-ml/hirez/services/trainer/internal/runner"
	"github.com/hirez-ml/hirez/services/trainer/internal/store"
)

func main() { platform.Main(run) }

func run(ctx context.Context, args []string) error { return serve(ctx, args) }

// flags are the trainer's own flags (docs/operations.md).
type flags struct {
	shared         *config.Server
	dataDir        string
	tokenFile      string
	identities     string
	insecureWrites bool
	backend        string
	threads        int
	autoResume     bool
	keepVersions   int
}

func parseFlags(args []string) (*flags, error) {
	fs := flag.NewFlagSet("trainer", flag.ContinueOnError)
	f := &flags{shared: config.Register(fs, ":9003")}
	fs.StringVar(&f.dataDir, "data-dir", "/var/lib/hirez", "job database, checkpoints, datasets/ and the model registry")
	fs.StringVar(&f.tokenFile, "admin-token-file", "", "file holding the bearer token required for create/cancel/resume/promote/set-alias/delete-version")
	fs.StringVar(&f.identities, "admin-identities", "", "comma-separated client-certificate identities (CN, DNS or URI SAN) allowed to write (with --tls-client-ca)")
	fs.BoolVar(&f.insecureWrites, "insecure-allow-writes", false, "allow writes without any credentials when no token or identities are configured (development only)")
	fs.StringVar(&f.backend, "backend", "", "engine backend for jobs that name none: "+choose.Describe(true))
	fs.IntVar(&f.threads, "threads", 0, "CPU threads of the cpu backend (0 = one per CPU)")
	fs.BoolVar(&f.autoResume, "auto-resume", false, "on start, queue jobs that a crash interrupted again")
	fs.IntVar(&f.keepVersions, "keep-versions", 0, "versions of a model kept when a new one is published; older ones without an alias are deleted (0 = keep all)")
	if err := config.Parse(fs, args); err != nil {
		return nil, err
	}
	var errs []error
	if f.dataDir == "" {
		errs = append(errs, fmt.Errorf("--data-dir (%s) must not be empty", config.EnvName("data-dir")))
	}
	if f.backend != "" {
		if why := choose.Unavailable(f.backend); why != "" {
			errs = append(errs, fmt.Errorf("--backend (%s): %s", config.EnvName("backend"), why))
		}
	}
	if f.keepVersions < 0 {
		errs = append(errs, fmt.Errorf("--keep-versions (%s) must not be negative (0 keeps every version)", config.EnvName("keep-versions")))
	}
	if f.threads < 0 {
		errs = append(errs, fmt.Errorf("--threads (%s) must not be negative", config.EnvName("threads")))
	}
	if f.identities != "" && f.shared.TLSClientCA == "" {
		errs = append(errs, fmt.Errorf("--admin-identities (%s) needs --tls-client-ca so that client certificates are verified", config.EnvName("admin-identities")))
	}
	if len(errs) > 0 {
		return nil, &config.UsageError{Err: errors.Join(errs...)}
	}
	return f, nil
}

func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &config.UsageError{Err: fmt.Errorf("--admin-token-file (%s): %w", config.EnvName("admin-token-file"), err)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", &config.UsageError{Err: fmt.Errorf("--admin-token-file (%s): %s is empty", config.EnvName("admin-token-file"), path)}
	}
	return tok, nil
}

// serve runs the trainer; tests pass a listener through opts.
func serve(ctx context.Context, args []string, opts ...server.Option) error {
	f, err := parseFlags(args)
	if err != nil {
		return err
	}
	token, err := readToken(f.tokenFile)
	if err != nil {
		return err
	}
	logger, err := log.New(f.shared.LogFormat, f.shared.LogLevel, zap.Fields(zap.String("service", "trainer")))
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	srv, err := server.New(*f.shared, logger, append([]server.Option{
		server.WithModelServices(pb.TrainerService_ServiceDesc.ServiceName, pb.ModelRegistryService_ServiceDesc.ServiceName),
		server.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes),
	}, opts...)...)
	if err != nil {
		return err
	}

	dataDir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return err
	}
	for _, d := range []string{dataDir, filepath.Join(dataDir, "jobs"), filepath.Join(dataDir, "datasets")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
	}
	db, err := store.Open(ctx, dataDir)
	if err != nil {
		return err
	}
	defer db.Close()

	eng := &runner.Engine{DefaultBackend: f.backend, Threads: f.threads}
	evalBackend, err := eng.Open("")
	if err != nil {
		return err
	}
	reg, err := registry.New(db, dataDir, registry.NewEngineEvaluator(evalBackend))
	if err != nil {
		return err
	}
	env := job.Env{DataDir: dataDir, Unavailable: func(name string) string { return choose.UnavailableFor(name, true) }}
	jobs := job.NewManager(job.NewStore(db), reg, eng, env, logger)
	reg.Retain(jobs.StartsFrom, f.keepVersions)
	reg.SetLogger(logger.Named("registry"))
	if err := jobs.Recover(ctx, f.autoResume); err != nil {
		return err
	}

	auth := grpcapi.Auth{Token: token, InsecureWrites: f.insecureWrites}
	if f.identities != "" {
		for _, id := range strings.Split(f.identities, ",") {
			if id = strings.TrimSpace(id); id != "" {
				auth.Identities = append(auth.Identities, id)
			}
		}
	}
	if token == "" && len(auth.Identities) == 0 {
		if f.insecureWrites {
			logger.Warn("--insecure-allow-writes: anyone can create jobs and promote models")
		} else {
			logger.Warn("no --admin-token-file or --admin-identities: writes are refused, reads are open")
		}
	}
	pb.RegisterTrainerServiceServer(srv, grpcapi.NewTrainer(jobs, auth))
	pb.RegisterModelRegistryServiceServer(srv, grpcapi.NewRegistry(reg, auth))

	// Shutdown begins when ctx ends: stop the running job (it becomes
	// INTERRUPTED after checkpointing) and end the watch streams so that the
	// graceful stop is not held up by them.
	stopDrain := context.AfterFunc(ctx, func() {
		jobs.Drain()
		reg.Close()
	})
	defer stopDrain()
	srv.Go(jobs.Run)
	srv.Go(func(context.Context) error {
		srv.SetServing("", true) // the data dir is open and recovered
		logger.Info("trainer ready", zap.String("data_dir", dataDir), zap.Strings("backends", choose.Names()))
		return nil
	})
	return srv.Run(ctx)
}
