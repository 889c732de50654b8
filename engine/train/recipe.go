package train

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/loss"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/optim"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Loss is the adversarial loss.
type Loss string

const (
	// BCE is the non-saturating GAN loss with logits: D minimises
	// BCE(D(x), 1−s) + BCE(D(G(z)), 0), G minimises BCE(D(G(z)), 1).
	BCE Loss = "bce"
	// Hinge: D minimises mean(max(0, 1−D(x))) + mean(max(0, 1+D(G(z)))), G minimises −mean(D(G(z))).
	Hinge Loss = "hinge"
)

// Recipe is how the adversarial loops train, the same for every approach a
// comparison puts side by side. The stabilisers that are recipe choices live here
// (BatchNorm in G is a preset choice: dcgan-g-stable; spectral norm in D too:
// dcgan-d-sn).
type Recipe struct {
	Loss           Loss    `json:"loss"`
	LRG            float32 `json:"lr_g"` // Adam learning rate of G
	LRD            float32 `json:"lr_d"` // Adam learning rate of D; LRD ≠ LRG is TTUR
	Beta1          float32 `json:"beta1"`
	Beta2          float32 `json:"beta2"`
	LabelSmoothing float32 `json:"label_smoothing,omitempty"` // one-sided: D's real target is 1−s (BCE only)
	EMADecay       float32 `json:"ema_decay,omitempty"`       // 0 = no EMA; else published and sampled G is the EMA
	// EMAWarmup uses min(EMADecay, (1+n)/(10+n)) after step n (TensorFlow's
	// num_updates rule), so a short run's EMA is not mostly its initial weights.
	EMAWarmup bool `json:"ema_warmup,omitempty"`
	Batch     int  `json:"batch"`
	// Augment is DiffAugment (Zhao et al. 2020, augment.go): a comma-separated
	// list of "translation", "cutout", "color", applied in the order listed to
	// every batch D sees, real and fake, in D's step and in G's (whose gradient
	// flows back through it); "" = none. Parameters are drawn per sample from
	// the training loop's RNG (checkpointed), so a resumed run draws what a
	// straight one would.
	Augment string `json:"augment,omitempty"`
}

// DefaultRecipe is the DCGAN paper's: non-saturating BCE, Adam 2e-4, β1 0.5,
// β2 0.999, batch 64, no stabilisers — the study's own recipe.
func DefaultRecipe() Recipe {
	return Recipe{Loss: BCE, LRG: 2e-4, LRD: 2e-4, Beta1: 0.5, Beta2: 0.999, Batch: 64}
}

// StableRecipe adds the usual stabilisers: a slower D (TTUR, 2e-4 vs 1e-4),
// one-sided label smoothing 0.1 and an EMA of G (0.999, warmed up): with the
// study's recipe, D wins on the emoji within minutes and G collapses
// (docs/training.md).
func StableRecipe() Recipe {
	r := DefaultRecipe()
	r.LRD = 1e-4
	r.LabelSmoothing = 0.1
	r.EMADecay = 0.999
	r.EMAWarmup = true
	return r
}

// SmallDataRecipe is for a few thousand training images, where D memorises the
// data set (Karras et al. 2020 and Zhao et al. 2020 measured it): DiffAugment
// "color,translation,cutout" (the reference's policy, in its order) on every
// image D sees; hinge loss; TTUR with D at 4e-4 and G at 1e-4 and Adam
// β = (0, 0.9), the setting SAGAN (Zhang et al. 2019) and BigGAN use for this
// very combination (spectrally normalised D, hinge loss, TTUR): no momentum,
// which in the two-player game tends to make the updates overshoot; the DCGAN
// setting (0.5, 0.999) is the alternative to ablate. An EMA of G (0.999, warmed
// up), as StableRecipe. Pair it with the
// discriminator preset dcgan-d-sn (spectral norm, no BatchNorm): that is a
// GANConfig / --disc choice, not part of the recipe.
func SmallDataRecipe() Recipe {
	return Recipe{Loss: Hinge, LRG: 1e-4, LRD: 4e-4, Beta1: 0, Beta2: 0.9, Batch: 64,
		EMADecay: 0.999, EMAWarmup: true, Augment: "color,translation,cutout"}
}

