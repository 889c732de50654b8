//go:build cgo

package cpu

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/backend"
)

type opKind int

const (
	opReorder opKind = iota
	opConv
	opEltwise
	opCrop
)

// primKey identifies a cached primitive: the op and everything its shape depends on.
type primKey struct {
	op       opKind
	kind     int // conv: fwd / bwd data / bwd weights; eltwise: 0 fwd, 1 bwd
	conv     backend.Conv2D
	bias     bool
	alg      int
	alpha    float32
	n        int
	d        backend.Dims
	from, to int
	bf16     bool // bfloat16 data (conv forward, eltwise forward)
}

// Fill implements backend.Backend.
func (b *Backend) Fill(x backend.Buffer, v float32) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	xb, err := b.get("fill", "x", x, -1)
	if err != nil {
		return err
	}
	loopFill(b.nthr, xb.p, xb.n, v)
	xb.wrote(plain)
	return nil
}

// Copy implements backend.Backend.
func (b *Backend) Copy(dst, src backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	s, err := b.get("copy", "src", src, -1)
	if err != nil {
		return err
	}
	d, err := b.get("copy", "dst", dst, s.n)
	if err != nil {
		return err
	}
	if d != s {
		copy(floats(d.p, d.n), floats(s.p, s.n))
	}
	d.wrote(s.lay)
	return nil
}

// Axpby implements backend.Backend.
func (b *Backend) Axpby(alpha float32, x backend.Buffer, beta float32, y backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	xb, err := b.get("axpby", "x", x, -1)
	if err != nil {
		return err
	}
	yb, err := b.get("axpby", "y", y, xb.n)
	if err != nil {
		return err
	}
	if err := b.fp32(xb); err != nil {
		return err
	}
	l := xb.lay
	if beta != 0 {
		if l, err = b.agree(xb, yb); err != nil {
			return err
		}
	}
	loopAxpby(b.nthr, alpha, xb.p, beta, yb.p, xb.n)
	yb.wrote(l)
	return nil
}

// Mul implements backend.Backend.
func (b *Backend) Mul(x, y, out backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	xb, err := b.get("mul", "x", x, -1)
	if err != nil {
		return err
	}
	yb, err := b.get("mul", "y", y, xb.n)
	if err != nil {
		return err
	}
	ob, err := b.get("mul", "out", out, xb.n)
	if err != nil {
		return err
	}
	l, err := b.agree(xb, yb)
	if err != nil {
		return err
	}
	loopMul(b.nthr, xb.p, yb.p, ob.p, xb.n)
	ob.wrote(l)
	return nil
}

// Clamp implements backend.Backend.
func (b *Backend) Clamp(x, y backend.Buffer, lo, hi float32) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := rule(backend.CheckClamp(lo, hi)); err != nil {
		return err
	}
	xb, err := b.get("clamp", "x", x, -1)
	if err != nil {
		return err
	}
	yb, err := b.get("clamp", "y", y, xb.n)
	if err != nil {
		return err
	}
	if err := b.fp32(xb); err != nil {
		return err
	}
	loopClamp(b.nthr, xb.p, yb.p, xb.n, lo, hi)
	yb.wrote(xb.lay)
	return nil
}

// Sum implements backend.Backend.
func (b *Backend) Sum(x, out backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	xb, err := b.get("sum", "x", x, -1)
	if err != nil {
		return err
	}
	ob, err := b.get("sum", "out", out, 1)
	if err != nil {
		return err
	}
	if err := b.fp32(xb); err != nil {
		return err
	}
	floats(ob.p, 1)[0] = loopSum(b.nthr, xb.p, xb.n)
	ob.wrote(plain)
	return nil
}

// eltwise returns the cached eltwise primitive.
func (b *Backend) eltwise(bwd bool, alg int, alpha float32, n int, bf16 bool) (prim, error) {
	k := primKey{op: opEltwise, alg: alg, alpha: alpha, n: n, bf16: bf16}
	if bwd {
		k.kind = 1
	}
	if p, ok := b.prims[k]; ok {
		return p, nil
	}
	p, err := eltwiseCreate(b.ctx, bwd, alg, alpha, n, bf16)
	if err != nil {
		return nil, err
	}
	b.prims[k] = p
	return p, nil
}

