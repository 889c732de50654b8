package layer

import (
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// BatchNormConfig configures a BatchNorm layer; zero fields take PyTorch's
// defaults (eps 1e-5, momentum 0.1).
type BatchNormConfig struct {
	Channels int
	Epsilon  float32
	Momentum float32
}

// BatchNorm is torch.nn.BatchNorm2d on [N C H W], and BatchNorm1d on [N C]
// (a Dense output), with parameters weight (gamma), bias (beta) and buffers
// running_mean, running_var.
type BatchNorm struct {
	name        string
	b           backend.Backend
	cfg         BatchNormConfig
	Weight      *Param
	Bias        *Param
	RunningMean *Param
	RunningVar  *Param

	bn                  backend.BatchNorm
	saveMean, saveInvSD *tensor.Tensor
	x                   *tensor.Tensor // kept for Backward (not owned)
	y, dx               *tensor.Tensor
	ys                  shelf // y at the other shapes run recently
	trained             bool
}

var _ Layer = (*BatchNorm)(nil)

// NewBatchNorm makes a BatchNorm with gamma 1, beta 0, running mean 0 and
// running variance 1 (PyTorch's initial state).
func NewBatchNorm(b backend.Backend, name string, cfg BatchNormConfig) (*BatchNorm, error) {
	if b == nil {
		return nil, fmt.Errorf("batchnorm %s: nil backend", name)
	}
	if cfg.Channels <= 0 || cfg.Epsilon < 0 || cfg.Momentum < 0 || cfg.Momentum > 1 {
		return nil, fmt.Errorf("batchnorm %s: bad config %+v", name, cfg)
	}
	if cfg.Epsilon == 0 {
		cfg.Epsilon = 1e-5
	}
	if cfg.Momentum == 0 {
		cfg.Momentum = 0.1
	}
	l := &BatchNorm{name: name, b: b, cfg: cfg}
	c := cfg.Channels
	var err error
	mk := func(suffix string, trainable bool) *Param {
		if err != nil {
			return nil
		}
		var p *Param
		p, err = newParam(b, name+"."+suffix, trainable, c)
		return p
	}
	l.Weight = mk("weight", true)
	l.Bias = mk("bias", true)
	l.RunningMean = mk("running_mean", false)
	l.RunningVar = mk("running_var", false)
	if err == nil {
		l.saveMean, err = tensor.New(b, c)
	}
	if err == nil {
		l.saveInvSD, err = tensor.New(b, c)
	}
	if err == nil {
		err = l.reset(nil)
	}
	if err != nil {
		l.Free()
		return nil, err
	}
	return l, nil
}

// Name implements Layer.
func (l *BatchNorm) Name() string { return l.name }

// Config returns the configuration with defaults filled in.
func (l *BatchNorm) Config() BatchNormConfig { return l.cfg }

// Params implements Layer, in state_dict order. PyTorch's num_batches_tracked
// is not kept (it only matters for momentum=None); PyTorch fills it in when a
// state dict without it is loaded.
func (l *BatchNorm) Params() []*Param {
	return []*Param{l.Weight, l.Bias, l.RunningMean, l.RunningVar}
}

// Init implements Initializer; it also resets the running statistics.
func (l *BatchNorm) Init(s Init, rng *rand.Rand) error {
	switch s {
	case DCGANInit:
		return l.reset(func() float64 { return 1 + 0.02*rng.NormFloat64() })
	case PyTorchInit:
		return l.reset(nil)
	}
	return fmt.Errorf("init %s: unknown scheme %v", l.name, s)
}

func (l *BatchNorm) reset(gamma func() float64) error {
	if gamma == nil {
		gamma = func() float64 { return 1 }
	}
	if err := fillHost(l.Weight, gamma); err != nil {
		return err
	}
	for _, p := range []*Param{l.Bias, l.RunningMean} {
		if err := l.b.Fill(p.Value.Buffer(), 0); err != nil {
			return fmt.Errorf("batchnorm %s: %w", l.name, err)
		}
	}
	if err := l.b.Fill(l.RunningVar.Value.Buffer(), 1); err != nil {
		return fmt.Errorf("batchnorm %s: %w", l.name, err)
	}
	return nil
}

// Forward implements Layer: [N C H W] or [N C]; the output has x's shape.
// Training needs more than one value per channel (N·H·W > 1), as in PyTorch.
func (l *BatchNorm) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.trained = false
	if err := checkInput("batchnorm", l.name, x, l.b); err != nil {
		return nil, err
	}
	if (x.Rank() != 4 && x.Rank() != 2) || x.Dim(1) != l.cfg.Channels {
		return nil, fmt.Errorf("batchnorm %s: input %v, want [N %d H W] or [N %d]", l.name, x.Shape(), l.cfg.Channels, l.cfg.Channels)
	}
	d := x.Dims()
	if mode == Train && d.N*d.H*d.W < 2 {
		return nil, fmt.Errorf("batchnorm %s: input %v has one value per channel; training needs more", l.name, x.Shape())
	}
	if l.y == nil || !sameShape(l.y, x) {
		if err := l.ys.ensure(&l.y, l.b, x.Shape()...); err != nil {
			return nil, fmt.Errorf("batchnorm %s: %w", l.name, err)
		}
	}
	l.bn = backend.BatchNorm{Dims: d, Epsilon: l.cfg.Epsilon, Momentum: l.cfg.Momentum}
	var err error
	if mode == Train {
		err = l.b.BatchNormTrain(l.bn, x.Buffer(), l.Weight.Value.Buffer(), l.Bias.Value.Buffer(), l.y.Buffer(),
			l.saveMean.Buffer(), l.saveInvSD.Buffer(), l.RunningMean.Value.Buffer(), l.RunningVar.Value.Buffer())
	} else {
		err = l.b.BatchNormInfer(l.bn, x.Buffer(), l.Weight.Value.Buffer(), l.Bias.Value.Buffer(),
			l.RunningMean.Value.Buffer(), l.RunningVar.Value.Buffer(), l.y.Buffer())
	}
	if err != nil {
		return nil, fmt.Errorf("batchnorm %s: %w", l.name, err)
	}
	if mode == Train {
		l.x, l.trained = x, true
	} else {
		l.x = nil
	}
	return l.y, nil
}

