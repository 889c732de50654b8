package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/optim"
	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// tallyJob is the smallest job the loop core runs: no network, only a tally of
// what its steps saw, kept on the backend as a parameter: the steps, a normal
// draw from the loop's RNG per step and the first pixel of every batch. A run
// that lost or repeated a batch or a draw across a resume ends with another
// tally. A second part ("tally.mark") holds the steps again, to check that
// parts are written in order and each comes back.
type tallyJob struct {
	sig    string
	tally  *layer.Param
	mark   float32
	failAt int       // the step that fails, 0: none
	nan    bool      // losses report NaN
	freed  bool      // free was called
	final  []float32 // the tally when it was freed
}

func newTallyJob(t *testing.T, o Options) *tallyJob {
	t.Helper()
	v, err := tensor.New(o.Backend, 3)
	if err != nil {
		t.Fatal(err)
	}
	return &tallyJob{sig: "tally v1", tally: &layer.Param{Name: "tally", Value: v}}
}

func (j *tallyJob) values() []float32 {
	h, err := j.tally.Value.Host()
	if err != nil {
		panic(err)
	}
	return h
}

func (j *tallyJob) kind() string      { return "tally" }
func (j *tallyJob) signature() string { return j.sig }

func (j *tallyJob) loaderOptions() dataset.Options {
	return dataset.Options{Size: 8, Resample: dataset.Box, Range: dataset.RangeSigned, BatchSize: 3, FlipH: true}
}

func (j *tallyJob) step(_ context.Context, b *dataset.Batch, rng *rand.Rand) error {
	h := j.values()
	if int(h[0])+1 == j.failAt {
		return errors.New("tally: failing as told")
	}
	h[0]++
	h[1] += float32(rng.NormFloat64())
	h[2] += b.X[0]
	j.mark = h[0]
	return j.tally.Value.CopyFromHost(h)
}

func (j *tallyJob) losses() (map[string]float64, error) {
	h := j.values()
	if j.nan {
		return map[string]float64{"draws": math.NaN()}, nil
	}
	return map[string]float64{"steps": float64(h[0]), "draws": float64(h[1])}, nil
}

func (j *tallyJob) state() []ckptPart {
	return []ckptPart{
		{
			save: func(f *safetensors.File) error {
				f.Tensors = append(f.Tensors, safetensors.Tensor{Name: "tally.mark", DType: safetensors.F32, Shape: []int{1}, F32: []float32{j.mark}})
				return nil
			},
			load: func(f *safetensors.File) error {
				t, ok := f.Tensor("tally.mark")
				if !ok {
					return errors.New("tally.mark is missing")
				}
				j.mark = t.F32[0]
				return nil
			},
		},
		paramsPart("tally.", []*layer.Param{j.tally}),
	}
}

func (j *tallyJob) sample(context.Context) (*imageio.RGB, error) { return imageio.NewRGB(1, 1), nil }

func (j *tallyJob) publish(path string, meta map[string]string) error {
	return safetensors.WriteFile(path, &safetensors.File{Metadata: meta,
		Tensors: []safetensors.Tensor{{Name: "tally", DType: safetensors.F32, Shape: []int{3}, F32: j.values()}}})
}

func (j *tallyJob) trained() (*model.Network, *optim.EMA) { return nil, nil }

func (j *tallyJob) free() {
	j.freed, j.final = true, j.values()
	j.tally.Value.Free()
}

// runTally runs a tally job through the loops' entry point (launch); mod
// adjusts the job before it runs.
func runTally(t *testing.T, ctx context.Context, o Options, mod func(*tallyJob)) (Result, *tallyJob, error) {
	t.Helper()
	var j *tallyJob
	res, err := launch(ctx, o, "tally", func(*Options) error { return nil }, func(o Options) (*tallyJob, error) {
		j = newTallyJob(t, o)
		if mod != nil {
			mod(j)
		}
		return j, nil
	})
	if j != nil && !j.freed {
		t.Error("the loop did not free its job")
	}
	return res, j, err
}