// algOf maps an activation to oneDNN's algorithm and alpha (forward, backward).
func algOf(op string, f backend.Activation, alpha float32) (fwd, bwd int, a float32, err error) {
	switch f {
	case backend.ReLU:
		return algReLU, algReLU, 0, nil
	case backend.LeakyReLU:
		return algReLU, algReLU, alpha, nil
	case backend.Tanh:
		return algTanh, algTanhUseDst, 0, nil
	case backend.Sigmoid:
		return algLogistic, algLogisticUseDst, 0, nil
	}
	return 0, 0, 0, fmt.Errorf("cpu: %s: unknown activation %v", op, f)
}

// Activate implements backend.Backend.
func (b *Backend) Activate(f backend.Activation, alpha float32, x, y backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := rule(backend.CheckActivation("activate", f)); err != nil {
		return err
	}
	xb, err := b.get("activate", "x", x, -1)
	if err != nil {
		return err
	}
	yb, err := b.get("activate", "y", y, xb.n)
	if err != nil {
		return err
	}
	if f == backend.Identity {
		if yb != xb {
			copy(floats(yb.p, yb.n), floats(xb.p, xb.n))
		}
		yb.wrote(xb.lay)
		return nil
	}
	alg, _, a, err := algOf("activate", f, alpha)
	if err != nil {
		return err
	}
	// A bfloat16 buffer stays bfloat16: oneDNN's eltwise computes in fp32
	// inside and rounds once, as the conv that wrote it did.
	p, err := b.eltwise(false, alg, a, xb.n, xb.lay.bf16)
	if err != nil {
		return err
	}
	if err := execPrim(b.ctx, "activate", p, xb.p, yb.p, nil, nil); err != nil {
		return fmt.Errorf("%w (%v)", err, f)
	}
	yb.wrote(xb.lay)
	return nil
}

// ActivateBackward implements backend.Backend.
func (b *Backend) ActivateBackward(f backend.Activation, alpha float32, x, y, dy, dx backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	const op = "activate backward"
	if err := b.refuse(op); err != nil {
		return err
	}
	if err := rule(backend.CheckActivation(op, f)); err != nil {
		return err
	}
	dyb, err := b.get(op, "dy", dy, -1)
	if err != nil {
		return err
	}
	dxb, err := b.get(op, "dx", dx, dyb.n)
	if err != nil {
		return err
	}
	if f == backend.Identity {
		if dxb != dyb {
			copy(floats(dxb.p, dxb.n), floats(dyb.p, dyb.n))
		}
		dxb.wrote(dyb.lay)
		return nil
	}
	_, alg, a, err := algOf(op, f, alpha)
	if err != nil {
		return err
	}
	// ReLU and LeakyReLU read x, Tanh and Sigmoid read y.
	in, name := x, "x"
	if f == backend.Tanh || f == backend.Sigmoid {
		in, name = y, "y"
	}
	ib, err := b.get(op, name, in, dyb.n)
	if err != nil {
		return err
	}
	l, err := b.agree(ib, dyb)
	if err != nil {
		return err
	}
	p, err := b.eltwise(true, alg, a, dyb.n, false)
	if err != nil {
		return err
	}
	if err := execPrim(b.ctx, op, p, ib.p, dyb.p, dxb.p, nil); err != nil {
		return fmt.Errorf("%w (%v)", err, f)
	}
	dxb.wrote(l)
	return nil
}

// MatMul implements backend.Backend.
func (b *Backend) MatMul(g backend.Gemm, a, bb, c backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := g.Validate(); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	ab, err := b.get("matmul", "a", a, g.M*g.K)
	if err != nil {
		return err
	}
	bbb, err := b.get("matmul", "b", bb, g.K*g.N)
	if err != nil {
		return err
	}
	cb, err := b.get("matmul", "c", c, g.M*g.N)
	if err != nil {
		return err
	}
	for i, in := range [...]*buffer{ab, bbb} {
		if err := backend.NoAlias("cpu", "matmul", cb, "c", in, [...]string{"a", "b"}[i]); err != nil {
			return err
		}
	}
	for _, x := range [...]*buffer{ab, bbb} {
		if err := b.setLayout(x, plain); err != nil {
			return err
		}
	}
	if g.Beta != 0 {
		if err := b.setLayout(cb, plain); err != nil {
			return err
		}
	}
	if err := sgemm(b.ctx, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, ab.p, bbb.p, g.Beta, cb.p); err != nil {
		return err
	}
	cb.wrote(plain)
	return nil
}

// spatial picks the fp32 layout for an op on x of shape d: NHWC when x holds
// that shape in NHWC (converting bfloat16 to fp32), plain otherwise (converting x
// if it is NHWC of another shape).
func (b *Backend) spatial(x *buffer, d backend.Dims) (int, error) {
	if x.lay.nhwc && x.lay.d == d {
		return fmtNHWC, b.fp32(x)
	}
	return fmtPlain, b.setLayout(x, plain)
}

