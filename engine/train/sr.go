package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/loss"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/optim"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// SRConfig is a super-resolution run: MSE between the network's output on a
// MATLAB-bicubic LR patch and the HR patch it came from (engine/dataset SR pairs).
type SRConfig struct {
	Preset          string  // upscaler preset on [0, 1] images; "" = srcnn-classic
	Patch           int     // HR patch side, a multiple of the preset's scale; 0 = 48
	PatchesPerImage int     // 0 = 4; must divide Batch
	Batch           int     // 0 = 32
	LR              float32 // Adam learning rate; 0 = 1e-3
	Beta1, Beta2    float32 // 0 = 0.9, 0.999 (Adam's defaults: no adversary here)
	// Decay is the final fraction of the run (by its stop limit: steps, budget or
	// epochs) over which the learning rate falls linearly from LR to 0; 0 keeps it
	// constant. It settles the weights at the end of a short run, where a
	// constant rate leaves them wherever the last noisy steps put them.
	Decay float32

	Config *model.Config // replaces the preset when set (see GANConfig)
}

func (c *SRConfig) defaults() error {
	if c.Preset == "" {
		c.Preset = "srcnn-classic"
	}
	if c.Patch == 0 {
		c.Patch = 48
	}
	if c.PatchesPerImage == 0 {
		c.PatchesPerImage = 4
	}
	if c.Batch == 0 {
		c.Batch = 32
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	if c.Beta1 == 0 {
		c.Beta1 = 0.9
	}
	if c.Beta2 == 0 {
		c.Beta2 = 0.999
	}
	if !(c.Decay >= 0 && c.Decay <= 1) {
		return fmt.Errorf("%w: SR lr decay %v (want a fraction of the run in [0, 1])", ErrBadOptions, c.Decay)
	}
	if c.Patch < 2 || c.Batch < 1 || c.PatchesPerImage < 1 || c.Batch%c.PatchesPerImage != 0 || !(c.LR > 0) {
		return fmt.Errorf("%w: SR patch %d, batch %d, %d patches per image, lr %v", ErrBadOptions, c.Patch, c.Batch, c.PatchesPerImage, c.LR)
	}
	return nil
}

// SR trains a super-resolution network on its own with MSE, as the study's SRCNN
// stage: random HR patches (with flips) of the images in o.Data and their MATLAB
// bicubic downscales, in [0, 1]. The published weights are "sr" by default.
func SR(ctx context.Context, c SRConfig, o Options) (Result, error) {
	return launch(ctx, o, "sr", func(*Options) error { return c.defaults() },
		func(o Options) (*srJob, error) { return newSRJob(ctx, c, o) })
}

type srJob struct {
	c     SRConfig
	b     backend.Backend
	net   *model.Network
	scale int
	opt   *optim.Adam
	mse   *loss.MSE
	last  loss.Result
	x, y  *tensor.Tensor
	fixed upscaleSamples
}

func newSRJob(ctx context.Context, c SRConfig, o Options) (_ *srJob, err error) {
	j := &srJob{c: c, b: o.Backend, mse: loss.NewMSE()}
	defer func() {
		if err != nil {
			j.free()
		}
	}()
	var cfg model.Config
	if c.Config != nil {
		cfg = *c.Config
	} else if cfg, err = model.ConfigFor(c.Preset, 0); err != nil {
		return nil, err
	}
	if cfg.Role != model.Upscaler || cfg.Range != model.Unit {
		return nil, fmt.Errorf("%w: %s is not an upscaler on [0, 1] images", ErrBadOptions, c.Preset)
	}
	j.scale = cfg.Scale
	if c.Patch%j.scale != 0 {
		return nil, fmt.Errorf("%w: patch %d is not a multiple of the scale %d", ErrBadOptions, c.Patch, j.scale)
	}
	if j.net, err = buildNet(c.Preset, c.Config, 0, o); err != nil {
		return nil, err
	}
	if j.opt, err = optim.NewAdam(j.net.Params(), optim.AdamConfig{LR: c.LR, Beta1: c.Beta1, Beta2: c.Beta2, Epsilon: 1e-8, Prefix: "opt"}); err != nil {
		return nil, err
	}
	// Fixed sample patches: the first patch of each of the first images, no flips.
	j.fixed.scale = j.scale
	if err := j.fixed.load(ctx, dataset.Options{Dir: o.Data, Range: dataset.Range01, BatchSize: min(o.Samples, 8), Seed: 1, Workers: o.Workers,
		SR: &dataset.SROptions{Scale: j.scale, Patch: c.Patch, PatchesPerImage: 1}},
		imageio.FromCHW01, func(b *dataset.Batch) ([]float32, []float32, int, int) {
			return b.X, b.Y, b.XShape[3], b.YShape[3]
		}); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *srJob) kind() string { return "sr" }

func (j *srJob) trained() (*model.Network, *optim.EMA) { return j.net, nil }

func (j *srJob) signature() string {
	s := fmt.Sprintf("net=%s patch=%d ppi=%d batch=%d lr=%v betas=%v,%v", netName(j.c.Preset, j.c.Config), j.c.Patch, j.c.PatchesPerImage, j.c.Batch, j.c.LR, j.c.Beta1, j.c.Beta2)
	if j.c.Decay > 0 {
		s += fmt.Sprintf(" decay=%v", j.c.Decay)
	}
	return s
}

// progress implements scheduled: the linear decay of the last Decay of the run.
func (j *srJob) progress(frac float64) {
	if j.c.Decay <= 0 {
		return
	}
	start := 1 - float64(j.c.Decay)
	f := 1.0
	if frac > start {
		f = max(0, (1-frac)/float64(j.c.Decay))
	}
	j.opt.SetLR(float32(float64(j.c.LR) * f))
}

func (j *srJob) loaderOptions() dataset.Options {
	return dataset.Options{Range: dataset.Range01, BatchSize: j.c.Batch, FlipH: true,
		SR: &dataset.SROptions{Scale: j.scale, Patch: j.c.Patch, PatchesPerImage: j.c.PatchesPerImage}}
}

func (j *srJob) step(_ context.Context, b *dataset.Batch, _ *rand.Rand) error {
	if err := upload(&j.x, j.b, b.X, b.XShape[:]...); err != nil {
		return err
	}
	if err := upload(&j.y, j.b, b.Y, b.YShape[:]...); err != nil {
		return err
	}
	out, err := j.net.Forward(j.x, layer.Train)
	if err != nil {
		return err
	}
	if j.last, err = j.mse.Compute(out, j.y); err != nil {
		return err
	}
	if err := j.net.ZeroGrad(); err != nil {
		return err
	}
	if _, err := j.net.Backward(j.last.Grad); err != nil {
		return err
	}
	return j.opt.Step()
}

func (j *srJob) losses() (map[string]float64, error) {
	if j.last.Loss == nil {
		return map[string]float64{}, nil
	}
	v, err := j.last.Value()
	if err != nil {
		return nil, err
	}
	// psnr is of the float patches (whole patch, RGB): a training signal, not the
	// evaluation protocol's Y-channel PSNR.
	return map[string]float64{"mse": float64(v), "psnr": 10 * math.Log10(1/math.Max(float64(v), 1e-12))}, nil
}

func (j *srJob) state() []ckptPart { return []ckptPart{netPart("net.", j.net), adamPart(j.opt)} }

// sample renders, per fixed patch, the LR input (nearest), the output and the HR.
func (j *srJob) sample(ctx context.Context) (*imageio.RGB, error) { return j.fixed.grid(ctx, j.net) }

func (j *srJob) publish(path string, meta map[string]string) error { return j.net.Save(path, meta) }

func (j *srJob) free() {
	if j.opt != nil {
		j.opt.Free()
	}
	if j.net != nil {
		j.net.Free()
	}
	j.mse.Free()
	j.x.Free()
	j.y.Free()
}

// upscaleSamples are the fixed inputs of an upscaler's sample grid (the
// multi-stage Up Sampler's, the SR network's) and the images they were made
// from: the grid is a row of inputs (nearest-upscaled), a row of outputs and a
// row of targets.
type upscaleSamples struct {
	lo, hi []*imageio.RGB
	scale  int
}

// load takes the first batch of a loader with opts: pair gives its inputs and
// targets as CHW values of sides ls and hs, and conv makes an image of each.
func (s *upscaleSamples) load(ctx context.Context, opts dataset.Options, conv func(chw []float32, w, h int) (*imageio.RGB, error),
	pair func(*dataset.Batch) (lo, hi []float32, ls, hs int)) error {
	fl, err := dataset.NewLoader(opts)
	if err != nil {
		return err
	}
	defer fl.Close()
	fb, err := fl.Next(ctx)
	if err != nil {
		return fmt.Errorf("sample inputs: %w", err)
	}
	lo, hi, ls, hs := pair(fb)
	for i := range fb.N {
		l, err1 := conv(lo[i*3*ls*ls:(i+1)*3*ls*ls], ls, ls)
		h, err2 := conv(hi[i*3*hs*hs:(i+1)*3*hs*hs], hs, hs)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("sample inputs: %v %v", err1, err2)
		}
		s.lo, s.hi = append(s.lo, l), append(s.hi, h)
	}
	return nil
}

// grid renders the inputs through net, one column per sample.
func (s *upscaleSamples) grid(ctx context.Context, net *model.Network) (*imageio.RGB, error) {
	out, err := net.Upscale(ctx, s.lo)
	if err != nil {
		return nil, err
	}
	var cells []*imageio.RGB
	for _, m := range s.lo {
		cells = append(cells, nearestN(m, s.scale))
	}
	cells = append(append(cells, out...), s.hi...)
	return imageio.Grid(cells, imageio.GridOptions{Cols: len(s.lo), Pad: 2})
}

func nearestN(m *imageio.RGB, s int) *imageio.RGB {
	out := imageio.NewRGB(s*m.W, s*m.H)
	for y := range out.H {
		for x := range out.W {
			r, g, b := m.At(x/s, y/s)
			out.Set(x, y, r, g, b)
		}
	}
	return out
}
