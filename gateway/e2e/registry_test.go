package e2e

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

const regToken = "e2e-admin-token"

func admin(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+regToken)
}

// writeDataset writes n small, varied PNGs: enough for a few training steps
// and the canary's evaluation set.
func writeDataset(t *testing.T, dir string, n, side int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, side, side))
		for y := range side {
			for x := range side {
				img.Set(x, y, color.NRGBA{uint8((x*255/side + i*37) % 256), uint8((y*255/side + i*91) % 256), uint8((x + y + i*13) * 255 / (2 * side) % 256), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img-%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		err = png.Encode(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// trainVersion runs a real (tiny) DCGAN job on the trainer and returns the
// digest of the version it published.
func trainVersion(t *testing.T, tc pb.TrainerServiceClient, id, model string, seed int64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := tc.CreateJob(admin(ctx), &pb.CreateJobRequest{JobId: id, Spec: &pb.JobSpec{
		ModelKind: pb.ModelKind_MODEL_KIND_DCGAN_GENERATOR, Preset: "stable", Dataset: "tiny", ModelName: model, Seed: seed,
		Hyperparameters: &pb.Hyperparameters{Steps: 2, BatchSize: 4, CheckpointIntervalSteps: 2, SampleIntervalSteps: 2},
	}})
	if err != nil {
		t.Fatalf("CreateJob %s: %v", id, err)
	}
	w, err := tc.WatchJob(ctx, &pb.WatchJobRequest{Name: "jobs/" + id})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := w.Recv(); err != nil {
			break // the stream ends after the job's terminal state
		}
	}
	got, err := tc.GetJob(ctx, &pb.GetJobRequest{Name: "jobs/" + id})
	if err != nil {
		t.Fatal(err)
	}
	j := got.GetJob()
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED || !pb.IsDigest(j.GetResult().GetVersion()) {
		t.Fatalf("job %s: %v %q, result %v", id, j.GetState(), j.GetFailureReason(), j.GetResult())
	}
	return j.GetResult().GetVersion()
}

// TestGeneratorFollowsRegistryAlias runs the trainer binary and a generator
// that follows the trainer's registry: a trained version promoted to
// production is served; a second one, force-promoted while callers keep
// generating, is hot-swapped in without a failed request; with the trainer
// killed the generator keeps serving, and a generator started while it is
// down serves the version in its cache.
func TestGeneratorFollowsRegistryAlias(t *testing.T) {
	buildOnDemand(t, "../../services/trainer", "trainer")
	data := t.TempDir()
	writeDataset(t, filepath.Join(data, "datasets", "tiny"), 16, 32)
	if err := os.WriteFile(filepath.Join(data, "token"), []byte(regToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	trainer := startProc(t, "trainer", "--data-dir", data, "--admin-token-file", filepath.Join(data, "token"), "--threads", "2")
	waitServing(t, trainer, "hirez.v1.ModelRegistryService")
	tconn := dial(t, trainer.addr)
	tc, rc := pb.NewTrainerServiceClient(tconn), pb.NewModelRegistryServiceClient(tconn)

	const model = "e2e-registry-gen"
	start := time.Now()
	v1 := trainVersion(t, tc, "reg-v1", model, 1)
	v2 := trainVersion(t, tc, "reg-v2", model, 2)
	t.Logf("two versions trained and published in %v: %s, %s", time.Since(start).Round(time.Millisecond), v1, v2)
	if v1 == v2 {
		t.Fatal("two jobs with different seeds published the same bytes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The first promotion has no production version to compare with: it passes.
	pr, err := rc.PromoteModel(admin(ctx), &pb.PromoteModelRequest{Model: model, Version: v1})
	if err != nil || !pr.GetPromoted() {
		t.Fatalf("promote v1 = %v, %v", pr, err)
	}
	mark := time.Now()
	step := func(what string) {
		t.Logf("%-40s %v", what, time.Since(mark).Round(time.Millisecond))
		mark = time.Now()
	}
	step("v1 promoted")

	cache := t.TempDir()
	follow := []string{"--registry", trainer.addr, "--model-name", model, "--model-cache", cache, "--max-wait", "2ms"}
	gen := startProc(t, "generator", follow...)
	waitServing(t, gen, "hirez.v1.GeneratorService")
	client := pb.NewGeneratorServiceClient(dial(t, gen.addr))
	version := func() (string, error) {
		resp, err := client.Generate(ctx, &pb.GenerateRequest{Seeds: []int64{1, 2}})
		if err != nil {
			return "", err
		}
		return resp.GetImages()[0].GetProvenance().GetGenerator().GetVersion(), nil
	}
	if got, err := version(); err != nil || got != v1 {
		t.Fatalf("serving %s, %v; want %s", got, err, v1)
	}
	step("generator serving v1 from the registry")

	// Callers stream images through the generator while v2 is promoted.
	stop := make(chan struct{})
	var (
		wg                 sync.WaitGroup
		failures, requests atomic.Int64
		sawV2              atomic.Bool
	)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				stream, err := client.StreamGenerate(ctx, &pb.StreamGenerateRequest{Seeds: []int64{5, 6, 7, 8}})
				if err != nil {
					failures.Add(1)
					t.Error(err)
					return
				}
				for {
					msg, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						failures.Add(1)
						t.Error(err)
						return
					}
					if msg.GetImage().GetProvenance().GetGenerator().GetVersion() == v2 {
						sawV2.Store(true)
					}
				}
				requests.Add(1)
			}
		})
	}
	// A deliberately "forced" promotion: the canary may refuse v2 (two training
	// steps make no real generator), force takes it anyway.
	pr, err = rc.PromoteModel(admin(ctx), &pb.PromoteModelRequest{Model: model, Version: v2, Force: true})
	if err != nil || !pr.GetPromoted() || pr.GetPreviousVersion() != v1 {
		t.Fatalf("force-promote v2 = %v, %v", pr, err)
	}
	step("v2 force-promoted")
	t.Logf("canary: %s new %.4g, production %.4g, passed %v", pr.GetCanary().GetMetric(), pr.GetCanary().GetNewValue(),
		pr.GetCanary().GetOldValue(), pr.GetCanary().GetPassed())
	deadline := time.Now().Add(30 * time.Second)
	for !sawV2.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the generator did not swap to v2")
		}
		time.Sleep(20 * time.Millisecond)
	}
	step("v2 seen in a stream")
	time.Sleep(200 * time.Millisecond) // a few more streams on v2
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d streams failed during the swap", n, requests.Load())
	}
	t.Logf("%d streams of 4 images, none failed, across the swap to %s", requests.Load(), v2)
	if got, err := version(); err != nil || got != v2 {
		t.Fatalf("after the promotion serving %s, %v; want %s", got, err, v2)
	}

	step("callers stopped")
	// The registry goes away: the generator keeps serving v2.
	trainer.stop(syscall.SIGKILL)
	for range 5 {
		if got, err := version(); err != nil || got != v2 {
			t.Fatalf("with the registry down: %s, %v", got, err)
		}
	}
	// A generator started now, on the same cache, serves v2 from it.
	gen.stop(syscall.SIGTERM)
	gen2 := startProc(t, "generator", follow...)
	waitServing(t, gen2, "hirez.v1.GeneratorService")
	step("restarted generator SERVING from cache")
	resp, err := pb.NewGeneratorServiceClient(dial(t, gen2.addr)).Generate(ctx, &pb.GenerateRequest{Seeds: []int64{1}})
	if err != nil || resp.GetImages()[0].GetProvenance().GetGenerator().GetVersion() != v2 {
		t.Fatalf("restarted with the registry down: %v, %v; want %s", resp.GetImages(), err, v2)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(gen2.out.String(), "registry unreachable") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if out := gen2.out.String(); strings.Count(out, "registry unreachable") != 1 || !strings.Contains(out, "serving cached version") {
		t.Fatalf("restarted generator's log:\n%s", out)
	}
}
