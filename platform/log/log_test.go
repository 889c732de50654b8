package log_test

import (
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/hirez-ml/hirez/platform/log"
)

func TestNew(t *testing.T) {
	tests := []struct {
		format, level string
		ok            bool
		enabled       zapcore.Level
	}{
		{"json", "info", true, zapcore.InfoLevel},
		{"console", "debug", true, zapcore.DebugLevel},
		{"json", "error", true, zapcore.ErrorLevel},
		{"xml", "info", false, 0},
		{"json", "loud", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.level, func(t *testing.T) {
			l, err := log.New(tt.format, tt.level)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%q, %q) error = %v, want ok %v", tt.format, tt.level, err, tt.ok)
			}
			if err != nil {
				return
			}
			if !l.Core().Enabled(tt.enabled) || l.Core().Enabled(tt.enabled-1) {
				t.Errorf("level: want lowest enabled %v", tt.enabled)
			}
		})
	}
}