func (r Recipe) check() error {
	switch {
	case r.Loss != BCE && r.Loss != Hinge:
		return fmt.Errorf("%w: loss %q (want bce or hinge)", ErrBadOptions, r.Loss)
	case !(r.LRG > 0) || !(r.LRD > 0):
		return fmt.Errorf("%w: learning rates %v, %v", ErrBadOptions, r.LRG, r.LRD)
	case r.Batch < 1:
		return fmt.Errorf("%w: batch %d", ErrBadOptions, r.Batch)
	case r.LabelSmoothing < 0 || r.LabelSmoothing >= 0.5:
		return fmt.Errorf("%w: label smoothing %v (want [0, 0.5))", ErrBadOptions, r.LabelSmoothing)
	case r.EMADecay < 0 || r.EMADecay >= 1:
		return fmt.Errorf("%w: EMA decay %v (want [0, 1))", ErrBadOptions, r.EMADecay)
	}
	_, err := ParseAugment(r.Augment)
	return err
}

func (r Recipe) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

func (r Recipe) adam(lr float32, prefix string) optim.AdamConfig {
	return optim.AdamConfig{LR: lr, Beta1: r.Beta1, Beta2: r.Beta2, Epsilon: 1e-8, Prefix: prefix}
}

// adversary is D with its optimizer and losses, shared by the two GAN loops.
type adversary struct {
	r                Recipe
	d                *model.Network
	opt              *optim.Adam
	bceR, bceF, bceG *loss.BCEWithLogits
	hinR, hinF       *loss.HingeD
	hinG             *loss.HingeG
	lReal, lFake, lG loss.Result
	haveD, haveG     bool
	aug              *augmenter  // nil without Recipe.Augment
	proj             *projection // nil for an unconditional D
}

func newAdversary(r Recipe, d *model.Network) (*adversary, error) {
	a := &adversary{r: r, d: d}
	var err error
	if a.opt, err = optim.NewAdam(d.Params(), r.adam(r.LRD, "opt_d")); err != nil {
		return nil, err
	}
	a.bceR, a.bceF, a.bceG = loss.NewBCEWithLogits(), loss.NewBCEWithLogits(), loss.NewBCEWithLogits()
	a.hinR, a.hinF, a.hinG = loss.NewHingeD(), loss.NewHingeD(), loss.NewHingeG()
	if a.aug, err = newAugmenter(d.Backend(), r.Augment); err != nil {
		a.free()
		return nil, err
	}
	if a.proj, err = newProjection(d.Backend(), d.Config().Classes); err != nil {
		a.free()
		return nil, err
	}
	return a, nil
}

// stepD is one D update on a real and a fake batch (fake is not back-propagated
// into G). With augmentation D sees T(real) and T(fake), each with its own
// draw from rng.
func (a *adversary) stepD(real, fake *tensor.Tensor, rng *rand.Rand) error {
	if err := a.d.ZeroGrad(); err != nil {
		return err
	}
	for _, isReal := range []bool{true, false} {
		x := fake
		if isReal {
			x = real
		}
		if a.aug != nil {
			var err error
			if x, err = a.aug.Forward(x, rng); err != nil {
				return err
			}
		}
		y, err := a.logits(x)
		if err != nil {
			return err
		}
		var r loss.Result
		switch {
		case a.r.Loss == Hinge:
			h := a.hinF
			if isReal {
				h = a.hinR
			}
			r, err = h.Compute(y, isReal)
		case isReal:
			r, err = a.bceR.Compute(y, 1-a.r.LabelSmoothing)
		default:
			r, err = a.bceF.Compute(y, 0)
		}
		if err != nil {
			return err
		}
		if isReal {
			a.lReal = r
		} else {
			a.lFake = r
		}
		if _, err := a.backward(r.Grad); err != nil {
			return err
		}
	}
	a.haveD = true
	return a.opt.Step()
}

