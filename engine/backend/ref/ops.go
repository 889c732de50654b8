package ref

import (
	"math"

	"github.com/hirez-ml/hirez/engine/backend"
)

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x) // no overflow for very negative x
	return e / (1 + e)
}

// Activate implements backend.Backend. Comparisons are written so that NaN
// passes through (NaN < 0 is false).
func (r *Backend) Activate(f backend.Activation, alpha float32, x, y backend.Buffer) error {
	if err := rule(backend.CheckActivation("activate", f)); err != nil {
		return err
	}
	xs, err := r.get("activate", "x", x, -1)
	if err != nil {
		return err
	}
	ys, err := r.get("activate", "y", y, len(xs))
	if err != nil {
		return err
	}
	switch f {
	case backend.Identity:
		copy(ys, xs)
	case backend.ReLU:
		for i, v := range xs {
			if v < 0 {
				v = 0
			}
			ys[i] = v
		}
	case backend.LeakyReLU:
		for i, v := range xs {
			if v < 0 {
				v *= alpha
			}
			ys[i] = v
		}
	case backend.Tanh:
		for i, v := range xs {
			ys[i] = float32(math.Tanh(float64(v)))
		}
	case backend.Sigmoid:
		for i, v := range xs {
			ys[i] = float32(sigmoid(float64(v)))
		}
	}
	return nil
}

// ActivateBackward implements backend.Backend. At ReLU's kink (x = 0) the
// gradient is 0, as in PyTorch.
func (r *Backend) ActivateBackward(f backend.Activation, alpha float32, x, y, dy, dx backend.Buffer) error {
	if err := rule(backend.CheckActivation("activate backward", f)); err != nil {
		return err
	}
	dys, err := r.get("activate backward", "dy", dy, -1)
	if err != nil {
		return err
	}
	dxs, err := r.get("activate backward", "dx", dx, len(dys))
	if err != nil {
		return err
	}
	var in []float32 // x for ReLU/LeakyReLU, y for Tanh/Sigmoid
	switch f {
	case backend.Identity:
		copy(dxs, dys)
		return nil
	case backend.ReLU, backend.LeakyReLU:
		in, err = r.get("activate backward", "x", x, len(dys))
	default: // Tanh, Sigmoid
		in, err = r.get("activate backward", "y", y, len(dys))
	}
	if err != nil {
		return err
	}
	if err := noAlias("activate backward", dxs, "dx", in, "x/y"); err != nil {
		return err
	}
	for i, g := range dys {
		v := in[i]
		switch f {
		case backend.ReLU:
			if v <= 0 {
				g = 0
			}
		case backend.LeakyReLU:
			if v <= 0 {
				g *= alpha
			}
		case backend.Tanh:
			g *= 1 - v*v
		case backend.Sigmoid:
			g *= v * (1 - v)
		}
		dxs[i] = g
	}
	return nil
}

// dimsArgs checks d with check (one of package backend's rules) and returns x
// (d.Size() values) and y (ny values).
func (r *Backend) dimsArgs(op string, check error, d backend.Dims, x backend.Buffer, xName string, y backend.Buffer, yName string, ny int) ([]float32, []float32, error) {
	if err := rule(check); err != nil {
		return nil, nil, err
	}
	xs, err := r.get(op, xName, x, d.Size())
	if err != nil {
		return nil, nil, err
	}
	ys, err := r.get(op, yName, y, ny)
	if err != nil {
		return nil, nil, err
	}
	if err := noAlias(op, ys, yName, xs, xName); err != nil {
		return nil, nil, err
	}
	return xs, ys, nil
}

// Upsample2x implements backend.Backend: y[n,c,h,w] = x[n,c,h/2,w/2].
func (r *Backend) Upsample2x(d backend.Dims, x, y backend.Buffer) error {
	xs, ys, err := r.dimsArgs("upsample2x", backend.CheckUpsample2x("upsample2x", d), d, x, "x", y, "y", 4*d.Size())
	if err != nil {
		return err
	}
	for p := 0; p < d.N*d.C; p++ {
		src := xs[p*d.H*d.W:]
		dst := ys[p*4*d.H*d.W:]
		for h := 0; h < 2*d.H; h++ {
			for w := 0; w < 2*d.W; w++ {
				dst[h*2*d.W+w] = src[(h/2)*d.W+w/2]
			}
		}
	}
	return nil
}

