package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// GANConfig is a DCGAN run: a generator preset at Side and a discriminator preset
// at the same side.
type GANConfig struct {
	Generator     string // preset; "" = dcgan-g-stable
	Discriminator string // preset; "" = dcgan-d-stable
	Side          int    // image side h; 0 = 32
	Recipe        Recipe // zero value = DefaultRecipe()

	// Explicit network configs replace the presets (their Side is set to Side):
	// for variants that are not presets, such as the narrow nets of fast tests.
	GeneratorConfig, DiscriminatorConfig *model.Config

	// Classes, when set, makes the run class-conditional over these Unicode
	// emoji groups (at least two; each image's group is its class, by the
	// set's labels.tsv): G takes the one-hot of a class after its latent and
	// D is a projection discriminator (model.Config.WithClasses). The run then
	// trains on these groups only (Options.Groups must be empty or the same
	// set), each fake batch takes the real batch's classes, and the published
	// weights list the classes in order (model.MetaTrainGroups).
	Classes []string

	// SWD, when set, scores the generator every SWD.Every steps during training.
	SWD *SWDProbe
	// Features, when set, scores it in a feature extractor's space every
	// Features.Every steps and keeps the snapshot with the lowest KID.
	Features *FeatureProbe
}

// SWDProbe is an optional periodic SWD evaluation inside the GAN loop, so a run
// shows whether its samples are getting closer to the data (GAN losses do not).
// Every Every steps the published generator (the EMA when the recipe has one)
// renders N images from the fixed latents 0…N−1 and they are compared with the
// first N images of Data (box-downscaled to the run's side, as training sees
// them) by the ProGAN SWD (metrics.DefaultSWD, its fixed seed): the same inputs and
// the same projections at every point, so the values are comparable along a run
// and across runs with the same N. The latest value is reported as the loss "swd"
// (×10³, mean over levels) in Progress.Losses and, with the real-vs-real floor on
// the other N real images, through OnEval. Evaluation consumes no training RNG:
// a run with a probe takes exactly the steps it takes without one.
type SWDProbe struct {
	Every  int    // steps between evaluations (> 0)
	Data   string // real images, usually the held-out set; at least 2N of them for the floor
	N      int    // images per set; 0 = 256
	OnEval func(SWDPoint)
}

// SWDPoint is one periodic evaluation.
type SWDPoint struct {
	Step       int
	SWD, Floor metrics.SWDResult
	N          int
}

func (c *GANConfig) defaults() error {
	if c.Generator == "" {
		c.Generator = "dcgan-g-stable"
	}
	return adversarialDefaults(&c.Discriminator, &c.Side, &c.Recipe)
}

// adversarialDefaults settles what GANConfig and MultiStageConfig default
// alike, D's preset, the side and the recipe, and checks the recipe.
func adversarialDefaults(disc *string, side *int, r *Recipe) error {
	if *disc == "" {
		*disc = "dcgan-d-stable"
	}
	if *side == 0 {
		*side = 32
	}
	if *r == (Recipe{}) {
		*r = DefaultRecipe()
	}
	return r.check()
}

// conditional checks Classes against the run's groups and makes them the
// groups the loader keeps and the labels the published weights name.
func (c *GANConfig) conditional(o *Options) error {
	if len(c.Classes) == 0 {
		return nil
	}
	if len(c.Classes) < 2 {
		return fmt.Errorf("%w: a class-conditional GAN needs at least 2 classes, got %q", ErrBadOptions, c.Classes)
	}
	seen := map[string]bool{}
	for _, k := range c.Classes {
		if k == "" || seen[k] || strings.Contains(k, ",") {
			return fmt.Errorf("%w: classes %q: each must be non-empty, listed once and hold no comma", ErrBadOptions, c.Classes)
		}
		seen[k] = true
	}
	if len(o.Groups) > 0 {
		same := len(o.Groups) == len(c.Classes)
		for _, g := range o.Groups {
			same = same && seen[g]
		}
		if !same {
			return fmt.Errorf("%w: groups %q differ from the classes %q of a class-conditional run", ErrBadOptions, o.Groups, c.Classes)
		}
	}
	o.Groups = c.Classes
	meta := map[string]string{}
	for k, v := range o.Meta {
		meta[k] = v
	}
	meta[model.MetaTrainGroups] = strings.Join(c.Classes, ", ")
	o.Meta = meta
	return nil
}

