package layer

import (
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// DenseConfig configures a Dense layer.
type DenseConfig struct {
	In, Out int // features
	NoBias  bool
	// SpectralNorm runs the layer with W/σ(W) and adds the parameter
	// "<name>.weight_u" (spectral.go).
	SpectralNorm bool
}

// Dense is torch.nn.Linear: y = x·Wᵀ + b with weight [Out, In], bias [Out].
// The input is [N, In], or any [N, …] whose trailing dimensions hold In values
// (an implicit flatten); the output is [N, Out].
type Dense struct {
	name   string
	b      backend.Backend
	cfg    DenseConfig
	Weight *Param
	Bias   *Param // nil with NoBias

	sn      *spectral // nil without SpectralNorm
	n       int
	x       *tensor.Tensor // kept for Backward (not owned)
	y, dx   *tensor.Tensor
	ys      shelf // y at the other shapes run recently
	trained bool
}

var _ Layer = (*Dense)(nil)

// NewDense makes a Dense layer named name with zero weights; draw them with
// Initialize.
func NewDense(b backend.Backend, name string, cfg DenseConfig) (*Dense, error) {
	if b == nil {
		return nil, fmt.Errorf("dense %s: nil backend", name)
	}
	if cfg.In <= 0 || cfg.Out <= 0 {
		return nil, fmt.Errorf("dense %s: bad config %+v", name, cfg)
	}
	l := &Dense{name: name, b: b, cfg: cfg}
	var err error
	if l.Weight, err = newParam(b, name+".weight", true, cfg.Out, cfg.In); err != nil {
		return nil, err
	}
	if !cfg.NoBias {
		if l.Bias, err = newParam(b, name+".bias", true, cfg.Out); err != nil {
			l.Free()
			return nil, err
		}
	}
	if cfg.SpectralNorm {
		if l.sn, err = newSpectral(b, name, cfg.Out, cfg.In); err != nil {
			l.Free()
			return nil, err
		}
	}
	return l, nil
}

// Name implements Layer.
func (l *Dense) Name() string { return l.name }

// Config returns the configuration.
func (l *Dense) Config() DenseConfig { return l.cfg }

// Params implements Layer.
func (l *Dense) Params() []*Param {
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
func (l *Dense) Init(s Init, rng *rand.Rand) error {
	if err := initWeights(s, rng, l.Weight, l.Bias, l.cfg.In); err != nil {
		return err
	}
	if l.sn != nil {
		return l.sn.init(rng)
	}
	return nil
}

// Forward implements Layer.
func (l *Dense) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.trained = false
	if err := checkInput("dense", l.name, x, l.b); err != nil {
		return nil, err
	}
	n := x.Dim(0)
	if x.Rank() < 2 || x.Len() != n*l.cfg.In {
		return nil, fmt.Errorf("dense %s: input %v, want [N %d]", l.name, x.Shape(), l.cfg.In)
	}
	if err := l.ys.ensure(&l.y, l.b, n, l.cfg.Out); err != nil {
		return nil, fmt.Errorf("dense %s: %w", l.name, err)
	}
	w := l.Weight.Value.Buffer()
	if l.sn != nil {
		var err error
		if w, err = l.sn.forward(l.Weight, mode); err != nil {
			return nil, fmt.Errorf("dense %s: %w", l.name, err)
		}
	}
	g := backend.Gemm{TransB: true, M: n, N: l.cfg.Out, K: l.cfg.In, Alpha: 1}
	if err := l.b.MatMul(g, x.Buffer(), w, l.y.Buffer()); err != nil {
		return nil, fmt.Errorf("dense %s: %w", l.name, err)
	}
	if l.Bias != nil {
		if err := l.b.AddBias(backend.Dims{N: n, C: l.cfg.Out, H: 1, W: 1}, l.y.Buffer(), l.Bias.Value.Buffer()); err != nil {
			return nil, fmt.Errorf("dense %s: %w", l.name, err)
		}
	}
	l.n = n
	if mode == Train {
		l.x, l.trained = x, true
	} else {
		l.x = nil
	}
	return l.y, nil
}

// Backward implements Layer.
func (l *Dense) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("dense", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	n, in, out := l.n, l.cfg.In, l.cfg.Out
	// dW += dyᵀ·x: dy is stored N×Out (op(A) = dyᵀ is Out×N), x is N×In.
	// MatMul's beta accumulates directly, so no scratch buffer is needed.
	beta := float32(1)
	if l.Weight.gradZero {
		beta = 0
	}
	dw, w := l.Weight.Grad.Buffer(), l.Weight.Value.Buffer()
	if l.sn != nil {
		// ∂L/∂(W/σ) into its own buffer, turned into ∂L/∂W below; dx reads
		// the W/σ of the forward being differentiated.
		beta, dw, w = 0, l.sn.effGrad.Buffer(), l.sn.eff.Buffer()
	}
	gw := backend.Gemm{TransA: true, M: out, N: in, K: n, Alpha: 1, Beta: beta}
	if err := l.b.MatMul(gw, dy.Buffer(), l.x.Buffer(), dw); err != nil {
		return nil, fmt.Errorf("dense %s: backward weights: %w", l.name, err)
	}
	if l.sn != nil {
		if err := l.sn.backward(l.Weight); err != nil {
			return nil, fmt.Errorf("dense %s: %w", l.name, err)
		}
	}
	l.Weight.gradZero = false
	if l.Bias != nil {
		db, err := l.Bias.gradTarget()
		if err != nil {
			return nil, err
		}
		if err := l.b.BiasGrad(backend.Dims{N: n, C: out, H: 1, W: 1}, dy.Buffer(), db); err != nil {
			return nil, fmt.Errorf("dense %s: backward bias: %w", l.name, err)
		}
		if err := l.Bias.gradDone(); err != nil {
			return nil, err
		}
	}
	// dx = dy·W: N×Out times Out×In, in x's shape.
	if err := tensor.Ensure(&l.dx, l.b, l.x.Shape()...); err != nil {
		return nil, fmt.Errorf("dense %s: %w", l.name, err)
	}
	gx := backend.Gemm{M: n, N: in, K: out, Alpha: 1}
	if err := l.b.MatMul(gx, dy.Buffer(), w, l.dx.Buffer()); err != nil {
		return nil, fmt.Errorf("dense %s: backward data: %w", l.name, err)
	}
	return l.dx, nil
}

// Free implements Layer.
func (l *Dense) Free() {
	l.Weight.free()
	l.Bias.free()
	l.sn.free()
	l.y.Free()
	l.ys.free()
	l.dx.Free()
	l.x, l.trained = nil, false
}
