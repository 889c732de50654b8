package layer

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// shapeOp is the bookkeeping shared by the layers without parameters: they run
// on whatever backend their input lives on.
type shapeOp struct {
	name    string
	x       *tensor.Tensor // kept for Backward (not owned)
	y, dx   *tensor.Tensor
	ys      shelf // y at the other shapes run recently
	trained bool
}

func (s *shapeOp) Name() string     { return s.name }
func (s *shapeOp) Params() []*Param { return nil }
func (s *shapeOp) begin()           { s.trained = false }
func (s *shapeOp) Free()            { s.y.Free(); s.ys.free(); s.dx.Free(); s.x, s.trained = nil, false }
func (s *shapeOp) keep(x *tensor.Tensor, mode Mode) {
	if mode == Train {
		s.x, s.trained = x, true
	} else {
		s.x = nil
	}
}

func need4D(kind, name string, x *tensor.Tensor) (backend.Dims, error) {
	if err := checkInput(kind, name, x, nil); err != nil {
		return backend.Dims{}, err
	}
	if x.Rank() != 4 {
		return backend.Dims{}, fmt.Errorf("%s %s: input %v, want [N C H W]", kind, name, x.Shape())
	}
	return x.Dims(), nil
}

// UpSample2x is torch.nn.Upsample(scale_factor=2, mode="nearest").
type UpSample2x struct{ shapeOp }

var _ Layer = (*UpSample2x)(nil)

// NewUpSample2x makes a nearest-neighbour 2× up-sampler.
func NewUpSample2x(name string) *UpSample2x { return &UpSample2x{shapeOp{name: name}} }

// Forward implements Layer: [N C H W] → [N C 2H 2W].
func (l *UpSample2x) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.begin()
	d, err := need4D("upsample", l.name, x)
	if err != nil {
		return nil, err
	}
	b := x.Backend()
	if err := l.ys.ensure(&l.y, b, d.N, d.C, 2*d.H, 2*d.W); err != nil {
		return nil, fmt.Errorf("upsample %s: %w", l.name, err)
	}
	if err := b.Upsample2x(d, x.Buffer(), l.y.Buffer()); err != nil {
		return nil, fmt.Errorf("upsample %s: %w", l.name, err)
	}
	l.keep(x, mode)
	return l.y, nil
}

// Backward implements Layer.
func (l *UpSample2x) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("upsample", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	d := l.x.Dims()
	b := dy.Backend()
	if err := tensor.Ensure(&l.dx, b, d.N, d.C, d.H, d.W); err != nil {
		return nil, fmt.Errorf("upsample %s: %w", l.name, err)
	}
	if err := b.Upsample2xBackward(d, dy.Buffer(), l.dx.Buffer()); err != nil {
		return nil, fmt.Errorf("upsample %s: %w", l.name, err)
	}
	return l.dx, nil
}

// MaxPool2 is torch.nn.MaxPool2d(2) on inputs with even height and width.
type MaxPool2 struct{ shapeOp }

var _ Layer = (*MaxPool2)(nil)

// NewMaxPool2 makes a 2×2, stride-2 max pool.
func NewMaxPool2(name string) *MaxPool2 { return &MaxPool2{shapeOp{name: name}} }

// Forward implements Layer: [N C H W] → [N C H/2 W/2].
func (l *MaxPool2) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.begin()
	d, err := need4D("maxpool", l.name, x)
	if err != nil {
		return nil, err
	}
	if d.H%2 != 0 || d.W%2 != 0 {
		return nil, fmt.Errorf("maxpool %s: input %v, want even height and width", l.name, x.Shape())
	}
	b := x.Backend()
	if err := l.ys.ensure(&l.y, b, d.N, d.C, d.H/2, d.W/2); err != nil {
		return nil, fmt.Errorf("maxpool %s: %w", l.name, err)
	}
	if err := b.MaxPool2(d, x.Buffer(), l.y.Buffer()); err != nil {
		return nil, fmt.Errorf("maxpool %s: %w", l.name, err)
	}
	l.keep(x, mode)
	return l.y, nil
}

