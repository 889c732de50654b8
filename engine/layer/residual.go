package layer

import (
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Residual is a global skip connection around a body: y = skip(x) + body(x),
// where skip is the identity when nil (VDSR's y = x + f(x)) or a fixed resampler
// when the body changes the spatial size (ESPCN-style: bicubic(x) + f(x)).
// Backward returns dx = skip'(dy) + body.Backward(dy). The layer adds no
// parameters and no name prefix: Params are the body's (then the skip's), so a
// preset's state_dict names do not change when it gains a skip.
type Residual struct {
	name       string
	body, skip Layer
	y, dx      *tensor.Tensor
	ys         shelf // y at the other shapes run recently
	trained    bool
}

var _ Layer = (*Residual)(nil)

// NewResidual wraps body with a skip (nil: identity).
func NewResidual(name string, body, skip Layer) (*Residual, error) {
	if body == nil {
		return nil, fmt.Errorf("residual %s: nil body", name)
	}
	return &Residual{name: name, body: body, skip: skip}, nil
}

// Name implements Layer.
func (l *Residual) Name() string { return l.name }

// Body is the wrapped layer.
func (l *Residual) Body() Layer { return l.body }

// Params implements Layer.
func (l *Residual) Params() []*Param {
	ps := l.body.Params()
	if l.skip != nil {
		ps = append(ps, l.skip.Params()...)
	}
	return ps
}

// Init implements Initializer.
func (l *Residual) Init(s Init, rng *rand.Rand) error {
	if err := Initialize(l.body, s, rng); err != nil {
		return err
	}
	if l.skip != nil {
		return Initialize(l.skip, s, rng)
	}
	return nil
}

// Forward implements Layer.
func (l *Residual) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.trained = false
	if err := checkInput("residual", l.name, x, nil); err != nil {
		return nil, err
	}
	f, err := l.body.Forward(x, mode)
	if err != nil {
		return nil, err
	}
	s := x
	if l.skip != nil {
		if s, err = l.skip.Forward(x, mode); err != nil {
			return nil, err
		}
	}
	if !tensor.SameShape(f.Shape(), s.Shape()) {
		return nil, fmt.Errorf("residual %s: body gives %v, skip %v", l.name, f.Shape(), s.Shape())
	}
	b := x.Backend()
	if err := l.ys.ensure(&l.y, b, f.Shape()...); err != nil {
		return nil, fmt.Errorf("residual %s: %w", l.name, err)
	}
	if err := b.Copy(l.y.Buffer(), f.Buffer()); err != nil {
		return nil, fmt.Errorf("residual %s: %w", l.name, err)
	}
	if err := b.Axpby(1, s.Buffer(), 1, l.y.Buffer()); err != nil {
		return nil, fmt.Errorf("residual %s: %w", l.name, err)
	}
	l.trained = mode == Train
	return l.y, nil
}

// Backward implements Layer.
func (l *Residual) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("residual", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	db, err := l.body.Backward(dy)
	if err != nil {
		return nil, err
	}
	b := dy.Backend()
	if err := tensor.Ensure(&l.dx, b, db.Shape()...); err != nil {
		return nil, fmt.Errorf("residual %s: %w", l.name, err)
	}
	if err := b.Copy(l.dx.Buffer(), db.Buffer()); err != nil {
		return nil, fmt.Errorf("residual %s: %w", l.name, err)
	}
	ds := dy
	if l.skip != nil {
		if ds, err = l.skip.Backward(dy); err != nil {
			return nil, err
		}
	}
	if ds.Len() != l.dx.Len() {
		return nil, fmt.Errorf("residual %s: skip gradient %v, body gradient %v", l.name, ds.Shape(), db.Shape())
	}
	if err := b.Axpby(1, ds.Buffer(), 1, l.dx.Buffer()); err != nil {
		return nil, fmt.Errorf("residual %s: %w", l.name, err)
	}
	return l.dx, nil
}

// Free implements Layer.
func (l *Residual) Free() {
	l.body.Free()
	if l.skip != nil {
		l.skip.Free()
	}
	l.y.Free()
	l.ys.free()
	l.dx.Free()
	l.y, l.dx, l.trained = nil, nil, false
}

// Bicubic is a fixed (parameter-free) integer-factor upsampler that computes
// exactly MATLAB's imresize(x, Factor, 'bicubic') in floating point: Keys' cubic
// kernel with a = −0.5, output sample o (1-based) taken at input position
// o/Factor + 0.5·(1 − 1/Factor), taps beyond the border mirrored symmetrically
// (… 2 1 | 1 2 … n | n n−1 …), weights normalised to sum 1. It is the same
// resampler engine/metrics uses for the bicubic baseline, without the uint8
// rounding between passes. Rows are resized first, then columns (linear, so the
// order only changes float rounding).
//
// It runs on the host (one download and one upload per call): there is no
// backend kernel for it, and its cost is negligible next to the convolutions it
// feeds. Backward applies the transposed operator.
type Bicubic struct {
	shapeOp
	r int
	// taps cached per (inLen) for the last lengths seen.
	hIdx, wIdx []int
	hW, wW     []float32
	hIn, wIn   int
	// host scratch, re-used at a fixed shape
	in, tmp, out []float32
}

// grow returns buf resized to n (re-using its storage when it can).
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

var _ Layer = (*Bicubic)(nil)

// bicubicTaps bounds the taps per output sample of an upscale: the kernel spans
// 4 input samples and MATLAB's contributions use ceil(4)+2 = 6 before dropping
// the all-zero ones.
const bicubicTaps = 6

