package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/platform/servertest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// pipelineGateway is a GatewayService on loopback TCP that records the
// pipeline and label each request asked for and answers as a gateway with no
// optional pools would: FAILED_PRECONDITION for the multi-stage GAN, one image
// otherwise. Its generator knows the labels in labels: another label is
// INVALID_ARGUMENT, and a known one is in the provenance and the PNG's tEXt.
type pipelineGateway struct {
	pb.UnimplementedGatewayServiceServer
	mu     sync.Mutex
	seen   []pb.Pipeline
	label  []string // the label of each request
	labels []string
}

func (g *pipelineGateway) GenerateImages(req *pb.GenerateImagesRequest, stream pb.GatewayService_GenerateImagesServer) error {
	g.mu.Lock()
	g.seen = append(g.seen, req.GetPipeline())
	g.label = append(g.label, req.GetLabel())
	known := g.labels
	g.mu.Unlock()
	if req.GetPipeline() == pb.Pipeline_PIPELINE_MULTISTAGE_GAN {
		return status.Error(codes.FailedPrecondition, "pipeline MULTISTAGE_GAN needs an Up Sampler model: this gateway has no pool of upscalers serving one (start it with --upsampler-target, or use PIPELINE_DCGAN_SRCNN)")
	}
	if l := req.GetLabel(); l != "" && !slices.Contains(known, l) {
		return status.Errorf(codes.InvalidArgument, "label %q is not known to model g; its labels: %q (or leave label empty)", l, known)
	}
	var texts []imageio.Text
	if l := req.GetLabel(); l != "" {
		texts = append(texts, imageio.Text{Key: "hirez:label", Value: l})
	}
	var png bytes.Buffer
	if err := (imageio.PNGEncoder{}).Encode(&png, imageio.NewRGB(int(req.GetSize()), int(req.GetSize())), texts...); err != nil {
		return err
	}
	return stream.Send(&pb.GenerateImagesResponse{Png: png.Bytes(), Width: req.GetSize(), Height: req.GetSize(), Seed: 1,
		Provenance: &pb.Provenance{Pipeline: req.GetPipeline(), Generator: &pb.ModelRef{Name: "g", Version: "v"}, Label: req.GetLabel()}})
}

func (g *pipelineGateway) ListLabels(_ context.Context, req *pb.GatewayServiceListLabelsRequest) (*pb.GatewayServiceListLabelsResponse, error) {
	g.mu.Lock()
	g.seen = append(g.seen, req.GetPipeline())
	known := g.labels
	g.mu.Unlock()
	if req.GetPipeline() == pb.Pipeline_PIPELINE_MULTISTAGE_GAN {
		return nil, status.Error(codes.FailedPrecondition, "pipeline MULTISTAGE_GAN needs an Up Sampler model")
	}
	return &pb.GatewayServiceListLabelsResponse{Generator: &pb.ModelRef{Name: "g", Version: "sha256:v"}, Labels: known}, nil
}

// setLabels sets the labels the gateway's generator knows.
func (g *pipelineGateway) setLabels(labels ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.labels = labels
}

func startPipelineGateway(t *testing.T) (*pipelineGateway, string) {
	t.Helper()
	gw := &pipelineGateway{}
	b := servertest.ServeBare(t, func(srv *grpc.Server) {
		pb.RegisterGatewayServiceServer(srv, gw)
		healthpb.RegisterHealthServer(srv, health.NewServer())
	})
	return gw, b.Addr
}

func TestGeneratePipelineFlag(t *testing.T) {
	gw, addr := startPipelineGateway(t)
	for _, tc := range []struct {
		name string
		want pb.Pipeline
		code int
		msg  string // on stderr for failures
	}{
		{"dcgan-srcnn", pb.Pipeline_PIPELINE_DCGAN_SRCNN, ExitOK, ""},
		{"single", pb.Pipeline_PIPELINE_SINGLE_DCGAN, ExitOK, ""},
		{"single-dcgan", pb.Pipeline_PIPELINE_SINGLE_DCGAN, ExitOK, ""},
		{"MultiStage", pb.Pipeline_PIPELINE_MULTISTAGE_GAN, ExitFailure, "GenerateImages: FailedPrecondition: pipeline MULTISTAGE_GAN needs an Up Sampler model"},
		{"multistage-gan", pb.Pipeline_PIPELINE_MULTISTAGE_GAN, ExitFailure, "--upsampler-target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw.mu.Lock()
			gw.seen = nil
			gw.mu.Unlock()
			out := t.TempDir()
			code, stdout, stderr := hirez(t, "generate", "--gateway", addr, "--pipeline", tc.name, "--count", "1", "--size", "64", "--out", out, "--timeout", "10s")
			gw.mu.Lock()
			seen := append([]pb.Pipeline(nil), gw.seen...)
			gw.mu.Unlock()
			if code != tc.code || len(seen) != 1 || seen[0] != tc.want || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d (want %d), gateway saw %v (want %v), stderr %q (want %q), stdout %q", code, tc.code, seen, tc.want, stderr, tc.msg, stdout)
			}
			if tc.code == ExitOK {
				if _, err := os.Stat(filepath.Join(out, "image-00-seed-1.png")); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// An unknown name is a usage error that lists the pipelines.
	code, _, stderr := hirez(t, "generate", "--gateway", addr, "--pipeline", "progan")
	if code != ExitUsage || !strings.Contains(stderr, `--pipeline "progan": want dcgan-srcnn`) || !strings.Contains(stderr, "multistage") || !strings.Contains(stderr, "single") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestGenerateLabelFlag(t *testing.T) {
	gw, addr := startPipelineGateway(t)
	gw.setLabels("Smileys & Emotion")
	out := t.TempDir()
	code, stdout, stderr := hirez(t, "generate", "--gateway", addr, "--label", "Smileys & Emotion", "--count", "1", "--size", "64", "--out", out, "--timeout", "10s")
	if code != ExitOK || !strings.Contains(stdout, `label "Smileys & Emotion"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	f, err := os.Open(filepath.Join(out, "image-00-seed-1.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	texts, err := imageio.ReadText(f)
	if err != nil || !slices.Contains(texts, imageio.Text{Key: "hirez:label", Value: "Smileys & Emotion"}) {
		t.Fatalf("the PNG's tEXt %v, %v; want hirez:label", texts, err)
	}

	code, _, stderr = hirez(t, "generate", "--gateway", addr, "--label", "Flags", "--count", "1", "--size", "64", "--out", t.TempDir(), "--timeout", "10s")
	if code != ExitFailure || !strings.Contains(stderr, `GenerateImages: InvalidArgument: label "Flags" is not known to model g; its labels: ["Smileys & Emotion"]`) {
		t.Fatalf("unknown label: exit %d, stderr %q", code, stderr)
	}
	code, _, _ = hirez(t, "generate", "--gateway", addr, "--count", "1", "--size", "64", "--out", t.TempDir(), "--timeout", "10s")
	gw.mu.Lock()
	labels := slices.Clone(gw.label)
	gw.mu.Unlock()
	if code != ExitOK || !slices.Equal(labels, []string{"Smileys & Emotion", "Flags", ""}) {
		t.Fatalf("exit %d; the gateway saw labels %q", code, labels)
	}
	code, _, stderr = hirez(t, "generate", "--gateway", addr, "--label", strings.Repeat("x", 65))
	if code != ExitUsage || !strings.Contains(stderr, "--label is 65 bytes; at most 64") {
		t.Fatalf("long label: exit %d, stderr %q", code, stderr)
	}
}