// Backward implements Layer.
func (l *MaxPool2) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("maxpool", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	d := l.x.Dims()
	b := dy.Backend()
	if err := tensor.Ensure(&l.dx, b, d.N, d.C, d.H, d.W); err != nil {
		return nil, fmt.Errorf("maxpool %s: %w", l.name, err)
	}
	if err := b.MaxPool2Backward(d, l.x.Buffer(), dy.Buffer(), l.dx.Buffer()); err != nil {
		return nil, fmt.Errorf("maxpool %s: %w", l.name, err)
	}
	return l.dx, nil
}

// PixelShuffle is torch.nn.PixelShuffle(r): [N C·r² H W] → [N C H·r W·r].
type PixelShuffle struct {
	shapeOp
	r int
}

var _ Layer = (*PixelShuffle)(nil)

// NewPixelShuffle makes a sub-pixel rearrangement with upscale factor r ≥ 1.
func NewPixelShuffle(name string, r int) (*PixelShuffle, error) {
	if r < 1 {
		return nil, fmt.Errorf("pixelshuffle %s: factor %d", name, r)
	}
	return &PixelShuffle{shapeOp{name: name}, r}, nil
}

// Forward implements Layer.
func (l *PixelShuffle) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.begin()
	d, err := need4D("pixelshuffle", l.name, x)
	if err != nil {
		return nil, err
	}
	r2 := l.r * l.r
	if d.C%r2 != 0 {
		return nil, fmt.Errorf("pixelshuffle %s: input %v, want channels divisible by %d", l.name, x.Shape(), r2)
	}
	b := x.Backend()
	if err := l.ys.ensure(&l.y, b, d.N, d.C/r2, d.H*l.r, d.W*l.r); err != nil {
		return nil, fmt.Errorf("pixelshuffle %s: %w", l.name, err)
	}
	if err := b.PixelShuffle(d, l.r, x.Buffer(), l.y.Buffer()); err != nil {
		return nil, fmt.Errorf("pixelshuffle %s: %w", l.name, err)
	}
	l.keep(x, mode)
	return l.y, nil
}

// Backward implements Layer: the gradient is un-shuffled.
func (l *PixelShuffle) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("pixelshuffle", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	d := l.x.Dims()
	b := dy.Backend()
	if err := tensor.Ensure(&l.dx, b, d.N, d.C, d.H, d.W); err != nil {
		return nil, fmt.Errorf("pixelshuffle %s: %w", l.name, err)
	}
	if err := b.PixelUnshuffle(l.y.Dims(), l.r, dy.Buffer(), l.dx.Buffer()); err != nil {
		return nil, fmt.Errorf("pixelshuffle %s: %w", l.name, err)
	}
	return l.dx, nil
}

// Activation applies an elementwise nonlinearity.
type Activation struct {
	shapeOp
	f     backend.Activation
	alpha float32
}

var _ Layer = (*Activation)(nil)

// NewActivation makes an activation layer; alpha is LeakyReLU's slope.
func NewActivation(name string, f backend.Activation, alpha float32) *Activation {
	return &Activation{shapeOp: shapeOp{name: name}, f: f, alpha: alpha}
}

// NewReLU is torch.nn.ReLU.
func NewReLU(name string) *Activation { return NewActivation(name, backend.ReLU, 0) }

// NewLeakyReLU is torch.nn.LeakyReLU(alpha); DCGAN's discriminator uses 0.2.
func NewLeakyReLU(name string, alpha float32) *Activation {
	return NewActivation(name, backend.LeakyReLU, alpha)
}

// NewTanh is torch.nn.Tanh.
func NewTanh(name string) *Activation { return NewActivation(name, backend.Tanh, 0) }

// NewSigmoid is torch.nn.Sigmoid.
func NewSigmoid(name string) *Activation { return NewActivation(name, backend.Sigmoid, 0) }

// Func returns the nonlinearity and its alpha.
func (l *Activation) Func() (backend.Activation, float32) { return l.f, l.alpha }

// Forward implements Layer; the output has x's shape.
func (l *Activation) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.begin()
	if err := checkInput(l.f.String(), l.name, x, nil); err != nil {
		return nil, err
	}
	b := x.Backend()
	if l.y == nil || l.y.Backend() != b || !sameShape(l.y, x) {
		if err := l.ys.ensure(&l.y, b, x.Shape()...); err != nil {
			return nil, fmt.Errorf("%v %s: %w", l.f, l.name, err)
		}
	}
	if err := b.Activate(l.f, l.alpha, x.Buffer(), l.y.Buffer()); err != nil {
		return nil, fmt.Errorf("%v %s: %w", l.f, l.name, err)
	}
	l.keep(x, mode)
	return l.y, nil
}

