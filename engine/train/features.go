package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/features"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/optim"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// FeaturesConfig is the training of an evaluation feature extractor (an encoder
// preset) by classification of real images: the encoder's features feed a linear
// head over Classes, trained with softmax cross-entropy. Only the encoder is
// published; the head is scaffolding (kept in the checkpoint for resume).
type FeaturesConfig struct {
	Preset string // encoder preset; "" = emoji-features
	// Classes are the label names; Label maps a training file (as the loader
	// lists it: the data folder joined with its path inside) to one of them. A
	// file without a label, or with a label not in Classes, stops the run.
	Classes []string
	Label   func(file string) (string, bool)
	Batch   int     // 0 = 64
	LR      float32 // Adam learning rate; 0 = 1e-3, falling linearly to 0 over the run
	// Shift is the largest random translation in pixels, each axis, per sample
	// (the uncovered border is white, the emoji's background); 0 = side/10.
	// With horizontal flips it is the only augmentation: colour is left alone so
	// that the features see colour, and a colour-shuffled image scores as unlike
	// the data as it looks.
	Shift int

	Config *model.Config // replaces the preset when set (see GANConfig)
}

func (c *FeaturesConfig) defaults() error {
	if c.Preset == "" {
		c.Preset = "emoji-features"
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	switch {
	case len(c.Classes) < 2:
		return fmt.Errorf("%w: features: %d classes (want at least 2)", ErrBadOptions, len(c.Classes))
	case c.Label == nil:
		return fmt.Errorf("%w: features: no label function", ErrBadOptions)
	case c.Batch < 2 || !(c.LR > 0) || c.Shift < 0:
		return fmt.Errorf("%w: features: batch %d, lr %v, shift %d", ErrBadOptions, c.Batch, c.LR, c.Shift)
	}
	return nil
}

// Features trains an encoder on the labelled images in o.Data (centre-cropped,
// MATLAB-bicubic resized to the encoder's side, flipped and shifted at random).
// The published weights are "features" by default, with the classes in their
// metadata (features.MetaClasses).
func Features(ctx context.Context, c FeaturesConfig, o Options) (Result, error) {
	return launch(ctx, o, "features", func(*Options) error { return c.defaults() },
		func(o Options) (*featuresJob, error) { return newFeaturesJob(c, o) })
}

type featuresJob struct {
	c        FeaturesConfig
	b        backend.Backend
	net      *model.Network
	head     *layer.Dense
	opt      *optim.Adam
	class    map[string]int
	side     int
	data     string // the training folder, for a sample grid before any step
	x, dy    *tensor.Tensor
	host     []float32
	logits   []float32
	grad     []float32
	ce, acc  float64
	haveLoss bool
}

func newFeaturesJob(c FeaturesConfig, o Options) (_ *featuresJob, err error) {
	j := &featuresJob{c: c, b: o.Backend, class: map[string]int{}, data: o.Data}
	defer func() {
		if err != nil {
			j.free()
		}
	}()
	for i, name := range c.Classes {
		if _, dup := j.class[name]; dup {
			return nil, fmt.Errorf("%w: features: class %q listed twice", ErrBadOptions, name)
		}
		j.class[name] = i
	}
	if j.net, err = buildNet(c.Preset, c.Config, 0, o); err != nil {
		return nil, err
	}
	cfg := j.net.Config()
	if cfg.Role != model.Encoder || cfg.Range != model.Signed {
		return nil, fmt.Errorf("%w: %s is a %s on %s images, want an encoder on signed images", ErrBadOptions, c.Preset, cfg.Role, cfg.Range)
	}
	j.side = cfg.Side
	if j.c.Shift == 0 {
		j.c.Shift = j.side / 10
	}
	if j.head, err = layer.NewDense(o.Backend, "head", layer.DenseConfig{In: cfg.Features, Out: len(c.Classes)}); err != nil {
		return nil, err
	}
	if err = j.head.Init(layer.PyTorchInit, rand.New(rand.NewPCG(o.Seed, 0x68656164))); err != nil { // "head"
		return nil, err
	}
	params := append(j.net.Params(), j.head.Params()...)
	if j.opt, err = optim.NewAdam(params, optim.AdamConfig{LR: c.LR, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, Prefix: "opt"}); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *featuresJob) kind() string { return "features" }

func (j *featuresJob) trained() (*model.Network, *optim.EMA) { return j.net, nil }

func (j *featuresJob) signature() string {
	cl, _ := json.Marshal(j.c.Classes)
	return fmt.Sprintf("net=%s batch=%d lr=%v shift=%d classes=%s", netName(j.c.Preset, j.c.Config), j.c.Batch, j.c.LR, j.c.Shift, cl)
}

// progress implements scheduled: the learning rate falls linearly to 0.
func (j *featuresJob) progress(frac float64) { j.opt.SetLR(float32(float64(j.c.LR) * (1 - frac))) }

func (j *featuresJob) loaderOptions() dataset.Options {
	return dataset.Options{Size: j.side, Resample: dataset.Bicubic, Range: dataset.RangeSigned, BatchSize: j.c.Batch, FlipH: true}
}

func (j *featuresJob) step(_ context.Context, b *dataset.Batch, rng *rand.Rand) error {
	labels := make([]int, b.N)
	for i, f := range b.Files {
		name, ok := j.c.Label(f)
		if !ok {
			return fmt.Errorf("features: %s has no label", f)
		}
		k, ok := j.class[name]
		if !ok {
			return fmt.Errorf("features: %s has label %q, not one of the %d classes", f, name, len(j.c.Classes))
		}
		labels[i] = k
	}
	j.host = shiftBatch(j.host, b.X, b.N, j.side, j.c.Shift, rng)
	if err := upload(&j.x, j.b, j.host, b.XShape[:]...); err != nil {
		return err
	}
	feat, err := j.net.Forward(j.x, layer.Train)
	if err != nil {
		return err
	}
	logits, err := j.head.Forward(feat, layer.Train)
	if err != nil {
		return err
	}
	j.logits = slices.Grow(j.logits[:0], logits.Len())[:logits.Len()]
	if err := logits.ToHost(j.logits); err != nil {
		return err
	}
	j.grad = slices.Grow(j.grad[:0], len(j.logits))[:len(j.logits)]
	j.ce, j.acc = softmaxCE(j.logits, labels, len(j.c.Classes), j.grad)
	j.haveLoss = true
	if err := upload(&j.dy, j.b, j.grad, logits.Shape()...); err != nil {
		return err
	}
	if err := j.net.ZeroGrad(); err != nil {
		return err
	}
	if err := layer.ZeroGrad(j.head); err != nil {
		return err
	}
	dfeat, err := j.head.Backward(j.dy)
	if err != nil {
		return err
	}
	if _, err := j.net.Backward(dfeat); err != nil {
		return err
	}
	return j.opt.Step()
}

// softmaxCE writes the gradient of the mean cross-entropy with respect to the
// logits ([n, k] row-major) into grad and returns the loss and the accuracy. It
// runs on the host: the logits are a few thousand values per batch.
func softmaxCE(logits []float32, labels []int, k int, grad []float32) (ce, acc float64) {
	n := len(labels)
	for i, y := range labels {
		row, g := logits[i*k:(i+1)*k], grad[i*k:(i+1)*k]
		top := slices.Max(row)
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v - top))
		}
		for c, v := range row {
			p := math.Exp(float64(v-top)) / z
			if c == y {
				p--
			}
			g[c] = float32(p / float64(n))
		}
		ce += math.Log(z) - float64(row[y]-top)
		if slices.Index(row, top) == y {
			acc++
		}
	}
	return ce / float64(n), acc / float64(n)
}

