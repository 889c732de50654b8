package app

import (
	"slices"
	"strings"
	"testing"

	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func TestLabelsCommand(t *testing.T) {
	gw, addr := startPipelineGateway(t)
	gw.setLabels("Smileys & Emotion")
	code, stdout, stderr := hirez(t, "labels", "--gateway", addr, "--timeout", "10s")
	if code != ExitOK || stdout != "generator g@sha256:v knows 1 label:\n  Smileys & Emotion\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	gw.setLabels()
	code, stdout, _ = hirez(t, "labels", "--gateway", addr, "--pipeline", "single", "--timeout", "10s")
	if code != ExitOK || !strings.Contains(stdout, "knows no labels") || !strings.Contains(stdout, "leave --label empty") {
		t.Fatalf("no labels: exit %d, stdout %q", code, stdout)
	}
	code, _, stderr = hirez(t, "labels", "--gateway", addr, "--pipeline", "multistage", "--timeout", "10s")
	if code != ExitFailure || !strings.Contains(stderr, "ListLabels: FailedPrecondition: pipeline MULTISTAGE_GAN needs an Up Sampler model") {
		t.Fatalf("multistage: exit %d, stderr %q", code, stderr)
	}
	gw.mu.Lock()
	seen := slices.Clone(gw.seen)
	gw.mu.Unlock()
	if want := []pb.Pipeline{pb.Pipeline_PIPELINE_DCGAN_SRCNN, pb.Pipeline_PIPELINE_SINGLE_DCGAN, pb.Pipeline_PIPELINE_MULTISTAGE_GAN}; !slices.Equal(seen, want) {
		t.Fatalf("the gateway saw pipelines %v, want %v", seen, want)
	}
	if code, _, stderr := hirez(t, "labels", "--pipeline", "progan"); code != ExitUsage || !strings.Contains(stderr, `--pipeline "progan"`) {
		t.Fatalf("bad pipeline: exit %d, stderr %q", code, stderr)
	}
}
