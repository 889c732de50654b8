package modelsync

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/platform/hotswap"
)

func parseSource(t *testing.T, args ...string) *Source {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	s := RegisterSource(fs, "a generator")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSourceValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" = valid
	}{
		{nil, "a model is required: --model (HIREZ_MODEL), a generator safetensors file"},
		{[]string{"--model", "m.safetensors", "--registry", "trainer:9003", "--model-name", "g", "--model-cache", "/tmp/c"}, "are alternatives"},
		{[]string{"--model", "m.safetensors", "--model-poll-interval", "0s"}, "--model-poll-interval (HIREZ_MODEL_POLL_INTERVAL) must be positive"},
		{[]string{"--model", "m.safetensors", "--model-name", "g"}, "--model-name (HIREZ_MODEL_NAME) is set but --registry is not"},
		{[]string{"--registry", "trainer:9003"}, "--model-name (HIREZ_MODEL_NAME) is required"},
		{[]string{"--model", "m.safetensors"}, ""},
		{[]string{"--registry", "trainer:9003", "--model-name", "g", "--model-cache", "/tmp/c"}, ""},
	} {
		err := parseSource(t, tc.args...).Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err = %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

// TestSourceFeedsFromPath: a --model source feeds a real holder from the file
// and picks up a new version.
func TestSourceFeedsFromPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := os.WriteFile(path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := parseSource(t, "--model", path, "--model-poll-interval", "10ms")
	if err := src.Validate(); err != nil {
		t.Fatal(err)
	}
	h := hotswap.New(func(_ context.Context, _ string, data []byte) (string, error) { return string(data), nil }, nil)
	defer h.Close()
	f, err := src.Feeder(h, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	serves := func(want string) func() bool {
		return func() bool { v := h.Current(); return v != nil && v.Value == want }
	}
	waitFor(t, "the holder serving v1", serves("v1"))
	if err := os.WriteFile(path, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the holder serving v2", serves("v2"))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
