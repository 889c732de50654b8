package train

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/loss"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// MultiStageConfig is stage 2 of the multi-stage GAN: an Up Sampler h → 2h trained
// adversarially on pairs of real 2h images and their h downscales.
type MultiStageConfig struct {
	Upsampler     string // preset; "" = upsampler-stable
	Discriminator string // preset judging 2h images; "" = dcgan-d-stable
	Side          int    // input side h (output 2h); 0 = 32
	Recipe        Recipe // zero value = DefaultRecipe()
	// ContentWeight λ adds λ·MSE(U(x_h), x_2h) to the Up Sampler's adversarial loss
	// (pix2pix-style; MSE because the engine's losses have no L1). 0 is the study's
	// reading: adversarial only. Images are in [−1, 1].
	ContentWeight float32

	// Explicit network configs replace the presets (see GANConfig).
	UpsamplerConfig, DiscriminatorConfig *model.Config
}

func (c *MultiStageConfig) defaults() error {
	if c.Upsampler == "" {
		c.Upsampler = "upsampler-stable"
	}
	if c.ContentWeight < 0 {
		return fmt.Errorf("%w: content weight %v", ErrBadOptions, c.ContentWeight)
	}
	return adversarialDefaults(&c.Discriminator, &c.Side, &c.Recipe)
}

// MultiStage trains the Up Sampler. Real images are brought to 2h as for GAN (box
// downscale, flips, [−1, 1]); the input is their 2×2 box average at h, the same
// filter that makes the h-side training images of the stage-1 DCGAN, so the Up
// Sampler sees at training time what the DCGAN imitates. Each step is one D update
// on (real 2h, U(h)) and one U update through D, plus the optional content term.
// The published weights are the Up Sampler's (EMA when set), "upsampler" by default.
func MultiStage(ctx context.Context, c MultiStageConfig, o Options) (Result, error) {
	return launch(ctx, o, "upsampler", func(*Options) error { return c.defaults() },
		func(o Options) (*multiStageJob, error) { return newMultiStageJob(ctx, c, o) })
}

type multiStageJob struct {
	adversarial  // net is the Up Sampler
	c            MultiStageConfig
	b            backend.Backend
	mse          *loss.MSE
	lContent     loss.Result
	hi, lo, grad *tensor.Tensor
	loHost       []float32
	fixed        upscaleSamples
}

func newMultiStageJob(ctx context.Context, c MultiStageConfig, o Options) (_ *multiStageJob, err error) {
	j := &multiStageJob{c: c, b: o.Backend, mse: loss.NewMSE()}
	defer func() {
		if err != nil {
			j.free()
		}
	}()
	if err = j.setUp(c.Recipe, netSpec{c.Upsampler, c.UpsamplerConfig, c.Side, 0}, func(uc model.Config) error {
		if uc.Role != model.Upscaler || uc.Scale != 2 || uc.Range != model.Signed {
			return fmt.Errorf("%w: %s is not a ×2 upscaler on [−1, 1] images", ErrBadOptions, c.Upsampler)
		}
		return nil
	}, netSpec{c.Discriminator, c.DiscriminatorConfig, 2 * c.Side, 0}, o); err != nil {
		return nil, err
	}
	// The fixed sample inputs: the first images of the data in file order.
	j.fixed.scale = 2
	if err := j.fixed.load(ctx, dataset.Options{Dir: o.Data, Size: 2 * c.Side, Resample: dataset.Box, BatchSize: o.Samples, Workers: o.Workers},
		imageio.FromCHWSigned, func(b *dataset.Batch) ([]float32, []float32, int, int) {
			return boxHalf(nil, b.X, b.N, 2*c.Side), b.X, c.Side, 2 * c.Side
		}); err != nil {
		return nil, err
	}
	return j, nil
}

// boxHalf appends the 2×2 box average of n CHW images of side s to dst.
func boxHalf(dst, x []float32, n, s int) []float32 {
	h := s / 2
	for img := range n * 3 {
		p := x[img*s*s:]
		for y := range h {
			for xx := range h {
				i := 2*y*s + 2*xx
				dst = append(dst, (p[i]+p[i+1]+p[i+s]+p[i+s+1])/4)
			}
		}
	}
	return dst
}

func (j *multiStageJob) kind() string { return "multistage" }

func (j *multiStageJob) signature() string {
	return fmt.Sprintf("u=%s d=%s side=%d content=%v recipe=%s", netName(j.c.Upsampler, j.c.UpsamplerConfig), netName(j.c.Discriminator, j.c.DiscriminatorConfig), j.c.Side, j.c.ContentWeight, j.c.Recipe)
}

func (j *multiStageJob) loaderOptions() dataset.Options {
	return dataset.Options{Size: 2 * j.c.Side, Resample: dataset.Box, Range: dataset.RangeSigned, BatchSize: j.c.Recipe.Batch, FlipH: true}
}

func (j *multiStageJob) step(_ context.Context, b *dataset.Batch, rng *rand.Rand) error {
	s := j.c.Side
	if err := upload(&j.hi, j.b, b.X, b.XShape[:]...); err != nil {
		return err
	}
	j.loHost = boxHalf(j.loHost[:0], b.X, b.N, 2*s)
	if err := upload(&j.lo, j.b, j.loHost, b.N, 3, s, s); err != nil {
		return err
	}
	return j.update(j.lo, j.hi, rng, j.content)
}

// content adds λ·∇MSE(fake, real 2h) to the adversarial gradient dfake (none
// at λ = 0, the study's reading).
func (j *multiStageJob) content(fake, dfake *tensor.Tensor) (*tensor.Tensor, error) {
	if j.c.ContentWeight <= 0 {
		return dfake, nil
	}
	var err error
	if j.lContent, err = j.mse.Compute(fake, j.hi); err != nil {
		return nil, err
	}
	if j.grad == nil || !j.grad.HasShape(dfake.Shape()...) {
		j.grad.Free()
		if j.grad, err = tensor.New(j.b, dfake.Shape()...); err != nil {
			return nil, err
		}
	}
	if err := j.b.Copy(j.grad.Buffer(), dfake.Buffer()); err != nil {
		return nil, err
	}
	if err := j.b.Axpby(j.c.ContentWeight, j.lContent.Grad.Buffer(), 1, j.grad.Buffer()); err != nil {
		return nil, err
	}
	return j.grad, nil
}

func (j *multiStageJob) losses() (map[string]float64, error) {
	m := map[string]float64{}
	if err := j.adv.losses(m, "g_adv"); err != nil {
		return nil, err
	}
	if j.c.ContentWeight > 0 && j.lContent.Loss != nil {
		v, err := j.lContent.Value()
		if err != nil {
			return nil, err
		}
		m["content_mse"] = float64(v)
	}
	return m, nil
}

func (j *multiStageJob) state() []ckptPart { return j.players() }

// sample renders input (nearest 2×), output and real 2h image, one row each.
func (j *multiStageJob) sample(ctx context.Context) (*imageio.RGB, error) {
	u, err := j.gopt.view()
	if err != nil {
		return nil, err
	}
	return j.fixed.grid(ctx, u)
}

func (j *multiStageJob) free() {
	j.adversarial.free()
	j.mse.Free()
	j.hi.Free()
	j.lo.Free()
	j.grad.Free()
}
