//go:build cuda || cudaemu

package cuda

import (
	"math"

	"github.com/hirez-ml/hirez/engine/backend"
)

// Fill implements backend.Backend.
func (b *Backend) Fill(x backend.Buffer, v float32) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, err := b.get("fill", "x", x, -1)
	if err != nil {
		return err
	}
	return b.each("fill", "hz_fill", xb.n, dev(xb.p), f32(v), i64(xb.n))
}

// Copy implements backend.Backend: a device-to-device copy on the stream.
func (b *Backend) Copy(dst, src backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	s, err := b.get("copy", "src", src, -1)
	if err != nil {
		return err
	}
	d, err := b.get("copy", "dst", dst, s.n)
	if err != nil {
		return err
	}
	return b.copyAsync("copy", d, s)
}

// Axpby implements backend.Backend.
func (b *Backend) Axpby(alpha float32, x backend.Buffer, beta float32, y backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, err := b.get("axpby", "x", x, -1)
	if err != nil {
		return err
	}
	yb, err := b.get("axpby", "y", y, xb.n)
	if err != nil {
		return err
	}
	return b.each("axpby", "hz_axpby", xb.n, f32(alpha), dev(xb.p), f32(beta), dev(yb.p), i64(xb.n))
}

// Mul implements backend.Backend.
func (b *Backend) Mul(x, y, out backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
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
	return b.each("mul", "hz_mul", xb.n, dev(xb.p), dev(yb.p), dev(ob.p), i64(xb.n))
}

// Clamp implements backend.Backend.
func (b *Backend) Clamp(x, y backend.Buffer, lo, hi float32) error {
	if err := rule(backend.CheckClamp(lo, hi)); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, err := b.get("clamp", "x", x, -1)
	if err != nil {
		return err
	}
	yb, err := b.get("clamp", "y", y, xb.n)
	if err != nil {
		return err
	}
	return b.each("clamp", "hz_clamp", xb.n, dev(xb.p), dev(yb.p), f32(lo), f32(hi), i64(xb.n))
}

// Sum implements backend.Backend: one block, double accumulators.
func (b *Backend) Sum(x, out backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, err := b.get("sum", "x", x, -1)
	if err != nil {
		return err
	}
	ob, err := b.get("sum", "out", out, 1)
	if err != nil {
		return err
	}
	if err := noAlias("sum", ob, "out", xb, "x"); err != nil {
		return err
	}
	return b.reduce("sum", "hz_sum", 1, dev(xb.p), dev(ob.p), i64(xb.n))
}

// Activate implements backend.Backend.
func (b *Backend) Activate(f backend.Activation, alpha float32, x, y backend.Buffer) error {
	if err := rule(backend.CheckActivation("activate", f)); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, err := b.get("activate", "x", x, -1)
	if err != nil {
		return err
	}
	yb, err := b.get("activate", "y", y, xb.n)
	if err != nil {
		return err
	}
	if f == backend.Identity {
		return b.copyAsync("activate", yb, xb)
	}
	return b.each("activate", "hz_activate", xb.n, i64(int(f)), f32(alpha), dev(xb.p), dev(yb.p), i64(xb.n))
}

// ActivateBackward implements backend.Backend.
func (b *Backend) ActivateBackward(f backend.Activation, alpha float32, x, y, dy, dx backend.Buffer) error {
	const op = "activate backward"
	if err := rule(backend.CheckActivation(op, f)); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	dyb, err := b.get(op, "dy", dy, -1)
	if err != nil {
		return err
	}
	dxb, err := b.get(op, "dx", dx, dyb.n)
	if err != nil {
		return err
	}
	var in *buffer
	switch f {
	case backend.Identity:
		return b.copyAsync(op, dxb, dyb)
	case backend.ReLU, backend.LeakyReLU:
		in, err = b.get(op, "x", x, dyb.n)
	default:
		in, err = b.get(op, "y", y, dyb.n)
	}
	if err != nil {
		return err
	}
	if err := noAlias(op, dxb, "dx", in, "x/y"); err != nil {
		return err
	}
	return b.each(op, "hz_activate_backward", dyb.n, i64(int(f)), f32(alpha), dev(in.p), dev(dyb.p), dev(dxb.p), i64(dyb.n))
}