// gradG runs D on fake and returns the adversarial loss's gradient with respect to
// fake (D's parameter gradients are scratch: the next stepD zeroes them). With
// augmentation D sees T(fake), a new draw from rng, and the gradient goes back
// through Tᵀ.
func (a *adversary) gradG(fake *tensor.Tensor, rng *rand.Rand) (*tensor.Tensor, error) {
	x := fake
	if a.aug != nil {
		var err error
		if x, err = a.aug.Forward(fake, rng); err != nil {
			return nil, err
		}
	}
	y, err := a.logits(x)
	if err != nil {
		return nil, err
	}
	if a.r.Loss == Hinge {
		a.lG, err = a.hinG.Compute(y)
	} else {
		a.lG, err = a.bceG.Compute(y, 1)
	}
	if err != nil {
		return nil, err
	}
	a.haveG = true
	dx, err := a.backward(a.lG.Grad)
	if err != nil || a.aug == nil {
		return dx, err
	}
	return a.aug.Backward(dx)
}

// logits runs D in training mode on x: its logits [N, 1], through the
// projection head for a class-conditional D (classes set by proj.setClasses).
func (a *adversary) logits(x *tensor.Tensor) (*tensor.Tensor, error) {
	y, err := a.d.Forward(x, layer.Train)
	if err != nil {
		return nil, err
	}
	return a.proj.forward(y)
}

// backward propagates the loss gradient of the last logits back to D's input.
func (a *adversary) backward(dlogit *tensor.Tensor) (*tensor.Tensor, error) {
	dy, err := a.proj.backward(dlogit)
	if err != nil {
		return nil, err
	}
	return a.d.Backward(dy)
}

func (a *adversary) losses(m map[string]float64, gName string) error {
	if !a.haveD || !a.haveG {
		return nil
	}
	for k, r := range map[string]loss.Result{"d_real": a.lReal, "d_fake": a.lFake, gName: a.lG} {
		v, err := r.Value()
		if err != nil {
			return err
		}
		m[k] = float64(v)
	}
	m["d"] = m["d_real"] + m["d_fake"]
	return nil
}

func (a *adversary) free() {
	if a == nil {
		return
	}
	a.opt.Free()
	for _, l := range []interface{ Free() }{a.bceR, a.bceF, a.bceG, a.hinR, a.hinF, a.hinG} {
		l.Free()
	}
	a.aug.free()
	a.proj.free()
}

// generatorOpt is G's optimizer and optional EMA, and the network the EMA is
// rendered into for samples and publishing.
type generatorOpt struct {
	g, shadow *model.Network
	opt       *optim.Adam
	ema       *optim.EMA
	warmup    bool
}

func newGeneratorOpt(r Recipe, g *model.Network, build func() (*model.Network, error)) (*generatorOpt, error) {
	o := &generatorOpt{g: g, warmup: r.EMAWarmup}
	var err error
	if o.opt, err = optim.NewAdam(g.Params(), r.adam(r.LRG, "opt_g")); err != nil {
		return nil, err
	}
	if r.EMADecay > 0 {
		if o.ema, err = optim.NewEMA(g.Params(), r.EMADecay); err != nil {
			o.free()
			return nil, err
		}
		if o.shadow, err = build(); err != nil {
			o.free()
			return nil, err
		}
	}
	return o, nil
}

func (o *generatorOpt) step() error {
	if err := o.opt.Step(); err != nil {
		return err
	}
	switch {
	case o.ema == nil:
		return nil
	case o.warmup:
		// Adam's step count is in the checkpoint, so a resumed run warms up alike.
		return o.ema.UpdateAt(o.opt.Steps())
	}
	return o.ema.Update()
}

// view is the network to sample from and publish: the EMA when there is one.
func (o *generatorOpt) view() (*model.Network, error) {
	if o.ema == nil {
		return o.g, nil
	}
	if err := o.ema.CopyTo(o.shadow.Params()); err != nil {
		return nil, err
	}
	return o.shadow, nil
}

