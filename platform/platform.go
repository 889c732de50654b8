// Package platform is the base every hirez server binary is built on. Its
// subpackages hold the parts: config (shared flags with HIREZ_* environment
// fallbacks), log (the zap logger), server (gRPC server assembly and
// lifecycle), client (dialling with round-robin), fault (domain error kinds,
// no gRPC) and rpcerr (the one error → status mapping), tlsconfig (TLS/mTLS);
// for the model-serving binaries batch (dynamic batching), hotswap (the
// served model, swapped without dropping requests), modelsync (following a
// registry alias) and modelserver (their whole main, on all of these).
//
// This package holds Main, the one place a binary exits. A main is:
//
//	func main() { platform.Main(run) }
//
//	func run(ctx context.Context, args []string) error {
//		fs := flag.NewFlagSet("generator", flag.ContinueOnError)
//		shared := config.Register(fs, ":9001")
//		model := fs.String("model", "", "safetensors file")
//		if err := config.Parse(fs, args); err != nil {
//			return err
//		}
//		logger, err := log.New(shared.LogFormat, shared.LogLevel)
//		if err != nil {
//			return err
//		}
//		defer func() { _ = logger.Sync() }()
//		srv, err := server.New(*shared, logger, server.WithModelServices(svcName))
//		if err != nil {
//			return err
//		}
//		pb.RegisterGeneratorServiceServer(srv, api)
//		srv.Go(func(ctx context.Context) error { ...load *model, srv.SetServing(svcName, true)... })
//		return srv.Run(ctx)
//	}
package platform

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/hirez-ml/hirez/platform/config"
)

// Main runs run with a context cancelled on SIGTERM or SIGINT and the
// command-line arguments (without the program name), prints its error to
// stderr and exits: 0 on success or -h, 2 on a *config.UsageError (a bad flag or
// environment value), 1 otherwise.
// After the first signal the default handling is restored, so a second one
// kills the process at once.
func Main(run func(ctx context.Context, args []string) error) {
	os.Exit(Exec(run, os.Args[1:], os.Stderr))
}

// Exec is Main without the exit: it returns the exit code. Tests use it.
func Exec(run func(ctx context.Context, args []string) error, args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	err := run(ctx, args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
	if _, ok := errors.AsType[*config.UsageError](err); ok {
		return 2
	}
	return 1
}