// TestCoreResumeIsExact drives the loop core with the tally job (10 images in
// batches of 3, the last one dropped: an epoch is 3 steps): 8 steps
// straight equal 8 steps interrupted three ways — cancelled at step 3 (the
// checkpoint written on cancellation), stopped by a step limit at 5 and
// resumed in a new session, failed at step 7 after a checkpoint at 6 (a crash:
// no checkpoint on the way out) — in the tally, the scalars and the files.
func TestCoreResumeIsExact(t *testing.T) {
	data := writeImages(t, 10, 8)
	straight, split := t.TempDir(), t.TempDir()
	o := refOptions(t, data, straight)
	o.Steps = 8
	ra, ja, err := runTally(t, context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Steps != 8 || ra.Images != 24 || ra.Epoch != 2 || ra.Resumed {
		t.Fatalf("straight run %+v", ra)
	}
	if h := ja.final; h[0] != 8 {
		t.Fatalf("tally %v after 8 steps", h)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o = refOptions(t, data, split)
	o.Steps = 8
	var saved []int
	o.OnCheckpoint = func(_ string, step int) { saved = append(saved, step) }
	o.OnProgress = func(p Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	if _, _, err := runTally(t, ctx, o, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !slices.Equal(saved, []int{3}) {
		t.Fatalf("checkpoints at steps %v, want [3] (on cancellation)", saved)
	}

	o = refOptions(t, data, split)
	o.Steps, o.Resume = 5, true
	if r, _, err := runTally(t, context.Background(), o, nil); err != nil || !r.Resumed || r.Steps != 5 {
		t.Fatalf("second session: %+v, %v", r, err)
	}

	o = refOptions(t, data, split)
	o.Steps, o.Resume, o.CheckpointEvery = 8, true, 3
	if _, _, err := runTally(t, context.Background(), o, func(j *tallyJob) { j.failAt = 7 }); err == nil || !strings.Contains(err.Error(), "step 7: tally: failing") {
		t.Fatalf("err = %v, want the failure of step 7", err)
	}

	o = refOptions(t, data, split)
	o.Steps, o.Resume = 8, true
	rb, jb, err := runTally(t, context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rb.Resumed || rb.Steps != ra.Steps || rb.Images != ra.Images || rb.Epoch != ra.Epoch {
		t.Fatalf("resumed %+v, straight %+v", rb, ra)
	}
	if rb.Elapsed <= 0 {
		t.Errorf("elapsed %v: the sessions' time is lost", rb.Elapsed)
	}
	if a, b := ja.final, jb.final; !slices.Equal(a, b) || jb.mark != 8 {
		t.Fatalf("tally %v straight, %v resumed (mark %v)", a, b, jb.mark)
	}
	for k, v := range ra.Losses {
		if rb.Losses[k] != v {
			t.Errorf("loss %s: %v straight, %v resumed", k, v, rb.Losses[k])
		}
	}
	sameBits(t, "checkpoint", readTensors(t, ra.Checkpoint), readTensors(t, rb.Checkpoint))
	sameBits(t, "weights", readTensors(t, ra.Weights), readTensors(t, rb.Weights))
	if filepath.Base(rb.Weights) != "tally.safetensors" {
		t.Errorf("published %s, want the default name", rb.Weights)
	}

	// Resuming a finished run takes no step and publishes again.
	o = refOptions(t, data, split)
	o.Steps, o.Resume = 8, true
	if rc, _, err := runTally(t, context.Background(), o, nil); err != nil || rc.Steps != 8 || !rc.Resumed {
		t.Errorf("resuming a finished run: %+v, %v", rc, err)
	}
}

// TestCoreCadence: checkpoints, progress reports and sample grids come every
// so many steps, and the last checkpoint and the final grid at the end.
func TestCoreCadence(t *testing.T) {
	data := writeImages(t, 10, 8)
	o := refOptions(t, data, t.TempDir())
	o.Steps, o.CheckpointEvery, o.ProgressEvery, o.SampleEvery = 5, 2, 2, 2
	var saved, reported, sampled []int
	var final []bool
	o.OnCheckpoint = func(path string, step int) {
		if filepath.Base(path) != CheckpointFile {
			t.Errorf("checkpoint %s", path)
		}
		saved = append(saved, step)
	}
	o.OnProgress = func(p Progress) {
		reported = append(reported, p.Step)
		if p.Steps != 5 || p.Losses["steps"] != float64(p.Step) || p.Epoch != (p.Step-1)/3 || p.ETA < 0 {
			t.Errorf("progress %+v", p)
		}
	}
	o.OnSample = func(s Sample) { sampled, final = append(sampled, s.Step), append(final, s.Final) }
	res, _, err := runTally(t, context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(saved, []int{2, 4, 5}) || !slices.Equal(reported, []int{2, 4}) || !slices.Equal(sampled, []int{2, 4, 5}) ||
		!slices.Equal(final, []bool{false, false, true}) {
		t.Errorf("checkpoints %v, reports %v, grids %v (final %v)", saved, reported, sampled, final)
	}
	if res.Losses["steps"] != 5 {
		t.Errorf("result losses %v", res.Losses)
	}
}

// TestCoreLimits: the run stops at the first limit reached, epochs and the
// time budget included (resumed time counts).
func TestCoreLimits(t *testing.T) {
	data := writeImages(t, 10, 8)
	o := refOptions(t, data, "")
	o.Epochs, o.Steps = 2, 100
	if res, _, err := runTally(t, context.Background(), o, nil); err != nil || res.Steps != 6 || res.Epoch != 2 {
		t.Errorf("2 epochs: %+v, %v; want 6 steps", res, err)
	}
	o = refOptions(t, data, "")
	o.Epochs, o.Steps = 100, 4
	if res, _, err := runTally(t, context.Background(), o, nil); err != nil || res.Steps != 4 || res.Epoch != 1 {
		t.Errorf("4 steps: %+v, %v", res, err)
	}

	out := t.TempDir()
	o = refOptions(t, data, out)
	o.Steps = 2
	first, _, err := runTally(t, context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A budget the first session already spent: the resumed run takes no step.
	o = refOptions(t, data, out)
	o.Budget, o.Resume = first.Elapsed, true
	res, _, err := runTally(t, context.Background(), o, nil)
	if err != nil || res.Steps != 2 || res.Elapsed < first.Elapsed {
		t.Errorf("spent budget: %+v, %v; first session %+v", res, err, first)
	}
	o = refOptions(t, data, out)
	o.Budget, o.Resume = time.Hour, true
	o.OnProgress = func(p Progress) {
		if p.ETA <= 0 || p.ETA > time.Hour {
			t.Errorf("ETA %v under an hour's budget", p.ETA)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.OnCheckpoint = func(_ string, step int) { cancel() }
	o.CheckpointEvery = 3
	if res, _, err := runTally(t, ctx, o, nil); !errors.Is(err, context.Canceled) || res.Steps != 3 {
		t.Errorf("budget run stopped by ctx: %+v, %v", res, err)
	}
}

func TestCoreErrors(t *testing.T) {
	data := writeImages(t, 10, 8)
	o := refOptions(t, data, "")
	o.Steps = 3
	o.OnProgress = func(Progress) {}
	if _, _, err := runTally(t, context.Background(), o, func(j *tallyJob) { j.nan = true }); err == nil || !strings.Contains(err.Error(), "step 1: training diverged") {
		t.Errorf("NaN loss: %v", err)
	}
	o.Steps = 0
	if _, _, err := runTally(t, context.Background(), o, nil); !errors.Is(err, ErrBadOptions) {
		t.Errorf("no limit: %v", err)
	}
	out := t.TempDir()
	o = refOptions(t, data, out)
	o.Steps = 1
	if _, _, err := runTally(t, context.Background(), o, nil); err != nil {
		t.Fatal(err)
	}
	o.Steps, o.Resume = 2, true
	if _, _, err := runTally(t, context.Background(), o, func(j *tallyJob) { j.sig = "tally v2" }); err == nil || !strings.Contains(err.Error(), "different run") {
		t.Errorf("resumed another run's checkpoint: %v", err)
	}
}

// TestCheckpointParts writes a checkpoint and reads it back into a fresh job:
// the runner's scalars in the metadata, the parts' tensors in the order the job
// lists them, each restored; no file is no checkpoint, a file of another kind
// or signature is refused.
func TestCheckpointParts(t *testing.T) {
	o := refOptions(t, "unused", "")
	path := filepath.Join(t.TempDir(), CheckpointFile)
	j := newTallyJob(t, o)
	defer j.free()
	if err := j.tally.Value.CopyFromHost([]float32{4, -1.5, 0.25}); err != nil {
		t.Fatal(err)
	}
	j.mark = 4
	pcg := rand.NewPCG(1, 2)
	rand.New(pcg).Uint64()
	st := ckptState{step: 4, images: 12, elapsed: 3 * time.Second, loader: dataset.State{Epoch: 1, Pos: 3, Seed: 7}, rng: mustMarshal(pcg)}
	if err := writeCheckpoint(path, j, st); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path, safetensors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range f.Tensors {
		names = append(names, x.Name)
	}
	if !slices.Equal(names, []string{"tally.mark", "tally.tally"}) {
		t.Errorf("tensors %v", names)
	}
	if m := f.Metadata; m[metaFormat] != formatVersion || m[metaKind] != "tally" || m[metaSignature] != "tally v1" || m[metaStep] != "4" || m[metaImages] != "12" ||
		m[metaElapsed] != "3000000000" || m[metaLoader] != `{"Epoch":1,"Pos":3,"Seed":7}` {
		t.Errorf("metadata %v", m)
	}

	k := newTallyJob(t, o)
	defer k.free()
	got, ok, err := readCheckpoint(path, k)
	if err != nil || !ok {
		t.Fatalf("read: %v %v", ok, err)
	}
	if got.step != st.step || got.images != st.images || got.elapsed != st.elapsed || got.loader != st.loader || !slices.Equal(got.rng, st.rng) {
		t.Errorf("scalars %+v, wrote %+v", got, st)
	}
	if h := k.values(); !slices.Equal(h, []float32{4, -1.5, 0.25}) || k.mark != 4 {
		t.Errorf("state %v (mark %v)", h, k.mark)
	}

	if _, ok, err := readCheckpoint(filepath.Join(t.TempDir(), CheckpointFile), k); ok || err != nil {
		t.Errorf("no file: %v %v", ok, err)
	}
	k.sig = "tally v2"
	if _, _, err := readCheckpoint(path, k); err == nil {
		t.Error("read a checkpoint of another signature")
	}
	weights := filepath.Join(t.TempDir(), "w.safetensors")
	if err := j.publish(weights, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readCheckpoint(weights, j); err == nil || !strings.Contains(err.Error(), "not a hirez checkpoint") {
		t.Errorf("read published weights as a checkpoint: %v", err)
	}
}
