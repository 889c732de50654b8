package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/safetensors"
)

// writeImages writes n seeded size×size PNGs of coloured discs on a light ground
// (something with edges, like an emoji) into a new folder.
func writeImages(t testing.TB, n, size int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(42, uint64(size)))
	for i := range n {
		img := imageio.NewRGB(size, size)
		cx, cy := rng.Float64()*float64(size), rng.Float64()*float64(size)
		rad := (0.2 + 0.3*rng.Float64()) * float64(size)
		col := [3]uint8{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256))}
		for y := range size {
			for x := range size {
				if math.Hypot(float64(x)-cx, float64(y)-cy) < rad {
					img.Set(x, y, col[0], col[1], col[2])
				} else {
					v := uint8(230 + (x+y)%20)
					img.Set(x, y, v, v, v)
				}
			}
		}
		if err := imageio.WritePNGFile(filepath.Join(dir, fmt.Sprintf("img%03d.png", i)), img); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func refOptions(t testing.TB, data, out string) Options {
	t.Helper()
	b, err := choose.Open("ref")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return Options{Backend: b, Data: data, Out: out, Seed: 7, Samples: 4, Workers: 2}
}

// tinyRecipe exercises every stabiliser so resume must restore all of their state.
func tinyRecipe() Recipe {
	r := StableRecipe()
	r.Batch = 4
	return r
}

// narrow is a preset with its hidden widths divided by 8, so that tests on the
// pure-Go reference backend (under -race) stay fast.
func narrow(preset string) *model.Config {
	c, err := model.ConfigFor(preset, 0)
	if err != nil {
		panic(err)
	}
	c.Preset += "-narrow"
	for i, s := range c.Layers {
		if (s.Op == model.OpConv || s.Op == model.OpDense || s.Op == model.OpReshape) && s.Out >= 32 {
			c.Layers[i].Out = s.Out / 8
		}
	}
	return &c
}

func tinyGAN(r Recipe) GANConfig {
	return GANConfig{Side: 8, Recipe: r, GeneratorConfig: narrow("dcgan-g-stable"), DiscriminatorConfig: narrow("dcgan-d-stable")}
}

type runner func(ctx context.Context, o Options) (Result, error)

func ganRunner(loss Loss) runner {
	return func(ctx context.Context, o Options) (Result, error) {
		r := tinyRecipe()
		r.Loss = loss
		return GAN(ctx, tinyGAN(r), o)
	}
}

func multiStageRunner(ctx context.Context, o Options) (Result, error) {
	return MultiStage(ctx, MultiStageConfig{Side: 8, Recipe: tinyRecipe(), ContentWeight: 10,
		UpsamplerConfig: narrow("upsampler-stable"), DiscriminatorConfig: narrow("dcgan-d-stable")}, o)
}

// smallDataRunner is SmallDataRecipe (DiffAugment, hinge, TTUR, β1 = 0) against
// a narrow dcgan-d-sn: a resume must restore the RNG the augmentation draws
// from and D's spectral-norm u vectors.
func smallDataRunner(ctx context.Context, o Options) (Result, error) {
	r := SmallDataRecipe()
	r.Batch = 4
	return GAN(ctx, GANConfig{Side: 8, Recipe: r, GeneratorConfig: narrow("dcgan-g-stable"), DiscriminatorConfig: narrow("dcgan-d-sn")}, o)
}

func multiStageAugmentRunner(ctx context.Context, o Options) (Result, error) {
	r := tinyRecipe()
	r.Augment = "color,translation,cutout"
	return MultiStage(ctx, MultiStageConfig{Side: 8, Recipe: r, ContentWeight: 10,
		UpsamplerConfig: narrow("upsampler-stable"), DiscriminatorConfig: narrow("dcgan-d-sn")}, o)
}

func srRunner(ctx context.Context, o Options) (Result, error) {
	return SR(ctx, SRConfig{Config: narrow("espcn-x2"), Patch: 8, PatchesPerImage: 2, Batch: 4}, o)
}