// AddBias implements backend.Backend.
func (b *Backend) AddBias(d backend.Dims, x, bias backend.Buffer) error {
	if err := rule(backend.CheckDims("add bias", d)); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, err := b.get("add bias", "x", x, d.Size())
	if err != nil {
		return err
	}
	bb, err := b.get("add bias", "bias", bias, d.C)
	if err != nil {
		return err
	}
	return b.addBias(d, xb, bb)
}

func (b *Backend) addBias(d backend.Dims, x, bias *buffer) error {
	return b.each("add bias", "hz_add_bias", d.Size(), dev(x.p), dev(bias.p), i64(d.C), i64(d.H*d.W), i64(d.Size()))
}

// BiasGrad implements backend.Backend: one block per channel.
func (b *Backend) BiasGrad(d backend.Dims, dy, db backend.Buffer) error {
	if err := rule(backend.CheckDims("bias grad", d)); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	dyb, err := b.get("bias grad", "dy", dy, d.Size())
	if err != nil {
		return err
	}
	dbb, err := b.get("bias grad", "db", db, d.C)
	if err != nil {
		return err
	}
	if err := noAlias("bias grad", dbb, "db", dyb, "dy"); err != nil {
		return err
	}
	return b.biasGrad(d, dyb, dbb)
}

func (b *Backend) biasGrad(d backend.Dims, dy, db *buffer) error {
	return b.reduce("bias grad", "hz_bias_grad", d.C, dev(dy.p), dev(db.p), i64(d.N), i64(d.C), i64(d.H*d.W))
}

// dimsArgs checks d with check (one of package backend's rules, which also
// keep every index a kernel computes within 32 bits) and returns x (d.Size()
// values) and y (ny values), which must not alias.
func (b *Backend) dimsArgs(op string, check error, d backend.Dims, x backend.Buffer, xName string, y backend.Buffer, yName string, ny int) (*buffer, *buffer, error) {
	if err := rule(check); err != nil {
		return nil, nil, err
	}
	xb, err := b.get(op, xName, x, d.Size())
	if err != nil {
		return nil, nil, err
	}
	yb, err := b.get(op, yName, y, ny)
	if err != nil {
		return nil, nil, err
	}
	if err := noAlias(op, yb, yName, xb, xName); err != nil {
		return nil, nil, err
	}
	return xb, yb, nil
}

// Upsample2x implements backend.Backend.
func (b *Backend) Upsample2x(d backend.Dims, x, y backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, yb, err := b.dimsArgs("upsample2x", backend.CheckUpsample2x("upsample2x", d), d, x, "x", y, "y", 4*d.Size())
	if err != nil {
		return err
	}
	return b.each("upsample2x", "hz_upsample2x", yb.n, dev(xb.p), dev(yb.p), i64(d.H), i64(d.W), i64(yb.n))
}

// Upsample2xBackward implements backend.Backend.
func (b *Backend) Upsample2xBackward(d backend.Dims, dy, dx backend.Buffer) error {
	const op = "upsample2x backward"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	dxb, dyb, err := b.dimsArgs(op, backend.CheckUpsample2x(op, d), d, dx, "dx", dy, "dy", 4*d.Size())
	if err != nil {
		return err
	}
	return b.each(op, "hz_upsample2x_backward", dxb.n, dev(dyb.p), dev(dxb.p), i64(d.H), i64(d.W), i64(dxb.n))
}

// MaxPool2 implements backend.Backend.
func (b *Backend) MaxPool2(d backend.Dims, x, y backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, yb, err := b.dimsArgs("maxpool2", backend.CheckMaxPool2("maxpool2", d), d, x, "x", y, "y", d.Size()/4)
	if err != nil {
		return err
	}
	return b.each("maxpool2", "hz_maxpool2", yb.n, dev(xb.p), dev(yb.p), i64(d.H), i64(d.W), i64(yb.n))
}