// Upsample2xBackward implements backend.Backend.
func (r *Backend) Upsample2xBackward(d backend.Dims, dy, dx backend.Buffer) error {
	dxs, dys, err := r.dimsArgs("upsample2x backward", backend.CheckUpsample2x("upsample2x backward", d), d, dx, "dx", dy, "dy", 4*d.Size())
	if err != nil {
		return err
	}
	for p := 0; p < d.N*d.C; p++ {
		src := dys[p*4*d.H*d.W:]
		dst := dxs[p*d.H*d.W:]
		for h := 0; h < d.H; h++ {
			for w := 0; w < d.W; w++ {
				a := src[(2*h)*2*d.W+2*w] + src[(2*h)*2*d.W+2*w+1]
				b := src[(2*h+1)*2*d.W+2*w] + src[(2*h+1)*2*d.W+2*w+1]
				dst[h*d.W+w] = a + b
			}
		}
	}
	return nil
}

// argmax2 returns the offset (within a plane of width w) of the largest value
// of the 2×2 block whose top-left corner is (h, w0); the first in row-major
// order wins ties.
func argmax2(x []float32, width, h, w0 int) int {
	best := h*width + w0
	for _, o := range [3]int{h*width + w0 + 1, (h+1)*width + w0, (h+1)*width + w0 + 1} {
		if x[o] > x[best] {
			best = o
		}
	}
	return best
}

// MaxPool2 implements backend.Backend.
func (r *Backend) MaxPool2(d backend.Dims, x, y backend.Buffer) error {
	xs, ys, err := r.dimsArgs("maxpool2", backend.CheckMaxPool2("maxpool2", d), d, x, "x", y, "y", d.Size()/4)
	if err != nil {
		return err
	}
	oh, ow := d.H/2, d.W/2
	for p := 0; p < d.N*d.C; p++ {
		src := xs[p*d.H*d.W : (p+1)*d.H*d.W]
		for h := 0; h < oh; h++ {
			for w := 0; w < ow; w++ {
				ys[p*oh*ow+h*ow+w] = src[argmax2(src, d.W, 2*h, 2*w)]
			}
		}
	}
	return nil
}

// MaxPool2Backward implements backend.Backend.
func (r *Backend) MaxPool2Backward(d backend.Dims, x, dy, dx backend.Buffer) error {
	const op = "maxpool2 backward"
	xs, dxs, err := r.dimsArgs(op, backend.CheckMaxPool2(op, d), d, x, "x", dx, "dx", d.Size())
	if err != nil {
		return err
	}
	dys, err := r.get(op, "dy", dy, d.Size()/4)
	if err != nil {
		return err
	}
	if err := noAlias(op, dxs, "dx", dys, "dy"); err != nil {
		return err
	}
	for i := range dxs {
		dxs[i] = 0
	}
	oh, ow := d.H/2, d.W/2
	for p := 0; p < d.N*d.C; p++ {
		src := xs[p*d.H*d.W : (p+1)*d.H*d.W]
		dst := dxs[p*d.H*d.W : (p+1)*d.H*d.W]
		for h := 0; h < oh; h++ {
			for w := 0; w < ow; w++ {
				dst[argmax2(src, d.W, 2*h, 2*w)] = dys[p*oh*ow+h*ow+w]
			}
		}
	}
	return nil
}

// PixelShuffle implements backend.Backend:
// y[n, c, h·r+i, w·r+j] = x[n, c·r²+i·r+j, h, w].
func (r *Backend) PixelShuffle(d backend.Dims, f int, x, y backend.Buffer) error {
	xs, ys, err := r.dimsArgs("pixel shuffle", backend.CheckPixelShuffle(d, f), d, x, "x", y, "y", d.Size())
	if err != nil {
		return err
	}
	shuffle(d, f, xs, ys, false)
	return nil
}

// PixelUnshuffle implements backend.Backend; d is the shuffled shape.
func (r *Backend) PixelUnshuffle(d backend.Dims, f int, x, y backend.Buffer) error {
	xs, ys, err := r.dimsArgs("pixel unshuffle", backend.CheckPixelUnshuffle(d, f), d, x, "x", y, "y", d.Size())
	if err != nil {
		return err
	}
	small := backend.Dims{N: d.N, C: d.C * f * f, H: d.H / f, W: d.W / f}
	shuffle(small, f, ys, xs, true)
	return nil
}

// shuffle moves values between the deep tensor deep (shape d) and the shuffled
// tensor wide; inverse copies wide → deep.
func shuffle(d backend.Dims, f int, deep, wide []float32, inverse bool) {
	c := d.C / (f * f)
	for n := 0; n < d.N; n++ {
		for ci := 0; ci < c; ci++ {
			for i := 0; i < f; i++ {
				for j := 0; j < f; j++ {
					for h := 0; h < d.H; h++ {
						for w := 0; w < d.W; w++ {
							di := ((n*d.C+ci*f*f+i*f+j)*d.H+h)*d.W + w
							wi := ((n*c+ci)*d.H*f+h*f+i)*d.W*f + w*f + j
							if inverse {
								deep[di] = wide[wi]
							} else {
								wide[wi] = deep[di]
							}
						}
					}
				}
			}
		}
	}
}