// readTensors returns every tensor of a safetensors file by name.
func readTensors(t *testing.T, path string) map[string]safetensors.Tensor {
	t.Helper()
	f, err := safetensors.ReadFile(path, safetensors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]safetensors.Tensor{}
	for _, x := range f.Tensors {
		m[x.Name] = x
	}
	return m
}

func sameBits(t *testing.T, what string, a, b map[string]safetensors.Tensor) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d tensors vs %d", what, len(a), len(b))
	}
	for name, x := range a {
		y, ok := b[name]
		if !ok {
			t.Fatalf("%s: %s missing after resume", what, name)
		}
		if len(x.F32) != len(y.F32) || len(x.I64) != len(y.I64) {
			t.Fatalf("%s: %s sizes differ", what, name)
		}
		for i := range x.F32 {
			if math.Float32bits(x.F32[i]) != math.Float32bits(y.F32[i]) {
				t.Fatalf("%s: %s[%d] = %v straight, %v resumed", what, name, i, x.F32[i], y.F32[i])
			}
		}
		for i := range x.I64 {
			if x.I64[i] != y.I64[i] {
				t.Fatalf("%s: %s[%d] = %v straight, %v resumed", what, name, i, x.I64[i], y.I64[i])
			}
		}
	}
}

// TestResumeIsExact trains N steps straight and N/2 + checkpoint + resume + N/2 and
// wants the same weights, optimizer state and EMA bit for bit (on ref). With 10
// images and batch 4 an epoch is 2 steps, so the run crosses epoch boundaries and
// the resume point sits on one. The augmented runs draw DiffAugment's parameters
// from the loop's RNG (its state is in the checkpoint) and their D keeps
// spectral norm's u (in the checkpoint with D's weights).
func TestResumeIsExact(t *testing.T) {
	const steps = 6
	for _, tc := range []struct {
		name  string
		run   runner
		size  int
		epoch int
		data  func(t testing.TB, n, size int) string // nil: writeImages
	}{
		{"gan-bce", ganRunner(BCE), 8, 2, nil},
		{"gan-hinge", ganRunner(Hinge), 8, 2, nil},
		{"multistage", multiStageRunner, 16, 2, nil},
		{"gan-smalldata", smallDataRunner, 8, 2, nil},
		{"multistage-augment", multiStageAugmentRunner, 16, 2, nil},
		{"sr", srRunner, 16, 1, nil},
		{"gan-conditional", conditionalRunner, 8, 2, writeLabelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write := tc.data
			if write == nil {
				write = writeImages
			}
			data := write(t, 10, tc.size)
			ctx := context.Background()
			straight, split := t.TempDir(), t.TempDir()

			o := refOptions(t, data, straight)
			o.Steps = steps
			ra, err := tc.run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			o = refOptions(t, data, split)
			o.Steps = steps / 2
			if _, err := tc.run(ctx, o); err != nil {
				t.Fatal(err)
			}
			o = refOptions(t, data, split)
			o.Steps, o.Resume = steps, true
			rb, err := tc.run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if !rb.Resumed || rb.Steps != steps || ra.Steps != steps {
				t.Fatalf("steps %d straight, %d resumed (resumed=%v)", ra.Steps, rb.Steps, rb.Resumed)
			}
			if ra.Epoch != tc.epoch || rb.Epoch != tc.epoch {
				t.Errorf("stopped in epochs %d and %d, want %d", ra.Epoch, rb.Epoch, tc.epoch)
			}
			sameBits(t, "checkpoint", readTensors(t, ra.Checkpoint), readTensors(t, rb.Checkpoint))
			sameBits(t, "weights", readTensors(t, ra.Weights), readTensors(t, rb.Weights))
			for k, v := range ra.Losses {
				if rb.Losses[k] != v {
					t.Errorf("loss %s: %v straight, %v resumed", k, v, rb.Losses[k])
				}
			}
		})
	}
}