// MaxPool2Backward implements backend.Backend.
func (b *Backend) MaxPool2Backward(d backend.Dims, x, dy, dx backend.Buffer) error {
	const op = "maxpool2 backward"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, dxb, err := b.dimsArgs(op, backend.CheckMaxPool2(op, d), d, x, "x", dx, "dx", d.Size())
	if err != nil {
		return err
	}
	dyb, err := b.get(op, "dy", dy, d.Size()/4)
	if err != nil {
		return err
	}
	if err := noAlias(op, dxb, "dx", dyb, "dy"); err != nil {
		return err
	}
	return b.each(op, "hz_maxpool2_backward", dyb.n, dev(xb.p), dev(dyb.p), dev(dxb.p), i64(d.H), i64(d.W), i64(dyb.n))
}

// PixelShuffle implements backend.Backend.
func (b *Backend) PixelShuffle(d backend.Dims, r int, x, y backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, yb, err := b.dimsArgs("pixel shuffle", backend.CheckPixelShuffle(d, r), d, x, "x", y, "y", d.Size())
	if err != nil {
		return err
	}
	return b.each("pixel shuffle", "hz_pixel_shuffle", yb.n,
		dev(xb.p), dev(yb.p), i64(d.C/(r*r)), i64(d.H), i64(d.W), i64(r), 0, i64(yb.n))
}

// PixelUnshuffle implements backend.Backend; d is the shuffled (wide) shape.
func (b *Backend) PixelUnshuffle(d backend.Dims, r int, x, y backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, yb, err := b.dimsArgs("pixel unshuffle", backend.CheckPixelUnshuffle(d, r), d, x, "x", y, "y", d.Size())
	if err != nil {
		return err
	}
	return b.each("pixel unshuffle", "hz_pixel_shuffle", xb.n,
		dev(xb.p), dev(yb.p), i64(d.C), i64(d.H/r), i64(d.W/r), i64(r), 1, i64(xb.n))
}

// bnArgs checks a batch norm (BatchNorm.Validate) and resolves its buffers:
// the first two hold b.Dims.Size() values, the rest b.Dims.C.
func (b *Backend) bnArgs(op string, bn backend.BatchNorm, names []string, bufs ...backend.Buffer) ([]*buffer, error) {
	if err := rule(bn.Validate(op, op == "batchnorm train")); err != nil {
		return nil, err
	}
	out := make([]*buffer, len(bufs))
	for i, x := range bufs {
		n := bn.Dims.C
		if i < 2 {
			n = bn.Dims.Size()
		}
		xb, err := b.get(op, names[i], x, n)
		if err != nil {
			return nil, err
		}
		out[i] = xb
	}
	return out, nil
}

// BatchNormTrain implements backend.Backend: one block per channel.
func (b *Backend) BatchNormTrain(bn backend.BatchNorm, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar backend.Buffer) error {
	const op = "batchnorm train"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	s, err := b.bnArgs(op, bn, []string{"x", "y", "gamma", "beta", "save_mean", "save_inv_std", "running_mean", "running_var"},
		x, y, gamma, beta, saveMean, saveInvStd, runMean, runVar)
	if err != nil {
		return err
	}
	if err := noAlias(op, s[1], "y", s[0], "x"); err != nil {
		return err
	}
	d := bn.Dims
	return b.reduce(op, "hz_batchnorm_train", d.C, dev(s[0].p), dev(s[2].p), dev(s[3].p), dev(s[1].p),
		dev(s[4].p), dev(s[5].p), dev(s[6].p), dev(s[7].p), i64(d.N), i64(d.C), i64(d.H*d.W), f32(bn.Epsilon), f32(bn.Momentum))
}