// bnArgs validates a batch norm (BatchNorm.Validate) and fetches buffers: the
// first two are of d.Size() values, the rest of d.C.
func (r *Backend) bnArgs(op string, b backend.BatchNorm, names []string, bufs ...backend.Buffer) (out [8][]float32, err error) {
	if err := rule(b.Validate(op, op == "batchnorm train")); err != nil {
		return out, err
	}
	for i, buf := range bufs {
		n := b.Dims.C
		if i < 2 {
			n = b.Dims.Size()
		}
		s, err := r.get(op, names[i], buf, n)
		if err != nil {
			return out, err
		}
		out[i] = s
	}
	return out, nil
}

// BatchNormTrain implements backend.Backend. Statistics are accumulated in
// float64; var is the biased batch variance used for normalising.
func (r *Backend) BatchNormTrain(b backend.BatchNorm, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar backend.Buffer) error {
	const op = "batchnorm train"
	s, err := r.bnArgs(op, b, []string{"x", "y", "gamma", "beta", "save_mean", "save_inv_std", "running_mean", "running_var"},
		x, y, gamma, beta, saveMean, saveInvStd, runMean, runVar)
	if err != nil {
		return err
	}
	xs, ys, gs, bs, sm, si, rm, rv := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
	if err := noAlias(op, ys, "y", xs, "x"); err != nil {
		return err
	}
	d := b.Dims
	m := d.N * d.H * d.W
	hw := d.H * d.W
	for c := 0; c < d.C; c++ {
		var sum float64
		for n := 0; n < d.N; n++ {
			for _, v := range xs[(n*d.C+c)*hw : (n*d.C+c+1)*hw] {
				sum += float64(v)
			}
		}
		mean := sum / float64(m)
		var ss float64
		for n := 0; n < d.N; n++ {
			for _, v := range xs[(n*d.C+c)*hw : (n*d.C+c+1)*hw] {
				ss += (float64(v) - mean) * (float64(v) - mean)
			}
		}
		variance := ss / float64(m)
		inv := 1 / math.Sqrt(variance+float64(b.Epsilon))
		for n := 0; n < d.N; n++ {
			o := (n*d.C + c) * hw
			for i := o; i < o+hw; i++ {
				ys[i] = float32((float64(xs[i])-mean)*inv*float64(gs[c]) + float64(bs[c]))
			}
		}
		sm[c], si[c] = float32(mean), float32(inv)
		mom := float64(b.Momentum)
		rm[c] = float32((1-mom)*float64(rm[c]) + mom*mean)
		rv[c] = float32((1-mom)*float64(rv[c]) + mom*variance*float64(m)/float64(m-1))
	}
	return nil
}

// BatchNormInfer implements backend.Backend.
func (r *Backend) BatchNormInfer(b backend.BatchNorm, x, gamma, beta, runMean, runVar, y backend.Buffer) error {
	const op = "batchnorm infer"
	s, err := r.bnArgs(op, b, []string{"x", "y", "gamma", "beta", "running_mean", "running_var"},
		x, y, gamma, beta, runMean, runVar)
	if err != nil {
		return err
	}
	xs, ys, gs, bs, rm, rv := s[0], s[1], s[2], s[3], s[4], s[5]
	if err := noAlias(op, ys, "y", xs, "x"); err != nil {
		return err
	}
	d := b.Dims
	hw := d.H * d.W
	for n := 0; n < d.N; n++ {
		for c := 0; c < d.C; c++ {
			inv := 1 / math.Sqrt(float64(rv[c])+float64(b.Epsilon))
			o := (n*d.C + c) * hw
			for i := o; i < o+hw; i++ {
				ys[i] = float32((float64(xs[i])-float64(rm[c]))*inv*float64(gs[c]) + float64(bs[c]))
			}
		}
	}
	return nil
}

// BatchNormBackward implements backend.Backend with x̂ = (x − mean)·invstd:
// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·invstd/m · (m·dy − dβ − x̂·dγ).
func (r *Backend) BatchNormBackward(b backend.BatchNorm, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta backend.Buffer) error {
	const op = "batchnorm backward"
	s, err := r.bnArgs(op, b, []string{"x", "dy", "gamma", "save_mean", "save_inv_std", "dgamma", "dbeta"},
		x, dy, gamma, saveMean, saveInvStd, dgamma, dbeta)
	if err != nil {
		return err
	}
	xs, dys, gs, sm, si, dg, db := s[0], s[1], s[2], s[3], s[4], s[5], s[6]
	dxs, err := r.get(op, "dx", dx, b.Dims.Size())
	if err != nil {
		return err
	}
	if err := noAlias(op, dxs, "dx", xs, "x"); err != nil {
		return err
	}
	if err := noAlias(op, dxs, "dx", dys, "dy"); err != nil {
		return err
	}
	d := b.Dims
	m := float64(d.N * d.H * d.W)
	hw := d.H * d.W
	for c := 0; c < d.C; c++ {
		mean, inv := float64(sm[c]), float64(si[c])
		var sdy, sdyx float64
		for n := 0; n < d.N; n++ {
			o := (n*d.C + c) * hw
			for i := o; i < o+hw; i++ {
				sdy += float64(dys[i])
				sdyx += float64(dys[i]) * (float64(xs[i]) - mean) * inv
			}
		}
		k := float64(gs[c]) * inv / m
		for n := 0; n < d.N; n++ {
			o := (n*d.C + c) * hw
			for i := o; i < o+hw; i++ {
				xhat := (float64(xs[i]) - mean) * inv
				dxs[i] = float32(k * (m*float64(dys[i]) - sdy - xhat*sdyx))
			}
		}
		dg[c], db[c] = float32(sdyx), float32(sdy)
	}
	return nil
}