func nhwc(d backend.Dims) layout { return layout{nhwc: true, d: d} }

// layoutFor is the layout an output of shape d gets for format f.
func layoutFor(f int, d backend.Dims) layout {
	if f == fmtNHWC {
		return nhwc(d)
	}
	return plain
}

// AddBias implements backend.Backend.
func (b *Backend) AddBias(d backend.Dims, x, bias backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := rule(backend.CheckDims("add bias", d)); err != nil {
		return err
	}
	xb, err := b.get("add bias", "x", x, d.Size())
	if err != nil {
		return err
	}
	bb, err := b.get("add bias", "bias", bias, d.C)
	if err != nil {
		return err
	}
	if err := b.setLayout(bb, plain); err != nil {
		return err
	}
	fm, err := b.spatial(xb, d)
	if err != nil {
		return err
	}
	loopAddBias(b.nthr, fm, d.N, d.C, d.H*d.W, xb.p, bb.p)
	xb.wrote(xb.lay)
	return nil
}

// BiasGrad implements backend.Backend.
func (b *Backend) BiasGrad(d backend.Dims, dy, db backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := rule(backend.CheckDims("bias grad", d)); err != nil {
		return err
	}
	dyb, err := b.get("bias grad", "dy", dy, d.Size())
	if err != nil {
		return err
	}
	if err := b.refuse("bias grad"); err != nil {
		return err
	}
	dbb, err := b.get("bias grad", "db", db, d.C)
	if err != nil {
		return err
	}
	fm, err := b.spatial(dyb, d)
	if err != nil {
		return err
	}
	loopBiasGrad(b.nthr, fm, d.N, d.C, d.H*d.W, dyb.p, dbb.p)
	dbb.wrote(plain)
	return nil
}

func up(d backend.Dims) backend.Dims   { return backend.Dims{N: d.N, C: d.C, H: 2 * d.H, W: 2 * d.W} }
func down(d backend.Dims) backend.Dims { return backend.Dims{N: d.N, C: d.C, H: d.H / 2, W: d.W / 2} }

// Upsample2x implements backend.Backend.
func (b *Backend) Upsample2x(d backend.Dims, x, y backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := rule(backend.CheckUpsample2x("upsample2x", d)); err != nil {
		return err
	}
	xb, err := b.get("upsample2x", "x", x, d.Size())
	if err != nil {
		return err
	}
	yb, err := b.get("upsample2x", "y", y, 4*d.Size())
	if err != nil {
		return err
	}
	if xb.lay == (layout{nhwc: true, d: d, bf16: true}) { // copies pixels: bfloat16 as is
		loopUpsample(b.nthr, fmtNHWC, 2, d.N, d.C, d.H, d.W, xb.p, yb.p, false)
		yb.wrote(layout{nhwc: true, d: up(d), bf16: true})
		return nil
	}
	fm, err := b.spatial(xb, d)
	if err != nil {
		return err
	}
	loopUpsample(b.nthr, fm, 4, d.N, d.C, d.H, d.W, xb.p, yb.p, false)
	yb.wrote(layoutFor(fm, up(d)))
	return nil
}

// Upsample2xBackward implements backend.Backend.
func (b *Backend) Upsample2xBackward(d backend.Dims, dy, dx backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	const op = "upsample2x backward"
	if err := b.refuse(op); err != nil {
		return err
	}
	if err := rule(backend.CheckUpsample2x(op, d)); err != nil {
		return err
	}
	dyb, err := b.get(op, "dy", dy, 4*d.Size())
	if err != nil {
		return err
	}
	dxb, err := b.get(op, "dx", dx, d.Size())
	if err != nil {
		return err
	}
	fm, err := b.spatial(dyb, up(d))
	if err != nil {
		return err
	}
	loopUpsample(b.nthr, fm, 4, d.N, d.C, d.H, d.W, dyb.p, dxb.p, true)
	dxb.wrote(layoutFor(fm, d))
	return nil
}

// MaxPool2 implements backend.Backend.
func (b *Backend) MaxPool2(d backend.Dims, x, y backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := rule(backend.CheckMaxPool2("maxpool2", d)); err != nil {
		return err
	}
	xb, err := b.get("maxpool2", "x", x, d.Size())
	if err != nil {
		return err
	}
	yb, err := b.get("maxpool2", "y", y, d.Size()/4)
	if err != nil {
		return err
	}
	fm, err := b.spatial(xb, d)
	if err != nil {
		return err
	}
	loopMaxPool(b.nthr, fm, d.N, d.C, d.H, d.W, xb.p, yb.p)
	yb.wrote(layoutFor(fm, down(d)))
	return nil
}