// Backward implements Layer.
func (l *Activation) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad(l.f.String(), l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	b := dy.Backend()
	if l.dx == nil || l.dx.Backend() != b || !sameShape(l.dx, l.x) {
		if err := tensor.Ensure(&l.dx, b, l.x.Shape()...); err != nil {
			return nil, fmt.Errorf("%v %s: %w", l.f, l.name, err)
		}
	}
	if err := b.ActivateBackward(l.f, l.alpha, l.x.Buffer(), l.y.Buffer(), dy.Buffer(), l.dx.Buffer()); err != nil {
		return nil, fmt.Errorf("%v %s: %w", l.f, l.name, err)
	}
	return l.dx, nil
}

// sameShape compares shapes without allocating.
func sameShape(a, b *tensor.Tensor) bool {
	if a.Rank() != b.Rank() {
		return false
	}
	for i := 0; i < a.Rank(); i++ {
		if a.Dim(i) != b.Dim(i) {
			return false
		}
	}
	return true
}

// Reshape is a view: [N, …] → [N, Shape…] with the same number of values per
// sample (torch's x.view(N, *shape)). Flatten is Reshape to [N, rest].
type Reshape struct {
	name  string
	shape []int // per-sample shape; nil flattens

	xshape         []int
	trained        bool
	fwd, bwd       *tensor.Tensor // cached views (not owned)
	fwdSrc, bwdSrc backend.Buffer
}

var _ Layer = (*Reshape)(nil)

// NewReshape makes a reshape to [N, shape…].
func NewReshape(name string, shape ...int) (*Reshape, error) {
	if _, err := tensor.Size(shape); err != nil {
		return nil, fmt.Errorf("reshape %s: %w", name, err)
	}
	return &Reshape{name: name, shape: append([]int(nil), shape...)}, nil
}

// NewFlatten makes torch.nn.Flatten: [N, …] → [N, rest].
func NewFlatten(name string) *Reshape { return &Reshape{name: name} }

// Name implements Layer.
func (l *Reshape) Name() string { return l.name }

// Params implements Layer.
func (l *Reshape) Params() []*Param { return nil }

// Free implements Layer; views own nothing.
func (l *Reshape) Free() { l.fwd, l.bwd, l.fwdSrc, l.bwdSrc, l.trained = nil, nil, nil, nil, false }

// Forward implements Layer. The result shares x's buffer.
func (l *Reshape) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.trained = false
	if err := checkInput("reshape", l.name, x, nil); err != nil {
		return nil, err
	}
	n := x.Dim(0)
	per := x.Len() / n
	if l.shape != nil {
		want, _ := tensor.Size(l.shape)
		if per != want {
			return nil, fmt.Errorf("reshape %s: input %v has %d values per sample, want %d for %v", l.name, x.Shape(), per, want, l.shape)
		}
	}
	if l.fwd == nil || l.fwdSrc != x.Buffer() || l.fwd.Dim(0) != n || !x.HasShape(l.xshape...) {
		out := []int{n, per}
		if l.shape != nil {
			out = append([]int{n}, l.shape...)
		}
		v, err := x.View(out...)
		if err != nil {
			return nil, fmt.Errorf("reshape %s: %w", l.name, err)
		}
		l.fwd, l.fwdSrc, l.xshape = v, x.Buffer(), x.Shape()
	}
	l.trained = mode == Train
	return l.fwd, nil
}

// Backward implements Layer. The result shares dy's buffer.
func (l *Reshape) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("reshape", l.name, dy, l.fwd, l.trained); err != nil {
		return nil, err
	}
	if l.bwd == nil || l.bwdSrc != dy.Buffer() || !l.bwd.HasShape(l.xshape...) {
		v, err := dy.View(l.xshape...)
		if err != nil {
			return nil, fmt.Errorf("reshape %s: %w", l.name, err)
		}
		l.bwd, l.bwdSrc = v, dy.Buffer()
	}
	return l.bwd, nil
}