// TestResumeAtEpochEnd resumes from a checkpoint taken right after an epoch's last
// batch (10 images, batch 4, drop last: 2 steps an epoch, stop after 2), where the
// loader state is "epoch 0, rest of the epoch too small for a batch". The resumed
// run must go on into epoch 1 and match the straight run bit for bit.
func TestResumeAtEpochEnd(t *testing.T) {
	data := writeImages(t, 10, 8)
	ctx := context.Background()
	run := ganRunner(BCE)
	straight, split := t.TempDir(), t.TempDir()
	o := refOptions(t, data, straight)
	o.Steps = 4
	ra, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data, split)
	o.Steps = 2
	if _, err := run(ctx, o); err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data, split)
	o.Steps, o.Resume = 4, true
	rb, err := run(ctx, o)
	if err != nil {
		t.Fatalf("resume at the epoch end: %v", err)
	}
	if rb.Steps != 4 || rb.Epoch != 1 {
		t.Fatalf("resumed run stopped at step %d in epoch %d, want 4 in 1", rb.Steps, rb.Epoch)
	}
	sameBits(t, "checkpoint", readTensors(t, ra.Checkpoint), readTensors(t, rb.Checkpoint))
}

func TestPublishedWeightsOpen(t *testing.T) {
	data := writeImages(t, 10, 8)
	o := refOptions(t, data, t.TempDir())
	o.Steps = 2
	o.Meta = map[string]string{"data": "tiny"}
	res, err := GAN(context.Background(), tinyGAN(tinyRecipe()), o)
	if err != nil {
		t.Fatal(err)
	}
	n, meta, err := model.Open(res.Weights, o.Backend)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	if meta["data"] != "tiny" || meta["hirez.train.steps"] != "2" || meta[model.MetaPreset] != "dcgan-g-stable-narrow" {
		t.Errorf("metadata %v", meta)
	}
	imgs, err := n.Generate(context.Background(), []uint64{1, 2})
	if err != nil || len(imgs) != 2 || imgs[0].W != 8 {
		t.Fatalf("generate: %v %v", imgs, err)
	}
}

