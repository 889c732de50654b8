package modelsync

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Source is where a serving binary takes its model from: a file or directory it
// polls (--model) or a registry alias it follows (--registry and the flags of
// Flags). The generator and the upscaler share it so that both say the same
// thing about a missing or doubled source.
type Source struct {
	Path   string        // --model
	Poll   time.Duration // --model-poll-interval
	Follow *Flags
	what   string // "a generator", for messages
}

// RegisterSource defines --model, --model-poll-interval and the registry flags
// on fs. what names the kind of model for messages ("a generator").
func RegisterSource(fs *flag.FlagSet, what string) *Source {
	s := &Source{what: what}
	fs.StringVar(&s.Path, "model", "", "safetensors file, or a directory watched for new versions (newest *.safetensors); or use --registry")
	fs.DurationVar(&s.Poll, "model-poll-interval", 2*time.Second, "how often --model is checked for a new version")
	s.Follow = RegisterFlags(fs)
	return s
}

// Validate checks that exactly one source is given and that its flags make
// sense; errors name the flags and their variables.
func (s *Source) Validate() error {
	switch {
	case s.Path == "" && !s.Follow.Enabled():
		return fmt.Errorf("a model is required: %s, %s safetensors file or a directory of them, "+
			"or %s with --model-name and --model-cache to follow a registry alias", flagName("model"), s.what, flagName("registry"))
	case s.Path != "" && s.Follow.Enabled():
		return fmt.Errorf("%s and %s are alternatives: serve a file or directory, or follow a registry alias, not both",
			flagName("model"), flagName("registry"))
	}
	if !s.Follow.Enabled() && s.Poll <= 0 {
		return fmt.Errorf("%s must be positive, got %v", flagName("model-poll-interval"), s.Poll)
	}
	return s.Follow.Validate()
}

// Holder is what a Source feeds; *hotswap.Holder[T] implements it for every T.
type Holder interface {
	Loader
	Watch(ctx context.Context, path string, interval time.Duration, onErr func(error)) error
}

// Feeder keeps a Holder supplied from a Source until its context ends.
type Feeder struct {
	run   func(context.Context) error
	close func() error
}

// Run feeds the holder until ctx ends (server.Go runs it).
func (f *Feeder) Run(ctx context.Context) error { return f.run(ctx) }

// Close releases what the feeder holds (the registry connection).
func (f *Feeder) Close() error { return f.close() }

// Feeder returns the feeder for a validated source: a Syncer on the alias, or
// the holder's own poll of the path. Failed loads are logged, once per
// distinct error.
func (s *Source) Feeder(h Holder, logger *zap.Logger) (*Feeder, error) {
	if s.Follow.Enabled() {
		syncer, err := New(h, s.Follow.Options(logger))
		if err != nil {
			return nil, fmt.Errorf("--registry: %w", err)
		}
		return &Feeder{run: syncer.Run, close: syncer.Close}, nil
	}
	if s.Path == "" {
		return nil, errors.New("modelsync: Feeder on a source without --model or --registry (call Validate first)")
	}
	return &Feeder{
		run: func(ctx context.Context) error {
			return h.Watch(ctx, s.Path, s.Poll, func(err error) { logger.Error("model not loaded", zap.Error(err)) })
		},
		close: func() error { return nil },
	}, nil
}

// Fields describe the source for the start-up log line.
func (s *Source) Fields() []zap.Field {
	if s.Follow.Enabled() {
		return []zap.Field{zap.String("registry", s.Follow.Registry), zap.String("model_name", s.Follow.Model),
			zap.String("model_alias", s.Follow.Alias), zap.String("model_cache", s.Follow.CacheDir)}
	}
	return []zap.Field{zap.String("model", s.Path), zap.Duration("model_poll_interval", s.Poll)}
}
