package train

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/engine/safetensors"
)

// under returns the tensors of a checkpoint under prefix, without it.
func under(all map[string]safetensors.Tensor, prefix string) map[string]safetensors.Tensor {
	m := map[string]safetensors.Tensor{}
	for name, t := range all {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			m[rest] = t
		}
	}
	return m
}

// TestWarmStart trains a source model, then starts a second run (another seed)
// from its published weights that stops before its first step: the trained network (and the EMA of G) must
// hold the file's weights bit for bit, and a GAN's discriminator its fresh
// seeded initialisation. OnCheckpoint reports that checkpoint.
func TestWarmStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		run    runner
		size   int
		prefix string
		ema    bool
	}{
		{"gan", ganRunner(BCE), 8, "g.", true},
		{"multistage", multiStageRunner, 16, "g.", true},
		{"sr", srRunner, 16, "net.", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := writeImages(t, 10, tc.size)
			o := refOptions(t, data, t.TempDir())
			o.Steps = 2
			src, err := tc.run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			want := readTensors(t, src.Weights)

			// A budget of 1ns stops the run before its first step: it writes
			// its step-0 checkpoint and publishes the weights it starts from.
			step0 := func(init string) (ckpt, published map[string]safetensors.Tensor) {
				o := refOptions(t, data, t.TempDir())
				o.Seed, o.Budget, o.Init = 8, time.Nanosecond, init
				var seen []int
				o.OnCheckpoint = func(path string, step int) {
					if path != filepath.Join(o.Out, CheckpointFile) {
						t.Errorf("OnCheckpoint path %s", path)
					}
					seen = append(seen, step)
				}
				res, err := tc.run(context.Background(), o)
				if err != nil || res.Steps != 0 {
					t.Fatalf("1ns run: %d steps, %v", res.Steps, err)
				}
				if len(seen) != 1 || seen[0] != 0 {
					t.Fatalf("OnCheckpoint calls at steps %v, want [0]", seen)
				}
				return readTensors(t, res.Checkpoint), readTensors(t, res.Weights)
			}
			warm, published := step0(src.Weights)
			fresh, _ := step0("")
			sameBits(t, "warm-started network", want, under(warm, tc.prefix))
			sameBits(t, "published at step 0", want, published)
			if tc.ema {
				ema := under(warm, "ema.")
				if len(ema) == 0 {
					t.Fatal("no EMA in the checkpoint")
				}
				for name, x := range ema {
					sameBits(t, "EMA", map[string]safetensors.Tensor{name: want[name]}, map[string]safetensors.Tensor{name: x})
				}
				sameBits(t, "discriminator", under(fresh, "d."), under(warm, "d."))
			}
		})
	}
}

// TestWarmStartRefusesOtherWeights: another preset's file, a file with a
// tensor of the wrong shape and one with an extra tensor are ErrBadOptions
// naming the problem, before step 1.
func TestWarmStartRefusesOtherWeights(t *testing.T) {
	ctx := context.Background()
	data16 := writeImages(t, 10, 16)
	o := refOptions(t, data16, t.TempDir())
	o.Steps = 1
	sr, err := srRunner(ctx, o)
	if err != nil {
		t.Fatal(err)
	}

	data8 := writeImages(t, 10, 8)
	o = refOptions(t, data8, t.TempDir())
	o.Steps, o.Init = 1, sr.Weights
	_, err = ganRunner(BCE)(ctx, o)
	if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), `preset "espcn-x2-narrow"`) {
		t.Fatalf("GAN from an ESPCN file: %v", err)
	}

	f, err := safetensors.ReadFile(sr.Weights, safetensors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := f.Tensors[0]
	f.Tensors[0].Shape = append([]int{1}, bad.Shape...)
	path := t.TempDir() + "/bad.safetensors"
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data16, t.TempDir())
	o.Steps, o.Init = 1, path
	res, err := srRunner(ctx, o)
	if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), `tensor "`+bad.Name+`" has shape`) || res.Steps != 0 {
		t.Fatalf("wrong shape: %d steps, %v", res.Steps, err)
	}

	// A tensor the network does not have is refused too (torch's strict loading).
	f.Tensors[0].Shape = bad.Shape
	f.Tensors = append(f.Tensors, safetensors.Tensor{Name: "extra.weight", DType: safetensors.F32, Shape: []int{1}, F32: []float32{0}})
	path = t.TempDir() + "/extra.safetensors"
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data16, t.TempDir())
	o.Steps, o.Init = 1, path
	res, err = srRunner(ctx, o)
	if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), `tensor "extra.weight" in the file is not a parameter`) || res.Steps != 0 {
		t.Fatalf("extra tensor: %d steps, %v", res.Steps, err)
	}
}

// TestWarmStartResumeIsExact: a warm-started run cut in two and resumed (with
// Init still set, as a caller may leave it) ends with the same bits as one
// straight warm-started run: the checkpoint, not the file, wins on resume.
func TestWarmStartResumeIsExact(t *testing.T) {
	ctx := context.Background()
	data := writeImages(t, 10, 16)
	o := refOptions(t, data, t.TempDir())
	o.Steps = 2
	src, err := srRunner(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	straight, split := t.TempDir(), t.TempDir()
	o = refOptions(t, data, straight)
	o.Seed, o.Steps, o.Init = 8, 4, src.Weights
	ra, err := srRunner(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data, split)
	o.Seed, o.Steps, o.Init = 8, 2, src.Weights
	if _, err := srRunner(ctx, o); err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data, split)
	o.Seed, o.Steps, o.Init, o.Resume = 8, 4, src.Weights, true
	rb, err := srRunner(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !rb.Resumed {
		t.Fatal("did not resume")
	}
	sameBits(t, "weights", readTensors(t, ra.Weights), readTensors(t, rb.Weights))
	sameBits(t, "checkpoint", readTensors(t, ra.Checkpoint), readTensors(t, rb.Checkpoint))
}
