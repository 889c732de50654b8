// Package bench holds the engine's benchmark workloads — the study's nets built
// from the engine/model presets and run the way the services run them
// (model.Network inference, the engine/train GAN loop) — the Go benchmarks over
// them, and an FMA loop that measures the machine's fp32 peak. cmd/hzbench runs
// the same workloads for scripts/bench.sh, which puts them beside PyTorch.
package bench

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/tensor"
	"github.com/hirez-ml/hirez/engine/train"
)

// The study's nets, as the engine/model presets of these names build them.
const (
	SRCNNPreset     = "srcnn-study"   // nearest 2×, conv 3→256 9×9, 256→128 3×3, 128→3 5×5
	GeneratorPreset = "dcgan-g-study" // z 100 → Dense → [up 2× → conv 3×3] × 3
	DiscPreset      = "dcgan-d-study" // [conv 3×3 → pool] × 3 → Dense 512 → Dense 1
	Latent          = 100
)

// Forward is a model.Network inference on a fixed input, downloaded to a host
// slice it reuses: what the serving path does per batch, minus image decoding.
type Forward struct {
	net   *model.Network
	x     *tensor.Tensor
	out   []float32
	flops float64
}

// SRCNN builds the study SRCNN for batch images of side² pixels (→ 2·side).
func SRCNN(be backend.Backend, batch, side int) (*Forward, error) {
	return newForward(be, SRCNNPreset, side, batch)
}

// Generator builds the study DCGAN generator for batch latents at output side.
func Generator(be backend.Backend, batch, side int) (*Forward, error) {
	return newForward(be, GeneratorPreset, side, batch)
}

func newForward(be backend.Backend, preset string, side, batch int) (*Forward, error) {
	net, err := model.Build(preset, be, model.Options{Side: side, Seed: 1})
	if err != nil {
		return nil, err
	}
	f := &Forward{net: net}
	in := net.InputShape(batch)
	host := make([]float32, prod(in))
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range host {
		host[i] = rng.Float32() // [0, 1]: pixels for upscalers, a latent for G
	}
	if f.x, err = tensor.FromHost(be, host, in...); err != nil {
		f.Free()
		return nil, err
	}
	f.out = make([]float32, prod(net.OutputShape(batch)))
	_, _, perSample := net.Counts()
	f.flops = perSample * float64(batch)
	return f, nil
}

// Run is one inference forward and the download of its output.
func (f *Forward) Run() error {
	y, err := f.net.Forward(f.x, layer.Infer)
	if err != nil {
		return err
	}
	return y.ToHost(f.out)
}

// Output is the last Run's output (NCHW).
func (f *Forward) Output() []float32 { return f.out }

// FLOPs is one Run's convolution and dense work (a multiply-add counts 2).
func (f *Forward) FLOPs() float64 { return f.flops }

// Free releases the network and the input.
func (f *Forward) Free() {
	if f.x != nil {
		f.x.Free()
	}
	if f.net != nil {
		f.net.Free()
	}
}

// Sample is one timed run.
type Sample struct {
	Time   time.Duration
	Allocs uint64 // heap allocations during the run (whole process)
}

// TimeRuns calls run once untimed (primitive creation, weight packing), then
// reps times, timing each call and counting its heap allocations.
func TimeRuns(run func() error, reps int) ([]Sample, error) {
	if err := run(); err != nil {
		return nil, err
	}
	out := make([]Sample, reps)
	var ms runtime.MemStats
	for i := range out {
		runtime.ReadMemStats(&ms)
		a := ms.Mallocs
		t := time.Now()
		if err := run(); err != nil {
			return nil, err
		}
		out[i].Time = time.Since(t)
		runtime.ReadMemStats(&ms)
		out[i].Allocs = ms.Mallocs - a
	}
	return out, nil
}

// TrainStepFLOPs approximates one DCGAN step of the study nets at side h, batch
// n: G forward once and backward once (2×), D forward three times (real, fake,
// fake for G) and backward three times (2× each).
func TrainStepFLOPs(n, h int) (float64, error) {
	var f [2]float64
	for i, p := range []string{GeneratorPreset, DiscPreset} {
		cfg, err := model.ConfigFor(p, h)
		if err != nil {
			return 0, err
		}
		steps, err := cfg.Plan()
		if err != nil {
			return 0, err
		}
		_, _, f[i] = model.Counts(steps)
	}
	return float64(n) * (3*f[0] + 9*f[1]), nil
}

// TrainSteps runs the engine's DCGAN training loop (train.GAN: study G and D,
// the DCGAN recipe, BCE, Adam 2e-4 β1 0.5) for 1 + reps steps of batch n at
// side h on the images in data, and times the reps steps after the first: the
// time between consecutive progress reports, which is one step plus the loss
// read-back of the report (and the data loader's handover of a prefetched batch).
func TrainSteps(ctx context.Context, be backend.Backend, data string, n, h, reps int) ([]Sample, error) {
	r := train.DefaultRecipe()
	r.Batch = n
	var (
		out  []Sample
		last time.Time
		a    uint64
		ms   runtime.MemStats
	)
	_, err := train.GAN(ctx, train.GANConfig{Generator: GeneratorPreset, Discriminator: DiscPreset, Side: h, Recipe: r},
		train.Options{
			Backend: be, Data: data, Steps: 1 + reps, Seed: 1, Workers: 1,
			OnProgress: func(p train.Progress) {
				now := time.Now()
				runtime.ReadMemStats(&ms)
				if p.Step > 1 {
					out = append(out, Sample{Time: now.Sub(last), Allocs: ms.Mallocs - a})
				}
				runtime.ReadMemStats(&ms)
				a, last = ms.Mallocs, time.Now()
			},
		})
	if err != nil {
		return nil, err
	}
	if len(out) != reps {
		return nil, fmt.Errorf("bench: train steps: %d timed steps, want %d", len(out), reps)
	}
	return out, nil
}

// WriteImages writes n random side² PNGs into dir, a stand-in data set for
// TrainSteps (the loader decodes them; their content does not change the cost).
func WriteImages(dir string, n, side int) error {
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, side, side))
		for y := range side {
			for x := range side {
				img.SetNRGBA(x, y, color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img%03d.png", i)))
		if err != nil {
			return err
		}
		if err := errors.Join(png.Encode(f, img), f.Close()); err != nil {
			return err
		}
	}
	return nil
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}
