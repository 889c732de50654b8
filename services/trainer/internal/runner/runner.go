// Package runner runs training jobs on the engine: it turns a job.Task into an
// engine/train loop (GAN, MultiStage or SR) on the requested backend, turns the
// loop's callbacks into job reports (progress, sample-grid PNGs written
// atomically, checkpoints) and returns the published weights. A task with
// InitFrom starts from that registry file's weights (engine/train's Init).
package runner

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hirez-ml/hirez/engine/atomicfile"
	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/train"

	"github.com/hirez-ml/hirez/services/trainer/internal/job"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// Samples is the number of images in a sample grid.
const Samples = 16

// MetaInitFrom is the metadata key of a published model that records the
// registry version ("<name>@sha256:…") its training started from.
const MetaInitFrom = "hirez.init_from"

// Engine runs jobs with engine/train. Backends are opened per attempt and
// cached by name; one job runs at a time, so they are never shared.
type Engine struct {
	// DefaultBackend is used when a spec names none ("" = the fastest built in).
	DefaultBackend string
	// Threads for the cpu backend; 0 = one per CPU.
	Threads int

	mu     sync.Mutex
	opened map[string]backend.Backend
}

// Open returns the named backend ("" = DefaultBackend), opening it once.
func (e *Engine) Open(name string) (backend.Backend, error) {
	if name == "" {
		name = e.DefaultBackend
	}
	if name == "" {
		name = choose.Default()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.opened[name]; ok {
		return b, nil
	}
	b, err := choose.OpenWith(name, choose.Options{Threads: e.Threads, Training: true})
	if err != nil {
		return nil, err
	}
	if e.opened == nil {
		e.opened = map[string]backend.Backend{}
	}
	e.opened[name] = b
	return b, nil
}

var _ job.Runner = (*Engine)(nil)

// Run implements job.Runner.
func (e *Engine) Run(ctx context.Context, t job.Task) (job.Output, error) {
	b, err := e.Open(t.Spec.Backend)
	if err != nil {
		return job.Output{}, err
	}
	h := t.Hyper
	side := t.Spec.ImageSize
	if side == 0 {
		side = t.Recipe.Side
	}
	samplesDir := filepath.Join(t.Dir, "samples")
	if err := os.MkdirAll(samplesDir, 0o755); err != nil {
		return job.Output{}, err
	}
	w := &watcher{t: t, lastSample: -1}
	lastCheckpoint := -1
	meta := map[string]string{"hirez.job": "jobs/" + t.JobID}
	if f := t.Spec.InitFrom; f != nil {
		meta[MetaInitFrom] = f.Name + "@" + f.Version
	}
	o := train.Options{
		Backend:         b,
		Data:            t.DatasetDir,
		Out:             t.Dir,
		Name:            "model",
		Steps:           int(h.Steps),
		Epochs:          h.Epochs,
		Seed:            uint64(t.Spec.Seed),
		Resume:          true,
		Init:            t.InitFrom,
		CheckpointEvery: int(h.CheckpointEvery),
		OnCheckpoint: func(path string, step int) {
			// The loop saves again at the end (and on cancellation) even
			// when it has just saved that step: report each step once.
			if step != lastCheckpoint {
				lastCheckpoint = step
				t.Report.Checkpoint(int64(step), path)
			}
		},
		SampleEvery: int(h.SampleEvery),
		Samples:     Samples,
		OnProgress:  w.progress,
		OnSample: func(s train.Sample) {
			w.sample(samplesDir, s)
		},
		Meta: meta,
	}
	rec := train.Recipe{
		LRG: h.GLR, LRD: h.DLR, Beta1: h.Beta1, Beta2: h.Beta2, Batch: h.BatchSize,
		EMADecay: h.EMADecay, LabelSmoothing: t.Recipe.LabelSmoothing, Loss: train.BCE,
		// Without the warm-up a short job publishes an EMA still close to the random
		// initial weights (docs/training.md).
		EMAWarmup: h.EMADecay > 0,
	}
	if h.Loss == job.LossHinge {
		rec.Loss, rec.LabelSmoothing = train.Hinge, 0
	}
	var res train.Result
	switch t.Spec.Kind {
	case registry.KindDCGANGenerator:
		res, err = train.GAN(ctx, train.GANConfig{Generator: t.Recipe.Net, Discriminator: t.Recipe.Critic, Side: side, Recipe: rec}, o)
	case registry.KindUpsampler:
		res, err = train.MultiStage(ctx, train.MultiStageConfig{Upsampler: t.Recipe.Net, Discriminator: t.Recipe.Critic, Side: side, Recipe: rec}, o)
	case registry.KindSRCNN, registry.KindESPCN:
		ppi := 4
		if h.BatchSize%ppi != 0 {
			ppi = 1
		}
		res, err = train.SR(ctx, train.SRConfig{Preset: t.Recipe.Net, Patch: 2 * side, PatchesPerImage: ppi, Batch: h.BatchSize, LR: h.GLR, Beta1: h.Beta1, Beta2: h.Beta2}, o)
	default:
		return job.Output{}, fmt.Errorf("no training loop for %s", t.Spec.Kind)
	}
	if err != nil {
		return job.Output{}, err
	}
	return job.Output{ModelPath: res.Weights}, nil
}

// watcher turns train's progress and sample callbacks into job reports.
type watcher struct {
	t job.Task
	// lastSample is the step of the last grid reported: the final grid of a
	// run that ends on a sample step is the same picture.
	lastSample int
}

func (w *watcher) progress(p train.Progress) {
	jp := job.Progress{
		Step: int64(p.Step), TotalSteps: int64(p.Steps), Epoch: p.Epoch,
		Losses: make(map[string]float32, len(p.Losses)), ImagesPerSec: float32(p.ImagesPerSec),
	}
	for k, v := range p.Losses {
		jp.Losses[k] = float32(v)
	}
	if p.ETA >= 0 {
		jp.ETA = p.ETA
		if jp.TotalSteps == 0 && p.Step > 0 && p.Elapsed > 0 {
			perStep := p.Elapsed / time.Duration(p.Step)
			if perStep > 0 {
				jp.TotalSteps = int64(p.Step) + int64(math.Round(float64(p.ETA)/float64(perStep)))
			}
		}
	}
	w.t.Report.Progress(jp)
}

func (w *watcher) sample(dir string, s train.Sample) {
	if s.Grid == nil {
		return
	}
	var buf bytes.Buffer
	if err := imageio.EncodePNG(&buf, s.Grid, imageio.Text{Key: "hirez.job", Value: "jobs/" + w.t.JobID}, imageio.Text{Key: "hirez.step", Value: fmt.Sprint(s.Step)}); err != nil {
		return
	}
	name := fmt.Sprintf("step-%09d.png", s.Step)
	if s.Final {
		name = "final.png"
	}
	_ = atomicfile.WriteBytes(filepath.Join(dir, name), buf.Bytes())
	if buf.Len() > 4<<20 { // MaxSampleGridBytes: too big to stream; the file is on disk
		return
	}
	if s.Step == w.lastSample {
		return
	}
	w.lastSample = s.Step
	rows, cols := gridShape(w.t.Spec.Kind)
	w.t.Report.Sample(job.Sample{Step: int64(s.Step), PNG: buf.Bytes(), Rows: rows, Cols: cols})
}

// gridShape is the layout engine/train renders: generators a square sheet,
// upscalers three rows (input, output, original) or two.
func gridShape(k registry.Kind) (rows, cols int) {
	if k.Generator() {
		c := int(math.Ceil(math.Sqrt(Samples)))
		return (Samples + c - 1) / c, c
	}
	return 3, Samples
}