// MaxPool2Backward implements backend.Backend.
func (b *Backend) MaxPool2Backward(d backend.Dims, x, dy, dx backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	const op = "maxpool2 backward"
	if err := b.refuse(op); err != nil {
		return err
	}
	if err := rule(backend.CheckMaxPool2(op, d)); err != nil {
		return err
	}
	xb, err := b.get(op, "x", x, d.Size())
	if err != nil {
		return err
	}
	dyb, err := b.get(op, "dy", dy, d.Size()/4)
	if err != nil {
		return err
	}
	dxb, err := b.get(op, "dx", dx, d.Size())
	if err != nil {
		return err
	}
	if err := backend.NoAlias("cpu", op, dxb, "dx", xb, "x"); err != nil {
		return err
	}
	fm, err := b.spatial(xb, d)
	if err != nil {
		return err
	}
	// dy follows x: the gradient is small next to x, so it is the one to convert.
	if err := b.setLayout(dyb, layoutFor(fm, down(d))); err != nil {
		return err
	}
	loopMaxPoolBwd(b.nthr, fm, d.N, d.C, d.H, d.W, xb.p, dyb.p, dxb.p)
	dxb.wrote(layoutFor(fm, d))
	return nil
}

func (b *Backend) shuffle(op string, inverse bool, d backend.Dims, r int, x, y backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	check := backend.CheckPixelShuffle
	if inverse {
		check = backend.CheckPixelUnshuffle
	}
	if err := rule(check(d, r)); err != nil {
		return err
	}
	// (n, c, h, w): c the small channel count and h, w the small sides.
	n, c, h, w := d.N, d.C/(r*r), d.H, d.W
	if inverse {
		c, h, w = d.C, d.H/r, d.W/r
	}
	xb, err := b.get(op, "x", x, d.Size())
	if err != nil {
		return err
	}
	yb, err := b.get(op, "y", y, d.Size())
	if err != nil {
		return err
	}
	if err := backend.NoAlias("cpu", op, yb, "y", xb, "x"); err != nil {
		return err
	}
	if err := b.setLayout(xb, plain); err != nil {
		return err
	}
	loopPixelShuffle(b.nthr, inverse, n, c, h, w, r, xb.p, yb.p)
	yb.wrote(plain)
	return nil
}

// PixelShuffle implements backend.Backend.
func (b *Backend) PixelShuffle(d backend.Dims, r int, x, y backend.Buffer) error {
	return b.shuffle("pixel shuffle", false, d, r, x, y)
}

// PixelUnshuffle implements backend.Backend.
func (b *Backend) PixelUnshuffle(d backend.Dims, r int, x, y backend.Buffer) error {
	return b.shuffle("pixel unshuffle", true, d, r, x, y)
}

// bnArgs checks a batch norm (BatchNorm.Validate) and resolves its buffers:
// the first nd have the data shape, the rest one value per channel; all end up
// plain.
func (b *Backend) bnArgs(op string, bn backend.BatchNorm, names []string, xs []backend.Buffer, nd int, out []*buffer) error {
	if err := rule(bn.Validate(op, op == "batchnorm train")); err != nil {
		return err
	}
	for i, x := range xs {
		n := bn.Dims.C
		if i < nd {
			n = bn.Dims.Size()
		}
		buf, err := b.get(op, names[i], x, n)
		if err != nil {
			return err
		}
		if err := b.setLayout(buf, plain); err != nil {
			return err
		}
		out[i] = buf
	}
	return nil
}

// BatchNormTrain implements backend.Backend.
func (b *Backend) BatchNormTrain(bn backend.BatchNorm, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := b.refuse("batchnorm train"); err != nil {
		return err
	}
	var a [8]*buffer
	if err := b.bnArgs("batchnorm train", bn,
		[]string{"x", "y", "gamma", "beta", "save_mean", "save_inv_std", "running_mean", "running_var"},
		[]backend.Buffer{x, y, gamma, beta, saveMean, saveInvStd, runMean, runVar}, 2, a[:]); err != nil {
		return err
	}
	d := bn.Dims
	loopBNTrain(b.nthr, d.N, d.C, d.H*d.W, bn.Epsilon, bn.Momentum, a[0].p, a[2].p, a[3].p, a[1].p, a[4].p, a[5].p, a[6].p, a[7].p)
	for _, o := range []*buffer{a[1], a[4], a[5], a[6], a[7]} {
		o.wrote(plain)
	}
	return nil
}

