package cmdline

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestHelpAndUnknown runs the standalone entry points (what the trainer's
// end-to-end test calls) the way the hirez dispatcher's TestHelp runs the CLI:
// every help flag answers with the usage and exit 0, an unknown subcommand
// exits 2 naming the valid ones. No trainer is dialled.
func TestHelpAndUnknown(t *testing.T) {
	entry := map[string]func(context.Context, []string, io.Writer, io.Writer) int{"train": Train, "jobs": Jobs, "models": Models}
	for _, c := range Commands() {
		run, ok := entry[c.Name]
		if !ok {
			t.Fatalf("no entry point for %q", c.Name)
		}
		paths := [][]string{nil}
		for _, s := range c.Subs {
			paths = append(paths, []string{s.Name})
		}
		for _, p := range paths {
			for _, h := range []string{"-h", "-help", "--help"} {
				var stderr bytes.Buffer
				code := run(context.Background(), append(p, h), io.Discard, &stderr)
				usage := strings.Join(append([]string{"usage: hirez", c.Name}, p...), " ")
				if code != 0 || !strings.Contains(stderr.String(), usage) {
					t.Errorf("%s %v %s: exit %d, stderr %q; want 0 and %q", c.Name, p, h, code, stderr.String(), usage)
				}
			}
		}
		if len(c.Subs) == 0 {
			continue
		}
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"frobnicate"}, io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), `unknown subcommand "frobnicate": want `+c.Subs[0].Name) {
			t.Errorf("%s frobnicate: exit %d, stderr %q; want 2 naming the subcommands", c.Name, code, stderr.String())
		}
	}
}