// GAN trains a DCGAN on the images in o.Data (centre-cropped, box-downscaled to
// Side, random horizontal flips, scaled to [−1, 1]). Each step is one D update on
// a real and a fake batch, then one G update through the updated D on the same
// fake batch (as the PyTorch DCGAN example does). The published weights are G's
// (its EMA when the recipe has one), named "generator" by default.
func GAN(ctx context.Context, c GANConfig, o Options) (Result, error) {
	return launch(ctx, o, "generator", func(o *Options) error {
		if err := c.defaults(); err != nil {
			return err
		}
		return c.conditional(o)
	}, func(o Options) (*ganJob, error) { return newGANJob(ctx, c, o) })
}

type ganJob struct {
	adversarial // net is G
	c           GANConfig
	b           backend.Backend
	real        *tensor.Tensor
	z           *tensor.Tensor
	zHost       []float32
	fixed       [][]float32
	latent      int
	gcfg        model.Config
	// Class-conditional runs: the class of each training file, the classes of
	// the batch, and those of the fixed sample latents (nil otherwise).
	classOf      map[string]int
	batchClasses []int
	fixedClasses []int
	probe        *swdState
	feat         *featureState
	meta         map[string]string // the run's Options.Meta, for the best snapshot
}

// swdState is an SWDProbe with its real set and floor, prepared once.
type swdState struct {
	SWDProbe
	classes []int // of the latents, for a class-conditional run
	real    []*imageio.RGB
	floor   metrics.SWDResult
	latents [][]float32
	last    float64
	has     bool
}

func newGANJob(ctx context.Context, c GANConfig, o Options) (_ *ganJob, err error) {
	j := &ganJob{c: c, b: o.Backend, meta: o.Meta}
	defer func() {
		if err != nil {
			j.free()
		}
	}()
	k := len(c.Classes)
	if err = j.setUp(c.Recipe, netSpec{c.Generator, c.GeneratorConfig, c.Side, k}, func(gc model.Config) error {
		if gc.Role != model.Generator {
			return fmt.Errorf("%w: %s is a %s, not a generator", ErrBadOptions, c.Generator, gc.Role)
		}
		return nil
	}, netSpec{c.Discriminator, c.DiscriminatorConfig, c.Side, k}, o); err != nil {
		return nil, err
	}
	gc := j.net.Config()
	j.gcfg = gc
	j.latent = gc.Latent
	for i := range o.Samples {
		j.fixed = append(j.fixed, model.Latent(uint64(i), gc.Latent))
	}
	if k > 0 {
		if j.classOf, _, err = classIndex(o.Data, c.Classes); err != nil {
			return nil, err
		}
		// The grid cycles through the classes, so every class shows.
		for i := range o.Samples {
			j.fixedClasses = append(j.fixedClasses, i%k)
		}
	}
	if c.SWD != nil {
		if j.probe, err = newSWDState(ctx, *c.SWD, c.Side, gc.Latent); err != nil {
			return nil, err
		}
		if k > 0 {
			if j.probe.classes, err = ClassPlan(c.SWD.Data, c.Classes, j.probe.N); err != nil {
				return nil, err
			}
		}
	}
	if c.Features != nil {
		if j.feat, err = newFeatureState(ctx, *c.Features, o.Backend, c.Side, gc.Latent); err != nil {
			return nil, err
		}
		if k > 0 {
			if j.feat.classes, err = ClassPlan(c.Features.Heldout, c.Classes, j.feat.N); err != nil {
				return nil, err
			}
		}
	}
	return j, nil
}

// classIndex maps every image under data whose group (by the set's
// labels.tsv) is one of classes to its class index, and counts the images of
// each class; a class without images is an error.
func classIndex(data string, classes []string) (map[string]int, []int, error) {
	index := map[string]int{}
	for i, k := range classes {
		index[k] = i
	}
	_, of, err := dataset.LabelsFor(data)
	if err != nil {
		return nil, nil, err
	}
	files, err := dataset.ListImages(data)
	if err != nil {
		return nil, nil, err
	}
	classOf := map[string]int{}
	counts := make([]int, len(classes))
	for _, f := range files {
		if l, ok := of(f); ok {
			if i, ok := index[l.Group]; ok {
				classOf[f] = i
				counts[i]++
			}
		}
	}
	for i, n := range counts {
		if n == 0 {
			return nil, nil, fmt.Errorf("%w: class %q has no image under %s", ErrBadOptions, classes[i], data)
		}
	}
	return classOf, counts, nil
}

