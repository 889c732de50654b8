// Package log builds the *zap.Logger every hirez binary injects into its
// components. There is no global logger: main builds one and passes it down.
package log

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Formats accepted by New.
const (
	FormatJSON    = "json"    // production: one JSON object per line, for log collectors
	FormatConsole = "console" // development: coloured, human-readable
)

// New returns a logger writing to stderr in the given format ("json" or
// "console") at the given level ("debug", "info", "warn", "error").
// Extra zap options (e.g. zap.Fields for the service name) are applied last.
func New(format, level string, opts ...zap.Option) (*zap.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	var cfg zap.Config
	switch format {
	case FormatJSON:
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case FormatConsole:
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	default:
		return nil, fmt.Errorf("log format %q: want %q or %q", format, FormatJSON, FormatConsole)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	// Sampling drops repeated lines under load; per-RPC logs must not vanish.
	cfg.Sampling = nil
	l, err := cfg.Build(opts...)
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return l, nil
}

// ParseLevel parses "debug", "info", "warn" or "error".
func ParseLevel(level string) (zapcore.Level, error) {
	switch level {
	case "debug":
		return zapcore.DebugLevel, nil
	case "info":
		return zapcore.InfoLevel, nil
	case "warn":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", level)
}