func TestHooks(t *testing.T) {
	data := writeImages(t, 10, 8)
	o := refOptions(t, data, "")
	o.Steps = 4
	o.SampleEvery = 2
	var progress []Progress
	var samples []Sample
	o.OnProgress = func(p Progress) { progress = append(progress, p) }
	o.OnSample = func(s Sample) { samples = append(samples, s) }
	res, err := GAN(context.Background(), tinyGAN(tinyRecipe()), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Weights != "" || res.Checkpoint != "" {
		t.Errorf("wrote files without Out: %+v", res)
	}
	if len(progress) != 4 {
		t.Fatalf("%d progress reports, want 4", len(progress))
	}
	last := progress[3]
	if last.Step != 4 || last.Steps != 4 || last.ImagesPerSec <= 0 || last.ETA != 0 {
		t.Errorf("last progress %+v", last)
	}
	for _, k := range []string{"d", "d_real", "d_fake", "g"} {
		if _, ok := last.Losses[k]; !ok {
			t.Errorf("loss %q missing from %v", k, last.Losses)
		}
	}
	// every 2 steps plus the final grid
	if len(samples) != 3 || !samples[2].Final || samples[0].Step != 2 {
		t.Fatalf("samples %+v", samples)
	}
	// 4 images of 8 px in a 2×2 grid with 2 px padding
	if g := samples[0].Grid; g.W != 2*8+3*2 || g.H != g.W {
		t.Errorf("grid %d×%d", g.W, g.H)
	}
}

// TestCancelSavesCheckpoint cancels mid-run: the error is ctx's, the checkpoint
// holds the steps done, and a resumed run finishes exactly like a straight one.
func TestCancelSavesCheckpoint(t *testing.T) {
	data := writeImages(t, 10, 16)
	out, straight := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := refOptions(t, data, out)
	o.Steps = 5
	o.OnProgress = func(p Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	_, err := srRunner(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(out, CheckpointFile)); err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data, out)
	o.Steps, o.Resume = 5, true
	rb, err := srRunner(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o = refOptions(t, data, straight)
	o.Steps = 5
	ra, err := srRunner(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "weights", readTensors(t, ra.Weights), readTensors(t, rb.Weights))
}

func TestResumeRefusesOtherRun(t *testing.T) {
	data := writeImages(t, 10, 16)
	out := t.TempDir()
	o := refOptions(t, data, out)
	o.Steps = 1
	if _, err := srRunner(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Resume, o.Steps = true, 2
	_, err := SR(context.Background(), SRConfig{Config: narrow("espcn-x2"), Patch: 8, PatchesPerImage: 2, Batch: 2}, o)
	if err == nil {
		t.Fatal("resumed a checkpoint of a run with another batch size")
	}
}

func TestBadOptions(t *testing.T) {
	data := writeImages(t, 2, 8)
	base := refOptions(t, data, "")
	base.Steps = 1
	for _, tc := range []struct {
		name string
		mod  func(*Options, *GANConfig)
	}{
		{"no limit", func(o *Options, _ *GANConfig) { o.Steps = 0 }},
		{"no backend", func(o *Options, _ *GANConfig) { o.Backend = nil }},
		{"no data", func(o *Options, _ *GANConfig) { o.Data = "" }},
		{"resume without out", func(o *Options, _ *GANConfig) { o.Resume = true }},
		{"bad loss", func(_ *Options, c *GANConfig) { c.Recipe.Loss = "wgan" }},
		{"bad smoothing", func(_ *Options, c *GANConfig) { c.Recipe.LabelSmoothing = 0.7 }},
		{"zero lr", func(_ *Options, c *GANConfig) { c.Recipe.LRD = 0; c.Recipe.Batch = 2 }},
		{"bad augment", func(_ *Options, c *GANConfig) { c.Recipe.Augment = "translation,rotate" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, c := base, tinyGAN(tinyRecipe())
			tc.mod(&o, &c)
			if _, err := GAN(context.Background(), c, o); !errors.Is(err, ErrBadOptions) {
				t.Errorf("err = %v, want ErrBadOptions", err)
			}
		})
	}
	// more images than a batch are needed
	o := base
	if _, err := GAN(context.Background(), tinyGAN(tinyRecipe()), o); err == nil {
		t.Error("trained on 2 images with batch 4")
	}
}

// TestSRLearns: a few dozen steps of ESPCN on ref lower the MSE.
func TestSRLearns(t *testing.T) {
	data := writeImages(t, 16, 16)
	o := refOptions(t, data, "")
	o.Steps = 60
	var first, last float64
	o.OnProgress = func(p Progress) {
		if p.Step <= 5 {
			first += p.Losses["mse"] / 5
		}
		if p.Step > 55 {
			last += p.Losses["mse"] / 5
		}
	}
	if _, err := SR(context.Background(), SRConfig{Config: narrow("espcn-x2"), Patch: 8, PatchesPerImage: 2, Batch: 8, LR: 3e-3}, o); err != nil {
		t.Fatal(err)
	}
	if !(last < 0.7*first) {
		t.Errorf("mse %v in the first steps, %v in the last", first, last)
	}
}

// The SR learning rate is constant, then falls linearly to 0 over the last Decay
// of the run; a residual preset trains through the loop.
func TestSRDecay(t *testing.T) {
	data := writeImages(t, 8, 16)
	o := refOptions(t, data, "")
	o.Steps = 10
	c := SRConfig{Preset: "espcn-residual", Patch: 8, PatchesPerImage: 2, Batch: 4, LR: 1e-3, Decay: 0.5}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	j, err := newSRJob(context.Background(), c, o)
	if err != nil {
		t.Fatal(err)
	}
	defer j.free()
	for _, tc := range []struct{ frac, want float64 }{{0, 1e-3}, {0.5, 1e-3}, {0.75, 5e-4}, {1, 0}} {
		j.progress(tc.frac)
		if got := float64(j.opt.Config().LR); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("lr at %v of the run = %v, want %v", tc.frac, got, tc.want)
		}
	}
	if _, err := SR(context.Background(), c, o); err != nil {
		t.Fatal(err)
	}
	c.Decay = 2
	if _, err := SR(context.Background(), c, o); !errors.Is(err, ErrBadOptions) {
		t.Errorf("decay 2: %v", err)
	}
}

// TestSWDProbe: the periodic SWD fires every Every steps with the real-vs-real
// floor, shows up as the "swd" loss, keeps its clock across a resume, and changes
// nothing about the training itself (same weights as a run without it).
func TestSWDProbe(t *testing.T) {
	data := writeImages(t, 12, 16)
	ctx := context.Background()
	var points []SWDPoint
	probe := &SWDProbe{Every: 2, Data: data, N: 4, OnEval: func(p SWDPoint) { points = append(points, p) }}
	gan := func(o Options, p *SWDProbe) (Result, error) {
		c := tinyGAN(tinyRecipe())
		c.Side, c.SWD = 16, p
		return GAN(ctx, c, o)
	}
	plain := refOptions(t, data, t.TempDir())
	plain.Steps = 6
	ra, err := gan(plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	split := t.TempDir()
	o := refOptions(t, data, split)
	o.Steps = 3
	var swdLoss []float64
	o.OnProgress = func(p Progress) {
		if v, ok := p.Losses["swd"]; ok {
			swdLoss = append(swdLoss, v)
		}
	}
	if _, err := gan(o, probe); err != nil {
		t.Fatal(err)
	}
	o.Steps, o.Resume = 6, true
	rb, err := gan(o, probe)
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, p := range points {
		steps = append(steps, p.Step)
		if p.N != 4 || p.SWD.Mean <= 0 || p.Floor.Mean <= 0 || math.IsNaN(p.SWD.Mean) {
			t.Errorf("step %d: %+v", p.Step, p)
		}
	}
	if fmt.Sprint(steps) != "[2 4 6]" {
		t.Errorf("SWD evaluated at steps %v, want [2 4 6] (every 2, clock kept across the resume)", steps)
	}
	if len(swdLoss) != 5 || swdLoss[len(swdLoss)-1] != points[2].SWD.Mean {
		t.Errorf("swd in progress: %v (points %v)", swdLoss, points)
	}
	if points[0].Floor.Mean != points[2].Floor.Mean {
		t.Errorf("floor changed between evaluations: %v vs %v", points[0].Floor.Mean, points[2].Floor.Mean)
	}
	sameBits(t, "weights with and without the probe", readTensors(t, ra.Weights), readTensors(t, rb.Weights))

	c := tinyGAN(tinyRecipe())
	c.Side, c.SWD = 16, &SWDProbe{Every: 1, Data: data, N: 100}
	if _, err := GAN(ctx, c, plain); !errors.Is(err, ErrBadOptions) {
		t.Errorf("a probe asking for more real images than the folder has: %v", err)
	}
}

// TestAugmentChangesTraining: with DiffAugment the same seed trains other
// weights than without (D sees other images and the draws move the RNG), and
// spectral norm's u of D is in the checkpoint.
func TestAugmentChangesTraining(t *testing.T) {
	data := writeImages(t, 10, 8)
	ctx := context.Background()
	var weights []map[string]safetensors.Tensor
	for _, aug := range []string{"", "color,translation,cutout"} {
		r := tinyRecipe()
		r.Augment = aug
		o := refOptions(t, data, t.TempDir())
		o.Steps = 2
		c := tinyGAN(r)
		c.DiscriminatorConfig = narrow("dcgan-d-sn")
		res, err := GAN(ctx, c, o)
		if err != nil {
			t.Fatal(err)
		}
		ck := readTensors(t, res.Checkpoint)
		if _, ok := ck["d.conv2.weight_u"]; !ok {
			t.Errorf("augment %q: no d.conv2.weight_u in the checkpoint", aug)
		}
		weights = append(weights, readTensors(t, res.Weights))
	}
	same := true
	for name, x := range weights[0] {
		y := weights[1][name]
		for i := range x.F32 {
			same = same && math.Float32bits(x.F32[i]) == math.Float32bits(y.F32[i])
		}
	}
	if same {
		t.Error("the same weights with and without augmentation")
	}
}