// BatchNormInfer implements backend.Backend.
func (b *Backend) BatchNormInfer(bn backend.BatchNorm, x, gamma, beta, runMean, runVar, y backend.Buffer) error {
	const op = "batchnorm infer"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	s, err := b.bnArgs(op, bn, []string{"x", "y", "gamma", "beta", "running_mean", "running_var"},
		x, y, gamma, beta, runMean, runVar)
	if err != nil {
		return err
	}
	if err := noAlias(op, s[1], "y", s[0], "x"); err != nil {
		return err
	}
	d := bn.Dims
	return b.each(op, "hz_batchnorm_infer", d.Size(), dev(s[0].p), dev(s[2].p), dev(s[3].p), dev(s[4].p), dev(s[5].p), dev(s[1].p),
		i64(d.C), i64(d.H*d.W), f32(bn.Epsilon), i64(d.Size()))
}

// BatchNormBackward implements backend.Backend: one block per channel.
func (b *Backend) BatchNormBackward(bn backend.BatchNorm, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta backend.Buffer) error {
	const op = "batchnorm backward"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	s, err := b.bnArgs(op, bn, []string{"x", "dy", "gamma", "save_mean", "save_inv_std", "dgamma", "dbeta"},
		x, dy, gamma, saveMean, saveInvStd, dgamma, dbeta)
	if err != nil {
		return err
	}
	dxb, err := b.get(op, "dx", dx, bn.Dims.Size())
	if err != nil {
		return err
	}
	if err := noAlias(op, dxb, "dx", s[0], "x"); err != nil {
		return err
	}
	if err := noAlias(op, dxb, "dx", s[1], "dy"); err != nil {
		return err
	}
	d := bn.Dims
	return b.reduce(op, "hz_batchnorm_backward", d.C, dev(s[0].p), dev(s[1].p), dev(s[2].p), dev(s[3].p), dev(s[4].p),
		dev(dxb.p), dev(s[5].p), dev(s[6].p), i64(d.N), i64(d.C), i64(d.H*d.W))
}

// Loss kinds of hz_loss.
const (
	lossBCE = iota
	lossMSE
	lossHinge
)

// loss checks and queues one loss: x and grad (and target unless hinge) of
// equal length, loss of one value, no output aliasing an input.
func (b *Backend) loss(op string, kind int, x, target backend.Buffer, sign float32, loss, grad backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, tb, lb, gb, err := backend.LossArgs[*buffer](b, "cuda", op, x, target, loss, grad)
	if err != nil {
		return err
	}
	if tb == nil {
		tb = xb // unused by hinge; any valid address
	}
	return b.reduce(op, "hz_loss", 1, i64(kind), dev(xb.p), dev(tb.p), f32(sign), dev(lb.p), dev(gb.p), i64(xb.n))
}

// BCEWithLogits implements backend.Backend.
func (b *Backend) BCEWithLogits(x, target, loss, grad backend.Buffer) error {
	return b.loss("bce with logits", lossBCE, x, target, 0, loss, grad)
}

// MSE implements backend.Backend.
func (b *Backend) MSE(x, target, loss, grad backend.Buffer) error {
	return b.loss("mse", lossMSE, x, target, 0, loss, grad)
}

// Hinge implements backend.Backend.
func (b *Backend) Hinge(x backend.Buffer, sign float32, loss, grad backend.Buffer) error {
	if err := rule(backend.CheckHinge(sign)); err != nil {
		return err
	}
	return b.loss("hinge", lossHinge, x, nil, sign, loss, grad)
}

// AdamUpdate implements backend.Backend. The bias corrections are computed
// here in float64, as ref does.
func (b *Backend) AdamUpdate(a backend.Adam, param, grad, m, v backend.Buffer) error {
	const op = "adam update"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	pb, gb, mb, vb, err := backend.AdamArgs[*buffer](b, "cuda", a, param, grad, m, v)
	if err != nil {
		return err
	}
	bc1 := 1 - math.Pow(float64(a.Beta1), float64(a.Step))
	bc2 := 1 - math.Pow(float64(a.Beta2), float64(a.Step))
	return b.each(op, "hz_adam", pb.n, dev(pb.p), dev(gb.p), dev(mb.p), dev(vb.p), f32(a.Beta1), f32(a.Beta2),
		f64(float64(a.LR)/bc1), f64(1/math.Sqrt(bc2)), f32(a.Epsilon), i64(pb.n))
}
