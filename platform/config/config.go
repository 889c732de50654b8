// Package config reads the flags every hirez server shares (docs/operations.md)
// and gives every flag of a FlagSet, shared or service-specific, an environment
// fallback: HIREZ_ + the flag name in upper case with '-' → '_'. A flag given on
// the command line wins over the environment, which wins over the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/platform/log"
)

// EnvPrefix is prepended to every flag's environment variable.
const EnvPrefix = "HIREZ_"

// Server holds the flags shared by every hirez server.
type Server struct {
	GRPCAddr        string        // --grpc-addr: where the gRPC server listens
	MetricsAddr     string        // --metrics-addr: Prometheus /metrics; empty disables
	LogFormat       string        // --log-format: json or console
	LogLevel        string        // --log-level: debug, info, warn, error
	TLSCert         string        // --tls-cert: PEM certificate; with TLSKey enables TLS
	TLSKey          string        // --tls-key: PEM private key
	TLSClientCA     string        // --tls-client-ca: PEM CA; requires client certificates (mTLS)
	ShutdownTimeout time.Duration // --shutdown-timeout: graceful drain before a hard stop
	// DrainDelay (--drain-delay) is how long to keep serving, already reporting
	// NOT_SERVING, after a signal and before refusing new RPCs: it gives load
	// balancers and Kubernetes endpoints time to stop sending traffic.
	DrainDelay time.Duration
	// SendTimeout (--send-timeout) is how long one message of a server stream
	// may wait for the client to take it (its flow-control window to open)
	// before the stream ends with DEADLINE_EXCEEDED: a client that stops
	// reading otherwise holds the stream and what it buffers until it hangs up.
	// 0 disables.
	SendTimeout time.Duration
	// MaxConcurrentStreams (--max-concurrent-streams) bounds the RPCs one
	// client connection has open at once (HTTP/2 SETTINGS; a client waits for
	// a free slot). 0 means no bound.
	MaxConcurrentStreams uint
}

// Defaults returns the shared defaults for a server listening on grpcAddr.
func Defaults(grpcAddr string) Server {
	return Server{
		GRPCAddr:        grpcAddr,
		MetricsAddr:     ":9090",
		LogFormat:       log.FormatJSON,
		LogLevel:        "info",
		ShutdownTimeout: 20 * time.Second,
		// A 1 MiB image takes 8 s at 1 Mbit/s: 30 s lets slow links through
		// and frees a silent client's stream within half a minute.
		SendTimeout: 30 * time.Second,
		// Above what one gateway keeps in flight to one replica (the
		// upscaler's queue of 64 refuses before), far below what would let
		// one connection hold a server's memory.
		MaxConcurrentStreams: 256,
	}
}

// Register defines the shared flags on fs with defaults from Defaults(grpcAddr)
// and returns the struct the flags write into once fs is parsed.
func Register(fs *flag.FlagSet, grpcAddr string) *Server {
	c := Defaults(grpcAddr)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "Prometheus /metrics listen address; empty disables")
	// Choices are checked as they are set, so a bad value fails parsing with
	// the flag's (or the variable's) name in the error.
	fs.Var(&choice{p: &c.LogFormat, allowed: []string{log.FormatJSON, log.FormatConsole}},
		"log-format", "log format: json (production) or console (development)")
	fs.Var(&choice{p: &c.LogLevel, allowed: []string{"debug", "info", "warn", "error"}},
		"log-level", "log level: debug, info, warn, error")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "serve TLS with this PEM certificate (needs --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key for --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "require client certificates signed by this PEM CA (mTLS)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "drain time after SIGTERM before a hard stop")
	fs.DurationVar(&c.DrainDelay, "drain-delay", c.DrainDelay, "after SIGTERM, keep serving (health NOT_SERVING) this long before draining")
	fs.DurationVar(&c.SendTimeout, "send-timeout", c.SendTimeout, "end a server stream (DEADLINE_EXCEEDED) whose client has not taken a message for this long; 0 disables")
	fs.UintVar(&c.MaxConcurrentStreams, "max-concurrent-streams", c.MaxConcurrentStreams, "most RPCs open at once on one client connection; 0: no bound")
	return &c
}

// choice is a string flag limited to a set of values.
type choice struct {
	p       *string
	allowed []string
}

func (c *choice) String() string {
	if c == nil || c.p == nil {
		return ""
	}
	return *c.p
}

func (c *choice) Set(v string) error {
	if !slices.Contains(c.allowed, v) {
		return fmt.Errorf("want one of %s", strings.Join(c.allowed, ", "))
	}
	*c.p = v
	return nil
}

// Validate checks values that flag parsing alone cannot; errors name the flag
// and its variable. The error is a *UsageError. server.New calls it.
func (c *Server) Validate() error {
	var errs []error
	if c.LogFormat != log.FormatJSON && c.LogFormat != log.FormatConsole {
		errs = append(errs, fmt.Errorf("--log-format (%s): %q: want %q or %q",
			EnvName("log-format"), c.LogFormat, log.FormatJSON, log.FormatConsole))
	}
	if _, err := log.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("--log-level (%s): %w", EnvName("log-level"), err))
	}
	if c.GRPCAddr == "" {
		errs = append(errs, fmt.Errorf("--grpc-addr (%s): must not be empty", EnvName("grpc-addr")))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, fmt.Errorf("--tls-cert (%s) and --tls-key (%s) must be given together",
			EnvName("tls-cert"), EnvName("tls-key")))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, fmt.Errorf("--tls-client-ca (%s) needs --tls-cert and --tls-key",
			EnvName("tls-client-ca")))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout (%s): must not be negative", EnvName("shutdown-timeout")))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("--drain-delay (%s): must not be negative", EnvName("drain-delay")))
	}
	if c.SendTimeout < 0 {
		errs = append(errs, fmt.Errorf("--send-timeout (%s): must not be negative (0 disables)", EnvName("send-timeout")))
	}
	if c.MaxConcurrentStreams > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("--max-concurrent-streams (%s): %d is more than HTTP/2 allows (%d)", EnvName("max-concurrent-streams"), c.MaxConcurrentStreams, uint32(math.MaxUint32)))
	}
	if len(errs) > 0 {
		return &UsageError{Err: errors.Join(errs...)}
	}
	return nil
}

// EnvName returns the environment variable that backs the flag name, e.g.
// "grpc-addr" → "HIREZ_GRPC_ADDR".
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ApplyEnv sets every flag of the parsed fs that was not given on the command
// line from its environment variable (see EnvName), when that variable is set.
// lookup is normally os.LookupEnv; tests pass a map's lookup.
// A bad value gives an error naming both the variable and the flag.
func ApplyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(f.Name)
		v, ok := lookup(env)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for %s (flag --%s): %w", v, env, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// Parse parses args into fs, then fills unset flags from the process
// environment (ApplyEnv with os.LookupEnv). It returns flag.ErrHelp for -h and
// a *UsageError for a bad flag, a bad environment value or stray arguments.
// Give fs flag.ContinueOnError so that errors come back here.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return &UsageError{Err: fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	if err := ApplyEnv(fs, os.LookupEnv); err != nil {
		return &UsageError{Err: err}
	}
	return nil
}

// UsageError is a mistake in the command line or environment; platform.Main
// exits with status 2 for it, as the flag package does.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }
