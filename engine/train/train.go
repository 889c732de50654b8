// Package train holds the training loops of the three pipelines the study compares:
// a DCGAN (GAN), the multi-stage GAN's adversarially trained Up Sampler (MultiStage)
// and a super-resolution network trained on its own with MSE (SR).
//
// It is a library the trainer service and the CLI drive: it prints nothing, reports
// progress through callbacks, renders sample grids from a fixed input set, checks
// ctx every step, and checkpoints everything a run needs (weights, optimizer and EMA
// state, RNG, data loader position, step) atomically into one safetensors file, so
// that a resumed run takes exactly the steps an uninterrupted one would have taken.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/optim"
)

// Options are what every loop shares: data, where results go, when to stop, and
// the hooks that report progress.
type Options struct {
	Backend backend.Backend // required; choose one with engine/backend/choose
	Data    string          // folder of training images (searched recursively)
	// Groups, when set, trains on the images of these Unicode emoji groups only
	// (by the set's labels.tsv; see dataset.Options.Groups).
	Groups []string
	// Out is the run folder: Out/checkpoint.safetensors and Out/<Name>.safetensors.
	// Empty means nothing is written (a dry run, or a caller that wants only the hooks).
	Out  string
	Name string // file name of the published weights without extension; "" = the loop's default

	// The run stops at the first limit reached; at least one must be set.
	Steps  int           // optimizer steps (of G, for the GANs) in total, resumed ones included
	Epochs int           // passes over Data
	Budget time.Duration // wall-clock training time, resumed time included

	Seed   uint64 // weights, latents, shuffling and flips all derive from it
	Resume bool   // continue from Out/checkpoint.safetensors when it exists

	// Init is a weights file (a published model of the same preset, e.g. a
	// registry version) the trained network starts from instead of its seeded
	// initialisation; see warmStart for what the other networks do. It is
	// ignored when the run resumes from a checkpoint, which holds the weights.
	Init string

	CheckpointEvery int // steps between checkpoints; 0 = only at the end and on cancellation
	ProgressEvery   int // steps between OnProgress calls; 0 = every step
	OnProgress      func(Progress)

	// OnCheckpoint is called after each checkpoint has been written durably
	// (renamed into place and fsynced), with its path and step.
	OnCheckpoint func(path string, step int)

	SampleEvery int // steps between sample grids; 0 = only at the end (when OnSample is set)
	Samples     int // images in a grid (fixed inputs); 0 = 16
	OnSample    func(Sample)

	Workers int               // image decoding goroutines; 0 = GOMAXPROCS
	Meta    map[string]string // extra metadata written into the published weights
}

// Progress is one progress report.
type Progress struct {
	Step, Steps  int                // steps done; Steps is 0 when the run is not step-bounded
	Epoch        int                // current epoch, from 0
	Losses       map[string]float64 // the last step's losses, by name
	ImagesPerSec float64            // training samples per second since the previous report
	Elapsed      time.Duration      // training time so far, resumed time included
	ETA          time.Duration      // estimated time left; −1 when unknown
	// Data is what the data loader has seen so far: files skipped as corrupt
	// or too small are counted here (and in Result), since the loop itself
	// prints nothing.
	Data dataset.Stats
}

// Sample is a grid rendered from the loop's fixed input set.
type Sample struct {
	Step  int
	Final bool // the grid of the finished run
	Grid  *imageio.RGB
}

// Result says how a run ended and where its files are.
type Result struct {
	Steps      int
	Epoch      int // the epoch the run stopped in, from 0 (= Options.Epochs when that limit stopped it)
	Images     int64
	Elapsed    time.Duration
	Resumed    bool               // the run started from a checkpoint
	Losses     map[string]float64 // the last step's losses
	Weights    string             // the published weights ("" without Out)
	Checkpoint string             // the last checkpoint ("" without Out)
	// Data is what the data loader saw: Data.Corrupt and Data.TooSmall
	// count the files skipped, Data.Errors says why for the first few.
	Data dataset.Stats
}

// SkippedFilesMeta is the published weights' metadata key that records how
// many training files the run skipped as corrupt or too small, when any.
const SkippedFilesMeta = "hirez.train.skipped_files"

// CheckpointFile is the checkpoint's name inside Options.Out.
const CheckpointFile = "checkpoint.safetensors"

// ErrBadOptions is wrapped by every error about options that cannot run.
var ErrBadOptions = errors.New("bad training options")

func (o *Options) check() error {
	switch {
	case o.Backend == nil:
		return fmt.Errorf("%w: no backend", ErrBadOptions)
	case o.Data == "":
		return fmt.Errorf("%w: no data folder", ErrBadOptions)
	case o.Steps < 0 || o.Epochs < 0 || o.Budget < 0:
		return fmt.Errorf("%w: negative limit", ErrBadOptions)
	case o.Steps == 0 && o.Epochs == 0 && o.Budget == 0:
		return fmt.Errorf("%w: set steps, epochs or a time budget", ErrBadOptions)
	case o.Resume && o.Out == "":
		return fmt.Errorf("%w: resume needs an output folder", ErrBadOptions)
	}
	if o.Samples <= 0 {
		o.Samples = 16
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 1
	}
	return nil
}

// job is one loop (GAN, MultiStage, SR, Features) as the shared core sees it.
// The core (launch, run, writeCheckpoint, readCheckpoint) owns the data
// loader, the training RNG, the stop limits, the checkpoint, progress and
// sample cadence, resume and cancellation; a job brings what differs: its
// step, its losses, what its checkpoint holds (state), its sample grid and its
// published weights.
type job interface {
	kind() string
	// signature names what a checkpoint must agree on to be resumed.
	signature() string
	loaderOptions() dataset.Options
	step(ctx context.Context, b *dataset.Batch, rng *rand.Rand) error
	losses() (map[string]float64, error)
	// state is what the job checkpoints, in the order it is written: its
	// networks, optimizers, EMA and probe state (see ckptPart).
	state() []ckptPart
	sample(ctx context.Context) (*imageio.RGB, error)
	publish(path string, meta map[string]string) error
	// trained is the network the run trains and publishes (G, the Up Sampler,
	// the SR network) and the EMA of it that is published instead, or nil.
	trained() (*model.Network, *optim.EMA)
	free()
}

// scheduled is a job whose learning rate follows the run's progress (0 at the
// start, 1 at the first stop limit: steps, budget or epochs).
type scheduled interface {
	progress(frac float64)
}

// launch is every loop's entry point: it checks o, settles the loop's own
// config (prepare, which may also adjust o), builds the job with the settled
// options and runs it, publishing as name unless Options.Name says otherwise.
func launch[J job](ctx context.Context, o Options, name string, prepare func(*Options) error, build func(Options) (J, error)) (Result, error) {
	if err := o.check(); err != nil {
		return Result{}, err
	}
	if err := prepare(&o); err != nil {
		return Result{}, err
	}
	j, err := build(o)
	if err != nil {
		return Result{}, err
	}
	return run(ctx, o, j, name)
}

// run drives a job: loader, stop limits, hooks, checkpoints, publishing.
func run(ctx context.Context, o Options, j job, defaultName string) (res Result, err error) {
	defer j.free()
	lo := j.loaderOptions()
	lo.Dir, lo.Seed, lo.Workers, lo.Groups = o.Data, o.Seed, o.Workers, o.Groups
	lo.Shuffle, lo.DropLast = true, true
	loader, err := dataset.NewLoader(lo)
	if err != nil {
		return res, err
	}
	defer loader.Close()
	defer func() { res.Data = loader.Stats() }() // skipped files are reported on every return

	pcg := rand.NewPCG(o.Seed, 0x7472_6169_6e5f_7a30) // "train_z0": latents of the training steps
	rng := rand.New(pcg)
	var prior time.Duration
	name := o.Name
	if name == "" {
		name = defaultName
	}
	ckpt := ""
	if o.Out != "" {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return res, fmt.Errorf("output folder: %w", err)
		}
		ckpt = filepath.Join(o.Out, CheckpointFile)
	}
	if o.Resume {
		st, ok, err := readCheckpoint(ckpt, j)
		if err != nil {
			return res, err
		}
		if ok {
			if err := loader.Restore(st.loader); err != nil {
				return res, fmt.Errorf("resume: %w", err)
			}
			if err := pcg.UnmarshalBinary(st.rng); err != nil {
				return res, fmt.Errorf("resume: rng state: %w", err)
			}
			res.Steps, res.Images, prior, res.Resumed = st.step, st.images, st.elapsed, true
		}
	}
	if o.Init != "" && !res.Resumed {
		if err := warmStart(o.Init, j); err != nil {
			return res, err
		}
	}

	start := time.Now()
	elapsed := func() time.Duration { return prior + time.Since(start) }
	save := func() error {
		if ckpt == "" {
			return nil
		}
		res.Checkpoint = ckpt
		if err := writeCheckpoint(ckpt, j, ckptState{
			step: res.Steps, images: res.Images, elapsed: elapsed(), loader: loader.State(), rng: mustMarshal(pcg),
		}); err != nil {
			return err
		}
		if o.OnCheckpoint != nil {
			o.OnCheckpoint(ckpt, res.Steps)
		}
		return nil
	}
	sample := func(final bool) error {
		if o.OnSample == nil {
			return nil
		}
		g, err := j.sample(ctx)
		if err != nil {
			return fmt.Errorf("sample grid: %w", err)
		}
		o.OnSample(Sample{Step: res.Steps, Final: final, Grid: g})
		return nil
	}
	perEpoch := max(1, len(loader.Files())*max(1, srPatches(lo))/lo.BatchSize)
	lastT, lastImages := time.Now(), res.Images

	for {
		if e := loader.State().Epoch; o.Epochs > 0 && e >= o.Epochs {
			break
		}
		if o.Steps > 0 && res.Steps >= o.Steps || o.Budget > 0 && elapsed() >= o.Budget {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, errors.Join(err, save())
		}
		b, err := loader.Next(ctx)
		if errors.Is(err, io.EOF) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, errors.Join(ctx.Err(), save())
			}
			return res, fmt.Errorf("data: %w", err)
		}
		if sj, ok := j.(scheduled); ok {
			frac := 0.0
			if o.Steps > 0 {
				frac = max(frac, float64(res.Steps)/float64(o.Steps))
			}
			if o.Budget > 0 {
				frac = max(frac, float64(elapsed())/float64(o.Budget))
			}
			if o.Epochs > 0 {
				frac = max(frac, float64(res.Steps)/float64(perEpoch*o.Epochs))
			}
			sj.progress(min(frac, 1))
		}
		if err := j.step(ctx, b, rng); err != nil {
			return res, fmt.Errorf("step %d: %w", res.Steps+1, err)
		}
		res.Steps++
		res.Images += int64(b.N)
		if o.OnProgress != nil && res.Steps%o.ProgressEvery == 0 {
			l, err := j.losses()
			if err != nil {
				return res, fmt.Errorf("step %d: %w", res.Steps, err)
			}
			if err := finite(l); err != nil {
				return res, fmt.Errorf("step %d: training diverged: %w", res.Steps, err)
			}
			now := time.Now()
			p := Progress{
				Step: res.Steps, Steps: o.Steps, Epoch: loader.State().Epoch, Losses: l, Elapsed: elapsed(),
				ImagesPerSec: float64(res.Images-lastImages) / now.Sub(lastT).Seconds(),
				Data:         loader.Stats(),
			}
			p.ETA = eta(o, p, perEpoch, len(loader.Files()), loader.State())
			lastT, lastImages = now, res.Images
			o.OnProgress(p)
		}
		if o.SampleEvery > 0 && res.Steps%o.SampleEvery == 0 {
			if err := sample(false); err != nil {
				return res, err
			}
		}
		if o.CheckpointEvery > 0 && res.Steps%o.CheckpointEvery == 0 {
			if err := save(); err != nil {
				return res, err
			}
		}
	}
	res.Elapsed = elapsed()
	res.Epoch = loader.State().Epoch
	res.Data = loader.Stats() // for the metadata below; the defer keeps it for every return
	if res.Steps > 0 {
		if res.Losses, err = j.losses(); err != nil {
			return res, err
		}
	}
	if err := save(); err != nil {
		return res, err
	}
	if err := sample(true); err != nil {
		return res, err
	}
	if o.Out != "" {
		res.Weights = filepath.Join(o.Out, name+".safetensors")
		meta := map[string]string{
			"hirez.train.kind":    j.kind(),
			"hirez.train.steps":   fmt.Sprint(res.Steps),
			"hirez.train.epoch":   fmt.Sprint(res.Epoch),
			"hirez.train.seed":    fmt.Sprint(o.Seed),
			"hirez.train.recipe":  j.signature(),
			"hirez.train.elapsed": res.Elapsed.Round(time.Second).String(),
		}
		if n := res.Data.Corrupt + res.Data.TooSmall; n > 0 {
			meta[SkippedFilesMeta] = fmt.Sprint(n)
		}
		for k, v := range o.Meta {
			meta[k] = v
		}
		if err := j.publish(res.Weights, meta); err != nil {
			return res, fmt.Errorf("publish weights: %w", err)
		}
	}
	return res, nil
}

func srPatches(o dataset.Options) int {
	if o.SR == nil {
		return 1
	}
	return o.SR.PatchesPerImage
}

// eta estimates the time left from the average rate so far and the nearest limit.
func eta(o Options, p Progress, perEpoch, files int, st dataset.State) time.Duration {
	if p.Step == 0 || p.Elapsed <= 0 {
		return -1
	}
	perStep := p.Elapsed / time.Duration(p.Step)
	best := time.Duration(-1)
	take := func(d time.Duration) {
		if d < 0 {
			d = 0
		}
		if best < 0 || d < best {
			best = d
		}
	}
	if o.Steps > 0 {
		take(time.Duration(o.Steps-p.Step) * perStep)
	}
	if o.Epochs > 0 {
		done := float64(st.Epoch) + float64(st.Pos)/float64(max(1, files))
		take(time.Duration((float64(o.Epochs) - done) * float64(perEpoch) * float64(perStep)))
	}
	if o.Budget > 0 {
		take(o.Budget - p.Elapsed)
	}
	return best
}

func finite(l map[string]float64) error {
	for k, v := range l {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("loss %s is %v", k, v)
		}
	}
	return nil
}
