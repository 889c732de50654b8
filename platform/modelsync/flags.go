package modelsync

import (
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/config"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// Flags are the serving binaries' registry flags (docs/operations.md).
type Flags struct {
	Registry, Model, Alias, CacheDir string
	Keep                             int
	TLSCA, TLSCert, TLSKey           string
}

// RegisterFlags defines --registry, --model-name, --model-alias,
// --model-cache, --model-cache-keep and --registry-tls-{ca,cert,key} on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Registry, "registry", "", "gRPC address of the model registry (the trainer) to follow instead of --model")
	fs.StringVar(&f.Model, "model-name", "", "with --registry: the registry model to serve")
	fs.StringVar(&f.Alias, "model-alias", pb.AliasProduction, "with --registry: the alias to follow")
	fs.StringVar(&f.CacheDir, "model-cache", "", "with --registry: writable directory for downloaded versions (served while the registry is down)")
	fs.IntVar(&f.Keep, "model-cache-keep", DefaultKeep, "with --registry: versions kept in --model-cache, the served one included")
	fs.StringVar(&f.TLSCA, "registry-tls-ca", "", "verify the registry's TLS certificate against this PEM CA (enables TLS)")
	fs.StringVar(&f.TLSCert, "registry-tls-cert", "", "client certificate (PEM) for mTLS to the registry (enables TLS)")
	fs.StringVar(&f.TLSKey, "registry-tls-key", "", "private key (PEM) of --registry-tls-cert")
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
		for _, fv := range []struct{ name, value string }{{"model-name", f.Model}, {"model-cache", f.CacheDir},
			{"registry-tls-ca", f.TLSCA}, {"registry-tls-cert", f.TLSCert}, {"registry-tls-key", f.TLSKey}} {
			if fv.value != "" {
				errs = append(errs, fmt.Errorf("%s is set but --registry is not", flagName(fv.name)))
			}
		}
		return errors.Join(errs...)
	}
	if f.Model == "" {
		errs = append(errs, fmt.Errorf("%s is required with --registry: the registry model to serve", flagName("model-name")))
	} else if !pb.ValidName(f.Model) {
		errs = append(errs, fmt.Errorf("%s %q: use lower-case letters, digits and '-', starting with a letter", flagName("model-name"), f.Model))
	}
	if !pb.ValidName(f.Alias) {
		errs = append(errs, fmt.Errorf("%s %q: use lower-case letters, digits and '-', starting with a letter", flagName("model-alias"), f.Alias))
	}
	if f.CacheDir == "" {
		errs = append(errs, fmt.Errorf("%s is required with --registry: a writable directory that keeps downloaded versions", flagName("model-cache")))
	}
	if f.Keep < 1 {
		errs = append(errs, fmt.Errorf("%s %d: keep at least 1 version", flagName("model-cache-keep"), f.Keep))
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%s and %s must be given together", flagName("registry-tls-cert"), flagName("registry-tls-key")))
	}
	return errors.Join(errs...)
}

// Options turns valid flags into Syncer options.
func (f *Flags) Options(logger *zap.Logger) Options {
	o := Options{Registry: f.Registry, Model: f.Model, Alias: f.Alias, CacheDir: f.CacheDir, Keep: f.Keep, Logger: logger}
	if f.TLSCA != "" || f.TLSCert != "" {
		o.Dial = append(o.Dial, client.WithTLS(client.TLS{CA: f.TLSCA, Cert: f.TLSCert, Key: f.TLSKey}))
	}
	return o
}