// NewBicubic makes a MATLAB-bicubic upsampler by the integer factor r ≥ 2.
func NewBicubic(name string, r int) (*Bicubic, error) {
	if r < 2 {
		return nil, fmt.Errorf("bicubic %s: factor %d < 2", name, r)
	}
	return &Bicubic{shapeOp: shapeOp{name: name}, r: r}, nil
}

// Factor is the upscaling factor.
func (l *Bicubic) Factor() int { return l.r }

// bicubicWeights returns, for each of inLen·r output samples, bicubicTaps input
// indices (0-based, mirrored into range) and their normalised weights, taken
// from engine/metrics' MATLAB imresize; rows with fewer taps are padded with
// zero weights so the loops below keep one fixed stride.
func bicubicWeights(inLen, r int) ([]int, []float32) {
	outLen := inLen * r
	taps, index, weights := metrics.BicubicContributions(inLen, outLen, float64(r))
	idx := make([]int, outLen*bicubicTaps)
	wts := make([]float32, outLen*bicubicTaps)
	for o := range outLen {
		for k := range taps {
			idx[o*bicubicTaps+k] = index[o*taps+k]
			wts[o*bicubicTaps+k] = float32(weights[o*taps+k])
		}
	}
	return idx, wts
}

func (l *Bicubic) prepare(h, w int) {
	if l.hIn != h {
		l.hIdx, l.hW = bicubicWeights(h, l.r)
		l.hIn = h
	}
	if l.wIn != w {
		l.wIdx, l.wW = bicubicWeights(w, l.r)
		l.wIn = w
	}
}

// Forward implements Layer: [N C H W] → [N C rH rW].
func (l *Bicubic) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	l.begin()
	d, err := need4D("bicubic", l.name, x)
	if err != nil {
		return nil, err
	}
	l.in = grow(l.in, x.Len())
	if err := x.ToHost(l.in); err != nil {
		return nil, fmt.Errorf("bicubic %s: %w", l.name, err)
	}
	in := l.in
	l.prepare(d.H, d.W)
	r := l.r
	oh, ow := d.H*r, d.W*r
	l.tmp = grow(l.tmp, oh*d.W)
	l.out = grow(l.out, d.N*d.C*oh*ow)
	tmp, out := l.tmp, l.out
	for p := range d.N * d.C {
		src := in[p*d.H*d.W:][:d.H*d.W]
		clear(tmp)
		for o := range oh { // rows: tmp[o, :] = Σ w·src[idx, :]
			row := tmp[o*d.W:][:d.W]
			for k := range bicubicTaps {
				wt := l.hW[o*bicubicTaps+k]
				if wt == 0 {
					continue
				}
				s := src[l.hIdx[o*bicubicTaps+k]*d.W:][:d.W]
				for i, v := range s {
					row[i] += wt * v
				}
			}
		}
		dst := out[p*oh*ow:][:oh*ow]
		for y := range oh { // columns
			s := tmp[y*d.W:][:d.W]
			drow := dst[y*ow:][:ow]
			for o := range ow {
				var acc float32
				for k := range bicubicTaps {
					acc += l.wW[o*bicubicTaps+k] * s[l.wIdx[o*bicubicTaps+k]]
				}
				drow[o] = acc
			}
		}
	}
	b := x.Backend()
	if err := l.ys.ensure(&l.y, b, d.N, d.C, oh, ow); err != nil {
		return nil, fmt.Errorf("bicubic %s: %w", l.name, err)
	}
	if err := l.y.CopyFromHost(out); err != nil {
		return nil, fmt.Errorf("bicubic %s: %w", l.name, err)
	}
	l.keep(x, mode)
	return l.y, nil
}

// Backward implements Layer: the transpose of Forward.
func (l *Bicubic) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if err := checkGrad("bicubic", l.name, dy, l.y, l.trained); err != nil {
		return nil, err
	}
	d := l.x.Dims()
	l.prepare(d.H, d.W)
	l.out = grow(l.out, dy.Len())
	if err := dy.ToHost(l.out); err != nil {
		return nil, fmt.Errorf("bicubic %s: %w", l.name, err)
	}
	g := l.out
	r := l.r
	oh, ow := d.H*r, d.W*r
	l.tmp = grow(l.tmp, oh*d.W)
	l.in = grow(l.in, d.N*d.C*d.H*d.W)
	tmp, dx := l.tmp, l.in
	clear(dx)
	for p := range d.N * d.C {
		src := g[p*oh*ow:][:oh*ow]
		clear(tmp)
		for y := range oh {
			s := src[y*ow:][:ow]
			trow := tmp[y*d.W:][:d.W]
			for o, v := range s {
				for k := range bicubicTaps {
					trow[l.wIdx[o*bicubicTaps+k]] += l.wW[o*bicubicTaps+k] * v
				}
			}
		}
		dst := dx[p*d.H*d.W:][:d.H*d.W]
		for o := range oh {
			row := tmp[o*d.W:][:d.W]
			for k := range bicubicTaps {
				wt := l.hW[o*bicubicTaps+k]
				if wt == 0 {
					continue
				}
				t := dst[l.hIdx[o*bicubicTaps+k]*d.W:][:d.W]
				for i, v := range row {
					t[i] += wt * v
				}
			}
		}
	}
	b := dy.Backend()
	if err := tensor.Ensure(&l.dx, b, d.N, d.C, d.H, d.W); err != nil {
		return nil, fmt.Errorf("bicubic %s: %w", l.name, err)
	}
	if err := l.dx.CopyFromHost(dx); err != nil {
		return nil, fmt.Errorf("bicubic %s: %w", l.name, err)
	}
	return l.dx, nil
}

// Free implements Layer.
func (l *Bicubic) Free() {
	l.shapeOp.Free()
	l.in, l.tmp, l.out = nil, nil, nil
}