// ClassPlan is the classes n images of a class-conditional generator are
// drawn with to be compared with the real images under data: in proportion to
// how many images of each class (Unicode group, by labels.tsv) data holds, so
// that the generated set has the real set's class mix and a score compares
// like with like.
func ClassPlan(data string, classes []string, n int) ([]int, error) {
	_, counts, err := classIndex(data, classes)
	if err != nil {
		return nil, err
	}
	return stratified(counts, n), nil
}

// stratified returns n classes in proportion to counts: a systematic sample of
// the class distribution, in class order (the latents they go with are
// independent draws, so the order carries nothing).
func stratified(counts []int, n int) []int {
	total := 0
	for _, c := range counts {
		total += c
	}
	out := make([]int, n)
	// Sample i takes the class whose cumulative share first exceeds (i+½)/n.
	for i := range out {
		u := (float64(i) + 0.5) / float64(n) * float64(total)
		acc := 0.0
		for k, c := range counts {
			acc += float64(c)
			if u < acc {
				out[i] = k
				break
			}
		}
	}
	return out
}

func newSWDState(ctx context.Context, p SWDProbe, side, latent int) (*swdState, error) {
	if p.Every <= 0 {
		return nil, fmt.Errorf("%w: SWD every %d steps", ErrBadOptions, p.Every)
	}
	if p.N <= 0 {
		p.N = 256
	}
	real, err := LoadSquare(ctx, p.Data, side, 2*p.N)
	if err != nil {
		return nil, fmt.Errorf("SWD probe: %w", err)
	}
	if len(real) < 2*p.N {
		return nil, fmt.Errorf("%w: SWD probe needs %d images in %s (N for the distance, N more for the floor), found %d", ErrBadOptions, 2*p.N, p.Data, len(real))
	}
	s := &swdState{SWDProbe: p, real: real}
	if s.floor, err = metrics.SWDFloor(ctx, real, metrics.DefaultSWD()); err != nil {
		return nil, fmt.Errorf("SWD probe floor: %w", err)
	}
	for i := range p.N {
		s.latents = append(s.latents, model.Latent(uint64(i), latent))
	}
	return s, nil
}

// evalSWD scores the published generator against the probe's real set.
func (j *ganJob) evalSWD(ctx context.Context) error {
	p := j.probe
	g, err := j.gopt.view()
	if err != nil {
		return err
	}
	var fake []*imageio.RGB
	for start := 0; start < p.N; start += 64 {
		imgs, err := g.GenerateLatents(ctx, p.latents[start:min(p.N, start+64)], part(p.classes, start, min(p.N, start+64)))
		if err != nil {
			return fmt.Errorf("SWD probe: %w", err)
		}
		fake = append(fake, imgs...)
	}
	r, err := metrics.SWD(ctx, fake, p.real[:p.N], metrics.DefaultSWD())
	if err != nil {
		return fmt.Errorf("SWD probe: %w", err)
	}
	p.last, p.has = r.Mean, true
	if p.OnEval != nil {
		p.OnEval(SWDPoint{Step: j.gopt.opt.Steps(), SWD: r, Floor: p.floor, N: p.N})
	}
	return nil
}

func (j *ganJob) kind() string { return "gan" }

func (j *ganJob) signature() string {
	sig := fmt.Sprintf("g=%s d=%s side=%d recipe=%s", netName(j.c.Generator, j.c.GeneratorConfig), netName(j.c.Discriminator, j.c.DiscriminatorConfig), j.c.Side, j.c.Recipe)
	if len(j.c.Classes) > 0 {
		cl, _ := json.Marshal(j.c.Classes)
		sig += " classes=" + string(cl)
	}
	return sig
}

func (j *ganJob) loaderOptions() dataset.Options {
	// A class-conditional run sees every class equally often (the groups'
	// sizes differ by more than 10×).
	return dataset.Options{Size: j.c.Side, Resample: dataset.Box, Range: dataset.RangeSigned, BatchSize: j.c.Recipe.Batch, FlipH: true,
		Balance: len(j.c.Classes) > 0}
}