// lossArgs resolves a loss's buffers (backend.LossArgs); ts is nil for hinge.
func (r *Backend) lossArgs(op string, x, target, loss, grad backend.Buffer) (xs, ts, ls, gs []float32, err error) {
	xb, tb, lb, gb, err := backend.LossArgs[*buffer](r, "ref", op, x, target, loss, grad)
	if err := r.live(op, err); err != nil {
		return nil, nil, nil, nil, err
	}
	v := data(xb, tb, lb, gb)
	return v[0], v[1], v[2], v[3], nil
}

// BCEWithLogits implements backend.Backend with the stable form
// max(x, 0) − x·t + log(1 + e^−|x|); the gradient is (σ(x) − t)/n.
func (r *Backend) BCEWithLogits(x, target, loss, grad backend.Buffer) error {
	xs, ts, ls, gs, err := r.lossArgs("bce with logits", x, target, loss, grad)
	if err != nil {
		return err
	}
	n := float64(len(xs))
	var s float64
	for i, v := range xs {
		xv, t := float64(v), float64(ts[i])
		s += math.Max(xv, 0) - xv*t + math.Log1p(math.Exp(-math.Abs(xv)))
		gs[i] = float32((sigmoid(xv) - t) / n)
	}
	ls[0] = float32(s / n)
	return nil
}

// MSE implements backend.Backend: gradient 2(x − t)/n.
func (r *Backend) MSE(x, target, loss, grad backend.Buffer) error {
	xs, ts, ls, gs, err := r.lossArgs("mse", x, target, loss, grad)
	if err != nil {
		return err
	}
	n := float64(len(xs))
	var s float64
	for i, v := range xs {
		e := float64(v) - float64(ts[i])
		s += e * e
		gs[i] = float32(2 * e / n)
	}
	ls[0] = float32(s / n)
	return nil
}

// Hinge implements backend.Backend: gradient −sign/n where 1 − sign·x > 0,
// else 0.
func (r *Backend) Hinge(x backend.Buffer, sign float32, loss, grad backend.Buffer) error {
	if err := rule(backend.CheckHinge(sign)); err != nil {
		return err
	}
	xs, _, ls, gs, err := r.lossArgs("hinge", x, nil, loss, grad)
	if err != nil {
		return err
	}
	n := float64(len(xs))
	var s float64
	for i, v := range xs {
		m := 1 - float64(sign)*float64(v)
		g := 0.0
		if m > 0 {
			s += m
			g = -float64(sign) / n
		} else if math.IsNaN(m) {
			s += m
			g = m
		}
		gs[i] = float32(g)
	}
	ls[0] = float32(s / n)
	return nil
}

// AdamUpdate implements backend.Backend as torch.optim.Adam (no weight decay):
// m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
// p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
func (r *Backend) AdamUpdate(a backend.Adam, param, grad, m, v backend.Buffer) error {
	pb, gb, mb, vb, err := backend.AdamArgs[*buffer](r, "ref", a, param, grad, m, v)
	if err := r.live("adam update", err); err != nil {
		return err
	}
	ps, gs, ms, vs := pb.data, gb.data, mb.data, vb.data
	b1, b2 := float64(a.Beta1), float64(a.Beta2)
	bc1 := 1 - math.Pow(b1, float64(a.Step))
	bc2 := 1 - math.Pow(b2, float64(a.Step))
	step := float64(a.LR) / bc1
	for i := range ps {
		g := float64(gs[i])
		mi := b1*float64(ms[i]) + (1-b1)*g
		vi := b2*float64(vs[i]) + (1-b2)*g*g
		ms[i], vs[i] = float32(mi), float32(vi)
		ps[i] = float32(float64(ps[i]) - step*mi/(math.Sqrt(vi)/math.Sqrt(bc2)+float64(a.Epsilon)))
	}
	return nil
}