// state is G's optimizer and, when there is one, its EMA ("ema.").
func (o *generatorOpt) state() []ckptPart {
	ps := []ckptPart{adamPart(o.opt)}
	if o.ema != nil {
		ps = append(ps, paramsPart("ema.", o.ema.Params()))
	}
	return ps
}

func (o *generatorOpt) free() {
	if o == nil {
		return
	}
	if o.opt != nil {
		o.opt.Free()
	}
	if o.ema != nil {
		o.ema.Free()
	}
	if o.shadow != nil {
		o.shadow.Free()
	}
}

// adversarial is what the two GAN loops (GAN, MultiStage) share: the network
// they train and publish (G, the Up Sampler) with its optimizer and EMA, and D
// with its own. Embedded in their jobs, it gives them trained, publish and the
// players of their checkpointed state.
type adversarial struct {
	net  *model.Network
	gopt *generatorOpt
	adv  *adversary
}

// netSpec is a network to build: a preset, or cfg when set, at side (0 = the
// preset's), class-conditional over classes (0: not).
type netSpec struct {
	preset      string
	cfg         *model.Config
	side, class int
}

func (s netSpec) build(o Options) (*model.Network, error) {
	return buildClassNet(s.preset, s.cfg, s.side, s.class, o)
}

// setUp builds the trained network from g with o's seed (check vets its
// config), D from d with the next seed, and both optimizers.
func (a *adversarial) setUp(r Recipe, g netSpec, check func(model.Config) error, d netSpec, o Options) error {
	build := func() (*model.Network, error) { return g.build(o) }
	var err error
	if a.net, err = build(); err != nil {
		return err
	}
	if err := check(a.net.Config()); err != nil {
		return err
	}
	dn, err := d.build(withSeed(o, o.Seed+1))
	if err != nil {
		return err
	}
	if dn.Config().Role != model.Discriminator {
		dn.Free()
		return fmt.Errorf("%w: %s is a %s, not a discriminator", ErrBadOptions, d.preset, dn.Config().Role)
	}
	if a.adv, err = newAdversary(r, dn); err != nil {
		dn.Free()
		return err
	}
	a.gopt, err = newGeneratorOpt(r, a.net, build)
	return err
}

// update is one step of both players: the trained network on in, one D update
// on (real, fake), then one update of the trained network through the updated
// D on the same fake batch. more, when set, adds a term of the job's own to
// the gradient with respect to fake (the multi-stage content loss).
func (a *adversarial) update(in, real *tensor.Tensor, rng *rand.Rand, more func(fake, dfake *tensor.Tensor) (*tensor.Tensor, error)) error {
	fake, err := a.net.Forward(in, layer.Train)
	if err != nil {
		return err
	}
	if err := a.adv.stepD(real, fake, rng); err != nil {
		return err
	}
	if err := a.net.ZeroGrad(); err != nil {
		return err
	}
	dfake, err := a.adv.gradG(fake, rng)
	if err != nil {
		return err
	}
	if more != nil {
		if dfake, err = more(fake, dfake); err != nil {
			return err
		}
	}
	if _, err := a.net.Backward(dfake); err != nil {
		return err
	}
	return a.gopt.step()
}

func (a *adversarial) trained() (*model.Network, *optim.EMA) { return a.net, a.gopt.ema }

// players is the checkpointed state of both players: the trained network
// ("g."), D ("d.") and its optimizer, then extra (a job's own parts), then G's
// optimizer and EMA.
func (a *adversarial) players(extra ...ckptPart) []ckptPart {
	ps := append([]ckptPart{netPart("g.", a.net), netPart("d.", a.adv.d), adamPart(a.adv.opt)}, extra...)
	return append(ps, a.gopt.state()...)
}

// publish writes the published view of the trained network: its EMA when the
// recipe has one.
func (a *adversarial) publish(path string, meta map[string]string) error {
	g, err := a.gopt.view()
	if err != nil {
		return err
	}
	return g.Save(path, meta)
}

func (a *adversarial) free() {
	a.gopt.free()
	if a.adv != nil {
		a.adv.free()
		a.adv.d.Free()
	}
	if a.net != nil {
		a.net.Free()
	}
}