func (j *ganJob) step(ctx context.Context, b *dataset.Batch, rng *rand.Rand) error {
	if err := upload(&j.real, j.b, b.X, b.XShape[:]...); err != nil {
		return err
	}
	n := b.N
	if err := j.classes(b.Files); err != nil {
		return err
	}
	j.zHost = j.zHost[:0]
	for range n * j.latent {
		j.zHost = append(j.zHost, float32(rng.NormFloat64()))
	}
	if j.batchClasses != nil {
		// The same draws as an unconditional run, then each latent gets its
		// sample's one-hot (the fake batch takes the real batch's classes).
		z := slices.Clone(j.zHost)
		j.zHost = j.zHost[:0]
		for i, k := range j.batchClasses {
			var err error
			if j.zHost, err = j.gcfg.AppendInput(j.zHost, z[i*j.latent:(i+1)*j.latent], k); err != nil {
				return err
			}
		}
	}
	if err := upload(&j.z, j.b, j.zHost, j.net.InputShape(n)...); err != nil {
		return err
	}
	if err := j.update(j.z, j.real, rng, nil); err != nil {
		return err
	}
	// The probes' clock is G's Adam step count: checkpointed with the optimizer,
	// so it continues across a resume.
	steps := j.gopt.opt.Steps()
	if j.probe != nil && steps%j.probe.Every == 0 {
		if err := j.evalSWD(ctx); err != nil {
			return err
		}
	}
	if j.feat != nil && steps%j.feat.Every == 0 {
		g, err := j.gopt.view()
		if err != nil {
			return err
		}
		return j.feat.eval(ctx, g, steps, func(path string, meta map[string]string) error {
			for k, v := range j.meta {
				meta[k] = v
			}
			meta["hirez.train.kind"], meta["hirez.train.recipe"], meta["hirez.train.steps"] = j.kind(), j.signature(), fmt.Sprint(steps)
			return g.Save(path, meta)
		})
	}
	return nil
}

// classes sets the batch's classes (for the projection head, too) from its
// files; nothing for an unconditional run.
func (j *ganJob) classes(files []string) error {
	if j.classOf == nil {
		return nil
	}
	j.batchClasses = j.batchClasses[:0]
	for _, f := range files {
		k, ok := j.classOf[f]
		if !ok {
			return fmt.Errorf("gan: %s has no class (its group is not one of %q in labels.tsv)", f, j.c.Classes)
		}
		j.batchClasses = append(j.batchClasses, k)
	}
	return j.adv.proj.setClasses(j.batchClasses)
}

func (j *ganJob) losses() (map[string]float64, error) {
	m := map[string]float64{}
	if j.probe != nil && j.probe.has {
		m["swd"] = j.probe.last
	}
	j.feat.losses(m)
	return m, j.adv.losses(m, "g")
}

// state is both players' and, with a feature probe, its best score.
func (j *ganJob) state() []ckptPart { return j.players(j.feat.state()...) }

func (j *ganJob) sample(ctx context.Context) (*imageio.RGB, error) {
	g, err := j.gopt.view()
	if err != nil {
		return nil, err
	}
	imgs, err := g.GenerateLatents(ctx, j.fixed, j.fixedClasses)
	if err != nil {
		return nil, err
	}
	return imageio.Grid(imgs, imageio.GridOptions{Pad: 2})
}

func (j *ganJob) free() {
	j.adversarial.free()
	j.feat.free()
	j.real.Free()
	j.z.Free()
}

// upload copies host values into *t, (re)allocating it for a new shape.
func upload(t **tensor.Tensor, b backend.Backend, data []float32, shape ...int) error {
	if err := tensor.Ensure(t, b, shape...); err != nil {
		return err
	}
	return (*t).CopyFromHost(data)
}

// buildNet builds cfg when it is set, else the preset, at side (0 = the preset's).
func buildNet(preset string, cfg *model.Config, side int, o Options) (*model.Network, error) {
	return buildClassNet(preset, cfg, side, 0, o)
}

// buildClassNet is buildNet made class-conditional over classes (0: not).
func buildClassNet(preset string, cfg *model.Config, side, classes int, o Options) (*model.Network, error) {
	var c model.Config
	if cfg == nil {
		var err error
		if c, err = model.ConfigFor(preset, side); err != nil {
			return nil, err
		}
	} else {
		c = *cfg
		if side != 0 {
			c.Side = side
		}
	}
	if classes > 0 {
		var err error
		if c, err = c.WithClasses(classes); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadOptions, err)
		}
	}
	return model.BuildConfig(c, o.Backend, o.Seed)
}

// part is classes[start:end], or nil for an unconditional run.
func part(classes []int, start, end int) []int {
	if classes == nil {
		return nil
	}
	return classes[start:end]
}

func withSeed(o Options, seed uint64) Options {
	o.Seed = seed
	return o
}

// netName is how a checkpoint's signature names a network: the preset, or the
// full config of an explicit one.
func netName(preset string, cfg *model.Config) string {
	if cfg == nil {
		return preset
	}
	return cfg.JSON()
}
