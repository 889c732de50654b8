// Package bench holds the engine's benchmark workloads — the study's SRCNN and
// DCGAN nets composed directly from backend ops — the Go benchmarks over them,
// and an FMA loop that measures the machine's fp32 peak. cmd/hzbench runs the
// same workloads for scripts/bench.sh, which puts them beside PyTorch.
package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
)

// layer is one step of a sequential net with its buffers allocated up front, so
// a forward or backward pass allocates nothing.
type layer interface {
	forward(be backend.Backend, x backend.Buffer) (backend.Buffer, error)
	// backward writes parameter gradients (added to the existing ones when acc)
	// and returns dx (nil when needDX is false).
	backward(be backend.Backend, dy backend.Buffer, acc, needDX bool) (backend.Buffer, error)
	params() []*param
	flops() float64
}

// param is a trainable tensor with its gradient and Adam moments.
type param struct{ w, g, tmp, m, v backend.Buffer }

func newParam(be backend.Backend, n int, scale float32, rng *rand.Rand, train bool) (*param, error) {
	p := &param{}
	var err error
	if p.w, err = be.Alloc(n); err != nil {
		return nil, err
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = scale * (2*rng.Float32() - 1)
	}
	if err := be.Upload(p.w, v); err != nil {
		return nil, err
	}
	if train {
		for _, b := range []*backend.Buffer{&p.g, &p.tmp, &p.m, &p.v} {
			if *b, err = be.Alloc(n); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// gradOut is where a backward pass writes a gradient: g itself, or tmp to be
// added to g afterwards.
func (p *param) gradOut(acc bool) backend.Buffer {
	if acc {
		return p.tmp
	}
	return p.g
}

func (p *param) accumulate(be backend.Backend, acc bool) error {
	if !acc {
		return nil
	}
	return be.Axpby(1, p.tmp, 1, p.g)
}

type convLayer struct {
	c       backend.Conv2D
	w, b    *param
	x, y    backend.Buffer
	dx      backend.Buffer
	trainOK bool
}

func newConv(be backend.Backend, rng *rand.Rand, in backend.Dims, out, k int, train bool) (*convLayer, error) {
	c := backend.Conv2D{In: in, Out: out, KH: k, KW: k, Stride: 1, Pad: (k - 1) / 2}
	l := &convLayer{c: c, trainOK: train}
	var err error
	scale := 1 / float32(in.C*k*k)
	if l.w, err = newParam(be, c.WeightLen(), scale, rng, train); err != nil {
		return nil, err
	}
	if l.b, err = newParam(be, out, scale, rng, train); err != nil {
		return nil, err
	}
	if l.y, err = be.Alloc(c.OutDims().Size()); err != nil {
		return nil, err
	}
	if train {
		if l.dx, err = be.Alloc(in.Size()); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *convLayer) forward(be backend.Backend, x backend.Buffer) (backend.Buffer, error) {
	l.x = x
	return l.y, be.Conv2DForward(l.c, x, l.w.w, l.b.w, l.y)
}

func (l *convLayer) backward(be backend.Backend, dy backend.Buffer, acc, needDX bool) (backend.Buffer, error) {
	if err := be.Conv2DBackwardWeights(l.c, l.x, dy, l.w.gradOut(acc), l.b.gradOut(acc)); err != nil {
		return nil, err
	}
	if err := l.w.accumulate(be, acc); err != nil {
		return nil, err
	}
	if err := l.b.accumulate(be, acc); err != nil {
		return nil, err
	}
	if !needDX {
		return nil, nil
	}
	return l.dx, be.Conv2DBackwardData(l.c, dy, l.w.w, l.dx)
}

func (l *convLayer) params() []*param { return []*param{l.w, l.b} }
func (l *convLayer) flops() float64   { return l.c.FLOPs() }

// denseLayer is y = x·Wᵀ + b with PyTorch's [out, in] weight.
type denseLayer struct {
	n, in, out int
	w, b       *param
	x, y, dx   backend.Buffer
}

func newDense(be backend.Backend, rng *rand.Rand, n, in, out int, train bool) (*denseLayer, error) {
	l := &denseLayer{n: n, in: in, out: out}
	var err error
	scale := 1 / float32(in)
	if l.w, err = newParam(be, in*out, scale, rng, train); err != nil {
		return nil, err
	}
	if l.b, err = newParam(be, out, scale, rng, train); err != nil {
		return nil, err
	}
	if l.y, err = be.Alloc(n * out); err != nil {
		return nil, err
	}
	if train {
		if l.dx, err = be.Alloc(n * in); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *denseLayer) dims() backend.Dims { return backend.Dims{N: l.n, C: l.out, H: 1, W: 1} }

func (l *denseLayer) forward(be backend.Backend, x backend.Buffer) (backend.Buffer, error) {
	l.x = x
	g := backend.Gemm{TransB: true, M: l.n, N: l.out, K: l.in, Alpha: 1}
	if err := be.MatMul(g, x, l.w.w, l.y); err != nil {
		return nil, err
	}
	return l.y, be.AddBias(l.dims(), l.y, l.b.w)
}

func (l *denseLayer) backward(be backend.Backend, dy backend.Buffer, acc, needDX bool) (backend.Buffer, error) {
	gw := backend.Gemm{TransA: true, M: l.out, N: l.in, K: l.n, Alpha: 1}
	if err := be.MatMul(gw, dy, l.x, l.w.gradOut(acc)); err != nil {
		return nil, err
	}
	if err := be.BiasGrad(l.dims(), dy, l.b.gradOut(acc)); err != nil {
		return nil, err
	}
	if err := l.w.accumulate(be, acc); err != nil {
		return nil, err
	}
	if err := l.b.accumulate(be, acc); err != nil {
		return nil, err
	}
	if !needDX {
		return nil, nil
	}
	return l.dx, be.MatMul(backend.Gemm{M: l.n, N: l.in, K: l.out, Alpha: 1}, dy, l.w.w, l.dx)
}

func (l *denseLayer) params() []*param { return []*param{l.w, l.b} }
func (l *denseLayer) flops() float64   { return 2 * float64(l.n*l.in*l.out) }

type actLayer struct {
	f        backend.Activation
	alpha    float32
	x, y, dx backend.Buffer
	inPlace  bool
}

func newAct(be backend.Backend, f backend.Activation, alpha float32, n int, train bool) (*actLayer, error) {
	l := &actLayer{f: f, alpha: alpha, inPlace: !train}
	if train {
		var err error
		if l.y, err = be.Alloc(n); err != nil {
			return nil, err
		}
		if l.dx, err = be.Alloc(n); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *actLayer) forward(be backend.Backend, x backend.Buffer) (backend.Buffer, error) {
	l.x = x
	y := l.y
	if l.inPlace {
		y = x
	}
	return y, be.Activate(l.f, l.alpha, x, y)
}

func (l *actLayer) backward(be backend.Backend, dy backend.Buffer, _, _ bool) (backend.Buffer, error) {
	return l.dx, be.ActivateBackward(l.f, l.alpha, l.x, l.y, dy, l.dx)
}

func (l *actLayer) params() []*param { return nil }
func (l *actLayer) flops() float64   { return 0 }

// resample is a nearest 2× upsample (up) or a 2×2 max-pool (!up) of shape d.
type resample struct {
	up       bool
	d        backend.Dims
	x, y, dx backend.Buffer
}

func newResample(be backend.Backend, up bool, d backend.Dims, train bool) (*resample, error) {
	l := &resample{up: up, d: d}
	n := d.Size() / 4
	if up {
		n = 4 * d.Size()
	}
	var err error
	if l.y, err = be.Alloc(n); err != nil {
		return nil, err
	}
	if train {
		if l.dx, err = be.Alloc(d.Size()); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *resample) forward(be backend.Backend, x backend.Buffer) (backend.Buffer, error) {
	l.x = x
	if l.up {
		return l.y, be.Upsample2x(l.d, x, l.y)
	}
	return l.y, be.MaxPool2(l.d, x, l.y)
}

func (l *resample) backward(be backend.Backend, dy backend.Buffer, _, _ bool) (backend.Buffer, error) {
	if l.up {
		return l.dx, be.Upsample2xBackward(l.d, dy, l.dx)
	}
	return l.dx, be.MaxPool2Backward(l.d, l.x, dy, l.dx)
}

func (l *resample) params() []*param { return nil }
func (l *resample) flops() float64   { return 0 }

// Net is a sequential net built from backend ops.
type Net struct {
	layers []layer
}

// Forward runs the net on x and returns its output buffer.
func (n *Net) Forward(be backend.Backend, x backend.Buffer) (backend.Buffer, error) {
	var err error
	for _, l := range n.layers {
		if x, err = l.forward(be, x); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// Backward propagates dy back through the net, writing (acc: adding) parameter
// gradients; it returns the gradient of the input when needDX.
func (n *Net) Backward(be backend.Backend, dy backend.Buffer, acc, needDX bool) (backend.Buffer, error) {
	var err error
	for i := len(n.layers) - 1; i >= 0; i-- {
		if dy, err = n.layers[i].backward(be, dy, acc, needDX || i > 0); err != nil {
			return nil, err
		}
	}
	return dy, nil
}

// FLOPs is the forward cost (multiply-add = 2).
func (n *Net) FLOPs() float64 {
	s := 0.0
	for _, l := range n.layers {
		s += l.flops()
	}
	return s
}

func (n *Net) params() []*param {
	var ps []*param
	for _, l := range n.layers {
		ps = append(ps, l.params()...)
	}
	return ps
}

// builder appends layers and tracks the current shape.
type builder struct {
	be    backend.Backend
	rng   *rand.Rand
	train bool
	d     backend.Dims
	net   *Net
	err   error
}

func (b *builder) add(l layer, err error, d backend.Dims) {
	if b.err != nil {
		return
	}
	if err != nil {
		b.err = err
		return
	}
	b.net.layers = append(b.net.layers, l)
	b.d = d
}

func (b *builder) conv(out, k int) {
	if b.err != nil {
		return
	}
	l, err := newConv(b.be, b.rng, b.d, out, k, b.train)
	if err == nil {
		b.add(l, nil, l.c.OutDims())
	} else {
		b.err = err
	}
}

func (b *builder) act(f backend.Activation, alpha float32) {
	if b.err != nil {
		return
	}
	l, err := newAct(b.be, f, alpha, b.d.Size(), b.train)
	b.add(l, err, b.d)
}

func (b *builder) up() {
	if b.err != nil {
		return
	}
	l, err := newResample(b.be, true, b.d, b.train)
	b.add(l, err, backend.Dims{N: b.d.N, C: b.d.C, H: 2 * b.d.H, W: 2 * b.d.W})
}

func (b *builder) pool() {
	if b.err != nil {
		return
	}
	l, err := newResample(b.be, false, b.d, b.train)
	b.add(l, err, backend.Dims{N: b.d.N, C: b.d.C, H: b.d.H / 2, W: b.d.W / 2})
}

// dense flattens the current shape and maps it to out features.
func (b *builder) dense(out int) {
	if b.err != nil {
		return
	}
	l, err := newDense(b.be, b.rng, b.d.N, b.d.C*b.d.H*b.d.W, out, b.train)
	b.add(l, err, backend.Dims{N: b.d.N, C: out, H: 1, W: 1})
}

// SRCNN is the study's super-resolution net on side×side inputs: nearest 2×,
// conv 9×9 256 + ReLU, conv 3×3 128 + ReLU, conv 5×5 3 (linear output).
func SRCNN(be backend.Backend, batch, side int) (*Net, error) {
	b := &builder{be: be, rng: rand.New(rand.NewPCG(1, 2)), d: backend.Dims{N: batch, C: 3, H: side, W: side}, net: &Net{}}
	b.up()
	b.conv(256, 9)
	b.act(backend.ReLU, 0)
	b.conv(128, 3)
	b.act(backend.ReLU, 0)
	b.conv(3, 5)
	return b.net, b.err
}

// Generator is the study's DCGAN generator for h×h images: z (100) → Dense
// 256·(h/8)² → ReLU → reshape → [up 2× → conv 3×3] × 3 with 128, 64, 3 channels,
// ReLU between and tanh on the output.
func Generator(be backend.Backend, batch, h int, train bool) (*Net, error) {
	b := &builder{be: be, rng: rand.New(rand.NewPCG(3, 4)), train: train, d: backend.Dims{N: batch, C: 100, H: 1, W: 1}, net: &Net{}}
	b.dense(256 * (h / 8) * (h / 8))
	b.act(backend.ReLU, 0)
	b.d = backend.Dims{N: batch, C: 256, H: h / 8, W: h / 8} // reshape
	for i, c := range []int{128, 64, 3} {
		b.up()
		b.conv(c, 3)
		if i < 2 {
			b.act(backend.ReLU, 0)
		} else {
			b.act(backend.Tanh, 0)
		}
	}
	return b.net, b.err
}

// Discriminator is the study's DCGAN discriminator on h×h images: [conv 3×3 →
// LeakyReLU 0.2 → max-pool] with 64, 128, 256 channels → flatten → Dense 512 →
// LeakyReLU → Dense 1 (a logit).
func Discriminator(be backend.Backend, batch, h int, train bool) (*Net, error) {
	b := &builder{be: be, rng: rand.New(rand.NewPCG(5, 6)), train: train, d: backend.Dims{N: batch, C: 3, H: h, W: h}, net: &Net{}}
	for _, c := range []int{64, 128, 256} {
		b.conv(c, 3)
		b.act(backend.LeakyReLU, 0.2)
		b.pool()
	}
	b.dense(512)
	b.act(backend.LeakyReLU, 0.2)
	b.dense(1)
	return b.net, b.err
}

// Input allocates a buffer of n values uniform in [−1, 1).
func Input(be backend.Backend, n int, seed uint64) (backend.Buffer, error) {
	x, err := be.Alloc(n)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	return x, be.Upload(x, v)
}

// TrainStep is one DCGAN training step (D on a real and a fake batch, then G
// through D), BCE with logits, Adam 2e-4 β1 0.5 — the usual PyTorch loop.
type TrainStep struct {
	be               backend.Backend
	g, d             *Net
	z, real          backend.Buffer
	ones, zeros      backend.Buffer
	loss, grad       backend.Buffer
	step             int
	gParams, dParams []*param
	batch, h         int
}

// NewTrainStep builds the nets and buffers of a training step.
func NewTrainStep(be backend.Backend, batch, h int) (*TrainStep, error) {
	t := &TrainStep{be: be, batch: batch, h: h}
	var err error
	if t.g, err = Generator(be, batch, h, true); err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	if t.d, err = Discriminator(be, batch, h, true); err != nil {
		return nil, fmt.Errorf("discriminator: %w", err)
	}
	if t.z, err = Input(be, batch*100, 11); err != nil {
		return nil, err
	}
	if t.real, err = Input(be, batch*3*h*h, 12); err != nil {
		return nil, err
	}
	for _, p := range []*backend.Buffer{&t.ones, &t.zeros, &t.grad} {
		if *p, err = be.Alloc(batch); err != nil {
			return nil, err
		}
	}
	if err := be.Fill(t.ones, 1); err != nil {
		return nil, err
	}
	if t.loss, err = be.Alloc(1); err != nil {
		return nil, err
	}
	t.gParams, t.dParams = t.g.params(), t.d.params()
	return t, nil
}

// FLOPs approximates a step's cost: G forward once and backward once (2×),
// D forward three times and backward three times.
func (t *TrainStep) FLOPs() float64 { return 3*t.g.FLOPs() + 9*t.d.FLOPs() }

func (t *TrainStep) adam(ps []*param) error {
	a := backend.Adam{LR: 2e-4, Beta1: 0.5, Beta2: 0.999, Epsilon: 1e-8, Step: t.step}
	for _, p := range ps {
		if err := t.be.AdamUpdate(a, p.w, p.g, p.m, p.v); err != nil {
			return err
		}
	}
	return nil
}

// Run performs one step.
func (t *TrainStep) Run() error {
	be := t.be
	t.step++
	fake, err := t.g.Forward(be, t.z)
	if err != nil {
		return err
	}
	// D on real (target 1), then on fake (target 0), gradients summed.
	for i, in := range []backend.Buffer{t.real, fake} {
		target := t.ones
		if i == 1 {
			target = t.zeros
		}
		logit, err := t.d.Forward(be, in)
		if err != nil {
			return err
		}
		if err := be.BCEWithLogits(logit, target, t.loss, t.grad); err != nil {
			return err
		}
		if _, err := t.d.Backward(be, t.grad, i == 1, false); err != nil {
			return err
		}
	}
	if err := t.adam(t.dParams); err != nil {
		return err
	}
	// G through D (target 1); D's gradients are computed and dropped, as in the
	// usual PyTorch loop.
	logit, err := t.d.Forward(be, fake)
	if err != nil {
		return err
	}
	if err := be.BCEWithLogits(logit, t.ones, t.loss, t.grad); err != nil {
		return err
	}
	dfake, err := t.d.Backward(be, t.grad, false, true)
	if err != nil {
		return err
	}
	if _, err := t.g.Backward(be, dfake, false, false); err != nil {
		return err
	}
	return t.adam(t.gParams)
}
