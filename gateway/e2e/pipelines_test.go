package e2e

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// saveModel writes an untrained but real preset network to dir/name.safetensors.
func saveModel(t *testing.T, dir, preset, name string, side int) string {
	t.Helper()
	be, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	net, err := model.Build(preset, be, model.Options{Side: side, Seed: 21})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	path := filepath.Join(dir, name+".safetensors")
	if err := net.Save(path, map[string]string{"name": name}); err != nil {
		t.Fatal(err)
	}
	return path
}

// textChunks reads an image's PNG tEXt chunks into a map.
func textChunks(t *testing.T, png []byte) map[string]string {
	t.Helper()
	texts, err := imageio.ReadText(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, tx := range texts {
		kv[tx.Key] = tx.Value
	}
	return kv
}

// TestPipelines runs the three pipelines through the real gateway: the
// default generator (32 px) and SR upscaler, an upscaler serving the
// multi-stage GAN's Up Sampler (--upsampler-target) and a generator serving a
// DCGAN trained at 64 px (--single-generator-target); and a second gateway
// with neither optional pool.
func TestPipelines(t *testing.T) {
	dir := t.TempDir()
	upsampler := saveModel(t, dir, "upsampler-stable", "e2e-upsampler", 32)
	single := saveModel(t, dir, "dcgan-g-stable", "e2e-gen64", 64)

	gen := startProc(t, "generator", "--model", genModel, "--max-wait", "2ms")
	sr := startProc(t, "upscaler", "--model", upModel, "--max-wait", "2ms")
	ups := startProc(t, "upscaler", "--model", upsampler, "--max-wait", "2ms")
	gen64 := startProc(t, "generator", "--model", single, "--max-wait", "2ms")
	gw := startProc(t, "gateway", "--generator-target", gen.addr, "--upscaler-target", sr.addr,
		"--upsampler-target", ups.addr, "--single-generator-target", gen64.addr, "--http-addr", "")
	bare := startProc(t, "gateway", "--generator-target", gen.addr, "--upscaler-target", sr.addr, "--http-addr", "")
	waitServing(t, gen, "hirez.v1.GeneratorService")
	waitServing(t, gen64, "hirez.v1.GeneratorService")
	waitServing(t, sr, "hirez.v1.UpscalerService")
	waitServing(t, ups, "hirez.v1.UpscalerService")
	waitServing(t, gw, "")
	waitServing(t, bare, "")
	client := pb.NewGatewayServiceClient(dial(t, gw.addr))
	bareClient := pb.NewGatewayServiceClient(dial(t, bare.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("multi-stage GAN to 256", func(t *testing.T) {
		req := &pb.GenerateImagesRequest{Count: 2, Seed: 77, Pipeline: pb.Pipeline_PIPELINE_MULTISTAGE_GAN, Size: 256}
		got, err := generate(ctx, client, req, nil)
		if err != nil || len(got) != 2 {
			t.Fatalf("%d images, %v", len(got), err)
		}
		for i, m := range got {
			img, err := imageio.Decode(m.GetPng(), imageio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			p := m.GetProvenance()
			if img.W != 256 || img.H != 256 || p.GetPipeline() != pb.Pipeline_PIPELINE_MULTISTAGE_GAN ||
				p.GetGenerator().GetName() != "e2e-gen" || !pb.IsDigest(p.GetGenerator().GetVersion()) || len(p.GetUpscalers()) != 3 {
				t.Fatalf("image %d: %d×%d, provenance %v", i, img.W, img.H, p)
			}
			for _, u := range p.GetUpscalers() { // 32→64→128→256, every pass the Up Sampler
				if u.GetName() != "e2e-upsampler" || !pb.IsDigest(u.GetVersion()) {
					t.Fatalf("image %d: upscaler %v, want the Up Sampler", i, u)
				}
			}
			kv := textChunks(t, m.GetPng())
			if kv["hirez:pipeline"] != "MULTISTAGE_GAN" || !strings.HasPrefix(kv["hirez:generator"], "e2e-gen@sha256:") ||
				strings.Count(kv["hirez:upscalers"], "e2e-upsampler@sha256:") != 3 {
				t.Fatalf("image %d tEXt %v", i, kv)
			}
		}
		// Same seed, same bytes, through the signed-range Up Sampler too.
		again, err := generate(ctx, client, req, nil)
		if err != nil || !bytes.Equal(again[0].GetPng(), got[0].GetPng()) {
			t.Fatalf("second run: %v, or image 0 differs", err)
		}
	})

	t.Run("single DCGAN at the pool's size", func(t *testing.T) {
		got, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 2, Seed: 5, Pipeline: pb.Pipeline_PIPELINE_SINGLE_DCGAN, Size: 64}, nil)
		if err != nil || len(got) != 2 {
			t.Fatalf("%d images, %v", len(got), err)
		}
		for i, m := range got {
			p := m.GetProvenance()
			if m.GetWidth() != 64 || m.GetHeight() != 64 || p.GetPipeline() != pb.Pipeline_PIPELINE_SINGLE_DCGAN ||
				p.GetGenerator().GetName() != "e2e-gen64" || len(p.GetUpscalers()) != 0 {
				t.Fatalf("image %d: %d×%d, provenance %v", i, m.GetWidth(), m.GetHeight(), p)
			}
			if kv := textChunks(t, m.GetPng()); kv["hirez:pipeline"] != "SINGLE_DCGAN" || !strings.HasPrefix(kv["hirez:generator"], "e2e-gen64@") {
				t.Fatalf("image %d tEXt %v", i, kv)
			}
		}
	})

	t.Run("single DCGAN at another size", func(t *testing.T) {
		for _, size := range []int32{32, 128, 0} {
			_, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 1, Pipeline: pb.Pipeline_PIPELINE_SINGLE_DCGAN, Size: size}, nil)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "trained at 64 px") {
				t.Fatalf("size %d: %v, want InvalidArgument naming 64 px", size, err)
			}
		}
	})

	t.Run("no pool configured", func(t *testing.T) {
		for p, flag := range map[pb.Pipeline]string{
			pb.Pipeline_PIPELINE_MULTISTAGE_GAN: "--upsampler-target",
			pb.Pipeline_PIPELINE_SINGLE_DCGAN:   "--single-generator-target",
		} {
			_, err := generate(ctx, bareClient, &pb.GenerateImagesRequest{Count: 1, Pipeline: p, Size: 64}, nil)
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), flag) {
				t.Fatalf("%v without its pool: %v, want FailedPrecondition naming %s", p, err, flag)
			}
		}
		// The default pipeline is unaffected.
		if got, err := generate(ctx, bareClient, &pb.GenerateImagesRequest{Count: 1, Size: 64}, nil); err != nil || len(got) != 1 {
			t.Fatalf("default pipeline: %d images, %v", len(got), err)
		}
	})

	t.Run("Up Sampler pool down", func(t *testing.T) {
		ups.stop(syscall.SIGTERM)
		_, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 1, Pipeline: pb.Pipeline_PIPELINE_MULTISTAGE_GAN, Size: 64}, nil)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "Up Sampler pool (--upsampler-target)") || strings.Contains(err.Error(), ups.addr) {
			t.Fatalf("multi-stage with its pool down: %v, want Unavailable naming the pool", err)
		}
		// An optional pool does not take part in the gateway's readiness.
		hc := healthpb.NewHealthClient(dial(t, gw.addr))
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("gateway health with the Up Sampler pool down: %v, %v; want SERVING", resp, err)
		}
		if got, err := generate(ctx, client, &pb.GenerateImagesRequest{Count: 1, Size: 64}, nil); err != nil || len(got) != 1 {
			t.Fatalf("default pipeline with the Up Sampler pool down: %d images, %v", len(got), err)
		}
		// Its health shows in the gateway's log.
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(gw.out.String(), `{"pool": "upsampler", "ready": false}`); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the gateway did not log the Up Sampler pool going down:\n%s", gw.out.String())
			}
		}
	})
}
