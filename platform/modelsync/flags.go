package modelsync

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/config"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
)

// Flags are the serving binaries' registry flags (docs/operations.md).
type Flags struct {
	Registry, Model, Alias, CacheDir string
	Keep                             int
	TLS                              *client.TLSFlags // --registry-tls-{ca,cert,key}
}

// RegisterFlags defines --registry, --model-name, --model-alias,
// --model-cache, --model-cache-keep and --registry-tls-{ca,cert,key} on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Registry, "registry", "", "gRPC address of the model registry (the trainer) to follow instead of --model")
	fs.StringVar(&f.Model, "model-name", "", "with --registry: the registry model to serve")
	fs.StringVar(&f.Alias, "model-alias", limits.AliasProduction, "with --registry: the alias to follow")
	fs.StringVar(&f.CacheDir, "model-cache", "", "with --registry: writable directory for downloaded versions (served while the registry is down)")
	fs.IntVar(&f.Keep, "model-cache-keep", DefaultKeep, "with --registry: versions kept in --model-cache, the served one included")
	f.TLS = client.RegisterTLSFlags(fs, "registry", "the registry")
	return f
}

// Enabled reports whether --registry was given.
func (f *Flags) Enabled() bool { return f.Registry != "" }

func flagName(n string) string { return fmt.Sprintf("--%s (%s)", n, config.EnvName(n)) }

// Validate checks the flags; errors name the flag and its variable. Without
// --registry, the other registry flags must not be set either.
func (f *Flags) Validate() error {
	var errs []error
	if !f.Enabled() {
		for _, fv := range []struct{ name, value string }{{"model-name", f.Model}, {"model-cache", f.CacheDir}} {
			if fv.value != "" {
				errs = append(errs, fmt.Errorf("%s is set but --registry is not", flagName(fv.name)))
			}
		}
		if f.TLS.Enabled() {
			errs = append(errs, fmt.Errorf("%s are set but --registry is not", strings.Join(f.TLS.Names(), ", ")))
		}
		return errors.Join(errs...)
	}
	if f.Model == "" {
		errs = append(errs, fmt.Errorf("%s is required with --registry: the registry model to serve", flagName("model-name")))
	} else if err := limits.CheckName(flagName("model-name"), f.Model); err != nil {
		errs = append(errs, err)
	}
	if err := limits.CheckName(flagName("model-alias"), f.Alias); err != nil {
		errs = append(errs, err)
	}
	if f.CacheDir == "" {
		errs = append(errs, fmt.Errorf("%s is required with --registry: a writable directory that keeps downloaded versions", flagName("model-cache")))
	}
	if f.Keep < 1 {
		errs = append(errs, fmt.Errorf("%s %d: keep at least 1 version", flagName("model-cache-keep"), f.Keep))
	}
	if err := f.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Options turns valid flags into Syncer options.
func (f *Flags) Options(logger *zap.Logger) Options {
	o := Options{Registry: f.Registry, Model: f.Model, Alias: f.Alias, CacheDir: f.CacheDir, Keep: f.Keep, Logger: logger}
	o.Dial = append(o.Dial, f.TLS.Options(logger)...)
	return o
}