// BatchNormInfer implements backend.Backend.
func (b *Backend) BatchNormInfer(bn backend.BatchNorm, x, gamma, beta, runMean, runVar, y backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	var a [6]*buffer
	if err := b.bnArgs("batchnorm infer", bn,
		[]string{"x", "y", "gamma", "beta", "running_mean", "running_var"},
		[]backend.Buffer{x, y, gamma, beta, runMean, runVar}, 2, a[:]); err != nil {
		return err
	}
	d := bn.Dims
	loopBNInfer(b.nthr, d.N, d.C, d.H*d.W, bn.Epsilon, a[0].p, a[2].p, a[3].p, a[4].p, a[5].p, a[1].p)
	a[1].wrote(plain)
	return nil
}

// BatchNormBackward implements backend.Backend.
func (b *Backend) BatchNormBackward(bn backend.BatchNorm, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := b.refuse("batchnorm backward"); err != nil {
		return err
	}
	var a [8]*buffer
	if err := b.bnArgs("batchnorm backward", bn,
		[]string{"x", "dy", "dx", "gamma", "save_mean", "save_inv_std", "dgamma", "dbeta"},
		[]backend.Buffer{x, dy, dx, gamma, saveMean, saveInvStd, dgamma, dbeta}, 3, a[:]); err != nil {
		return err
	}
	d := bn.Dims
	loopBNBwd(b.nthr, d.N, d.C, d.H*d.W, a[0].p, a[1].p, a[3].p, a[4].p, a[5].p, a[2].p, a[6].p, a[7].p)
	for _, o := range []*buffer{a[2], a[6], a[7]} {
		o.wrote(plain)
	}
	return nil
}

// loss resolves a loss's x, target (unless hinge), loss and grad buffers
// (backend.LossArgs) and brings x and target to one layout.
func (b *Backend) loss(op string, x, target, loss, grad backend.Buffer) (xb, tb, lb, gb *buffer, l layout, err error) {
	if xb, tb, lb, gb, err = backend.LossArgs[*buffer](b, "cpu", op, x, target, loss, grad); err != nil {
		return
	}
	l, err = b.agree(xb, tb)
	return
}

// BCEWithLogits implements backend.Backend.
func (b *Backend) BCEWithLogits(x, target, loss, grad backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	xb, tb, lb, gb, l, err := b.loss("bce with logits", x, target, loss, grad)
	if err != nil {
		return err
	}
	loopBCE(b.nthr, xb.p, tb.p, xb.n, lb.p, gb.p)
	lb.wrote(plain)
	gb.wrote(l)
	return nil
}

// MSE implements backend.Backend.
func (b *Backend) MSE(x, target, loss, grad backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	xb, tb, lb, gb, l, err := b.loss("mse", x, target, loss, grad)
	if err != nil {
		return err
	}
	loopMSE(b.nthr, xb.p, tb.p, xb.n, lb.p, gb.p)
	lb.wrote(plain)
	gb.wrote(l)
	return nil
}

// Hinge implements backend.Backend.
func (b *Backend) Hinge(x backend.Buffer, sign float32, loss, grad backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := rule(backend.CheckHinge(sign)); err != nil {
		return err
	}
	xb, _, lb, gb, l, err := b.loss("hinge", x, nil, loss, grad)
	if err != nil {
		return err
	}
	loopHinge(b.nthr, xb.p, sign, xb.n, lb.p, gb.p)
	lb.wrote(plain)
	gb.wrote(l)
	return nil
}

// AdamUpdate implements backend.Backend.
func (b *Backend) AdamUpdate(a backend.Adam, param, grad, m, v backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if err := b.refuse("adam update"); err != nil {
		return err
	}
	pb, gb, mb, vb, err := backend.AdamArgs[*buffer](b, "cpu", a, param, grad, m, v)
	if err != nil {
		return err
	}
	l, err := b.agree(pb, gb, mb, vb)
	if err != nil {
		return err
	}
	loopAdam(b.nthr, a.LR, a.Beta1, a.Beta2, a.Epsilon, a.Step, pb.p, gb.p, mb.p, vb.p, pb.n)
	pb.wrote(l)
	mb.wrote(l)
	vb.wrote(l)
	return nil
}
