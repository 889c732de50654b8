package layer

import (
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// PadSame asks for 'same' padding, (Kernel−1)/2 (odd kernels, stride 1).
const PadSame = -1

// Conv2DConfig configures a Conv2D layer.
type Conv2DConfig struct {
	In, Out int // channels
	Kernel  int // square kernel side
	Stride  int // 0 means 1
	Pad     int // zero padding on each side, or PadSame
	NoBias  bool
	// SpectralNorm runs the conv with W/σ(W) and adds the parameter
	// "<name>.weight_u" (spectral.go).
	SpectralNorm bool
}

// Conv2D is torch.nn.Conv2d: weight [Out, In, K, K], bias [Out].
type Conv2D struct {
	name   string
	b      backend.Backend
	cfg    Conv2DConfig
	Weight *Param
	Bias   *Param // nil with NoBias

	sn      *spectral // nil without SpectralNorm
	conv    backend.Conv2D
	x       *tensor.Tensor // input kept for Backward (not owned)
	y, dx   *tensor.Tensor
	ys      shelf // y at the other shapes run recently
	trained bool
}

var _ Layer = (*Conv2D)(nil)

// NewConv2D makes a Conv2D named name (parameters "<name>.weight", "<name>.bias")
// with zero weights; draw them with Initialize.
func NewConv2D(b backend.Backend, name string, cfg Conv2DConfig) (*Conv2D, error) {
	if b == nil {
		return nil, fmt.Errorf("conv2d %s: nil backend", name)
	}
	if cfg.Stride == 0 {
		cfg.Stride = 1
	}
	if cfg.Pad == PadSame {
		cfg.Pad = (cfg.Kernel - 1) / 2
	}
	if cfg.In <= 0 || cfg.Out <= 0 || cfg.Kernel <= 0 || cfg.Stride < 0 || cfg.Pad < 0 {
		return nil, fmt.Errorf("conv2d %s: bad config %+v", name, cfg)
	}
	l := &Conv2D{name: name, b: b, cfg: cfg}
	var err error
	if l.Weight, err = newParam(b, name+".weight", true, cfg.Out, cfg.In, cfg.Kernel, cfg.Kernel); err != nil {
		return nil, err
	}
	if !cfg.NoBias {
		if l.Bias, err = newParam(b, name+".bias", true, cfg.Out); err != nil {
			l.Free()
			return nil, err
		}
	}
	if cfg.SpectralNorm {
		if l.sn, err = newSpectral(b, name, cfg.Out, cfg.In, cfg.Kernel, cfg.Kernel); err != nil {
			l.Free()
			return nil, err
		}
	}
	return l, nil
}

// Name implements Layer.
func (l *Conv2D) Name() string { return l.name }

// Config returns the configuration with defaults filled in.
func (l *Conv2D) Config() Conv2DConfig { return l.cfg }

// Params implements Layer.
func (l *Conv2D) Params() []*Param {
	ps := []*Param{l.Weight}
	if l.Bias != nil {
		ps = append(ps, l.Bias)
	}
	if l.sn != nil {
		ps = append(ps, l.sn.U)
	}
	return ps
}

// Init implements Initializer.
func (l *Conv2D) Init(s Init, rng *rand.Rand) error {
	if err := initWeights(s, rng, l.Weight, l.Bias, l.cfg.In*l.cfg.Kernel*l.cfg.Kernel); err != nil {
		return err
	}
	if l.sn != nil {
		return l.sn.init(rng)
	}
	return nil
}

// Forward implements Layer: x is [N, In, H, W].
func (l *Conv2D) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.trained = false
	if err := checkInput("conv2d", l.name, x, l.b); err != nil {
		return nil, err
	}
	if x.Rank() != 4 || x.Dim(1) != l.cfg.In {
		return nil, fmt.Errorf("conv2d %s: input %v, want [N %d H W]", l.name, x.Shape(), l.cfg.In)
	}
	c := backend.Conv2D{In: x.Dims(), Out: l.cfg.Out, KH: l.cfg.Kernel, KW: l.cfg.Kernel, Stride: l.cfg.Stride, Pad: l.cfg.Pad}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("conv2d %s: %w", l.name, err)
	}
	o := c.OutDims()
	if err := l.ys.ensure(&l.y, l.b, o.N, o.C, o.H, o.W); err != nil {
		return nil, fmt.Errorf("conv2d %s: %w", l.name, err)
	}
	var bias backend.Buffer
	if l.Bias != nil {
		bias = l.Bias.Value.Buffer()
	}
	w, err := l.weight(mode)
	if err != nil {
		return nil, fmt.Errorf("conv2d %s: %w", l.name, err)
	}
	if err := l.b.Conv2DForward(c, x.Buffer(), w, bias, l.y.Buffer()); err != nil {
		return nil, fmt.Errorf("conv2d %s: %w", l.name, err)
	}
	l.conv = c
	if mode == Train {
		l.x, l.trained = x, true
	} else {
		l.x = nil
	}
	return l.y, nil
}

// Backward implements Layer.
func (l *Conv2D) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("conv2d", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	var dw backend.Buffer
	var err error
	if l.sn != nil {
		dw = l.sn.effGrad.Buffer() // ∂L/∂(W/σ), turned into ∂L/∂W below
	} else if dw, err = l.Weight.gradTarget(); err != nil {
		return nil, err
	}
	var db backend.Buffer
	if l.Bias != nil {
		if db, err = l.Bias.gradTarget(); err != nil {
			return nil, err
		}
	}
	if err := l.b.Conv2DBackwardWeights(l.conv, l.x.Buffer(), dy.Buffer(), dw, db); err != nil {
		return nil, fmt.Errorf("conv2d %s: backward weights: %w", l.name, err)
	}
	if l.sn != nil {
		err = l.sn.backward(l.Weight)
	} else {
		err = l.Weight.gradDone()
	}
	if err != nil {
		return nil, err
	}
	if l.Bias != nil {
		if err := l.Bias.gradDone(); err != nil {
			return nil, err
		}
	}
	d := l.conv.In
	if err := tensor.Ensure(&l.dx, l.b, d.N, d.C, d.H, d.W); err != nil {
		return nil, fmt.Errorf("conv2d %s: %w", l.name, err)
	}
	w := l.Weight.Value.Buffer()
	if l.sn != nil {
		w = l.sn.eff.Buffer() // the W/σ of the forward being differentiated
	}
	if err := l.b.Conv2DBackwardData(l.conv, dy.Buffer(), w, l.dx.Buffer()); err != nil {
		return nil, fmt.Errorf("conv2d %s: backward data: %w", l.name, err)
	}
	return l.dx, nil
}

// weight is the weight buffer the convolution reads: W, or W/σ with
// SpectralNorm (one power iteration in training mode).
func (l *Conv2D) weight(mode Mode) (backend.Buffer, error) {
	if l.sn == nil {
		return l.Weight.Value.Buffer(), nil
	}
	return l.sn.forward(l.Weight, mode)
}

// Free implements Layer.
func (l *Conv2D) Free() {
	l.Weight.free()
	l.Bias.free()
	l.sn.free()
	l.y.Free()
	l.ys.free()
	l.dx.Free()
	l.x, l.trained = nil, false
}