// Backward implements Layer.
func (l *BatchNorm) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("batchnorm", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	if l.dx == nil || !sameShape(l.dx, l.x) {
		if err := tensor.Ensure(&l.dx, l.b, l.x.Shape()...); err != nil {
			return nil, fmt.Errorf("batchnorm %s: %w", l.name, err)
		}
	}
	dg, err := l.Weight.gradTarget()
	if err != nil {
		return nil, err
	}
	db, err := l.Bias.gradTarget()
	if err != nil {
		return nil, err
	}
	if err := l.b.BatchNormBackward(l.bn, l.x.Buffer(), dy.Buffer(), l.Weight.Value.Buffer(),
		l.saveMean.Buffer(), l.saveInvSD.Buffer(), l.dx.Buffer(), dg, db); err != nil {
		return nil, fmt.Errorf("batchnorm %s: %w", l.name, err)
	}
	if err := l.Weight.gradDone(); err != nil {
		return nil, err
	}
	if err := l.Bias.gradDone(); err != nil {
		return nil, err
	}
	return l.dx, nil
}

// Free implements Layer.
func (l *BatchNorm) Free() {
	for _, p := range []*Param{l.Weight, l.Bias, l.RunningMean, l.RunningVar} {
		p.free()
	}
	l.saveMean.Free()
	l.saveInvSD.Free()
	l.y.Free()
	l.ys.free()
	l.dx.Free()
	l.x, l.trained = nil, false
}
