package platform_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/platform"
	"github.com/hirez-ml/hirez/platform/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExec(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"ok", nil, 0, ""},
		{"help", flag.ErrHelp, 0, ""},
		{"usage", &config.UsageError{Err: errors.New("bad --max-batch")}, 2, "bad --max-batch"},
		{"failure", errors.New("load model: no such file"), 1, "load model: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			var gotArgs []string
			code := platform.Exec(func(ctx context.Context, args []string) error {
				if ctx.Err() != nil {
					t.Error("context already done")
				}
				gotArgs = args
				return tt.err
			}, []string{"--x"}, &stderr)
			if code != tt.code {
				t.Errorf("code %d, want %d", code, tt.code)
			}
			if !strings.Contains(stderr.String(), tt.stderr) || (tt.stderr == "") != (stderr.Len() == 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
			if len(gotArgs) != 1 || gotArgs[0] != "--x" {
				t.Errorf("args %q", gotArgs)
			}
		})
	}
}