// shiftBatch translates each n×3×side×side sample of src by a random integer
// offset in [−max, max] per axis, filling the uncovered border with white (+1 in
// the signed range), into dst (reused).
func shiftBatch(dst, src []float32, n, side, maxShift int, rng *rand.Rand) []float32 {
	dst = slices.Grow(dst[:0], len(src))[:len(src)]
	plane := side * side
	for i := range n {
		dx, dy := rng.IntN(2*maxShift+1)-maxShift, rng.IntN(2*maxShift+1)-maxShift
		for c := range 3 {
			s, d := src[(3*i+c)*plane:][:plane], dst[(3*i+c)*plane:][:plane]
			for y := range side {
				sy := y - dy
				for x := range side {
					sx := x - dx
					if sy < 0 || sy >= side || sx < 0 || sx >= side {
						d[y*side+x] = 1
					} else {
						d[y*side+x] = s[sy*side+sx]
					}
				}
			}
		}
	}
	return dst
}

func (j *featuresJob) losses() (map[string]float64, error) {
	if !j.haveLoss {
		return map[string]float64{}, nil
	}
	return map[string]float64{"ce": j.ce, "acc": j.acc}, nil
}

// state is the encoder ("net."), the classification head (by its own names:
// "head.weight", "head.bias") and the optimizer of both.
func (j *featuresJob) state() []ckptPart {
	return []ckptPart{netPart("net.", j.net), paramsPart("", j.head.Params()), adamPart(j.opt)}
}

// sample shows the last batch as the encoder saw it (shifted and flipped), or
// before any step in this process (a resumed run that is already complete) the
// first training images as they are.
func (j *featuresJob) sample(ctx context.Context) (*imageio.RGB, error) {
	if len(j.host) == 0 {
		imgs, err := LoadSquare(ctx, j.data, j.side, 16)
		if err != nil {
			return nil, err
		}
		return imageio.Grid(imgs, imageio.GridOptions{Pad: 2})
	}
	per := 3 * j.side * j.side
	var cells []*imageio.RGB
	for i := 0; i < min(16, len(j.host)/per); i++ {
		m, err := imageio.FromCHWSigned(j.host[i*per:(i+1)*per], j.side, j.side)
		if err != nil {
			return nil, err
		}
		cells = append(cells, m)
	}
	return imageio.Grid(cells, imageio.GridOptions{Pad: 2})
}

func (j *featuresJob) publish(path string, meta map[string]string) error {
	cl, err := json.Marshal(j.c.Classes)
	if err != nil {
		return err
	}
	m := map[string]string{features.MetaClasses: string(cl)}
	for k, v := range meta {
		m[k] = v
	}
	return j.net.Save(path, m)
}

func (j *featuresJob) free() {
	if j.opt != nil {
		j.opt.Free()
	}
	if j.net != nil {
		j.net.Free()
	}
	if j.head != nil {
		j.head.Free()
	}
	j.x.Free()
	j.dy.Free()
}
