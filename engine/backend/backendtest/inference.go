package backendtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
)

// InferenceParity checks an inference-only, reduced-precision backend (such as
// cpu-bf16) against oracle: every forward op on the shapes Parity uses, and
// chains in which each op reads the output of a convolution, where such a
// backend keeps its own number format. o.Tol is required: it is the bound for
// the reduced precision (bfloat16 has an 8-bit significand, a relative rounding
// error of 2⁻⁹ per value). It also checks that every training op fails with an
// error that wraps trainErr, on both fresh and convolution-written buffers.
func InferenceParity(t *testing.T, oracle, candidate backend.Backend, o Options, trainErr error) {
	t.Helper()
	if o.Tol == 0 {
		t.Fatal("backendtest: InferenceParity needs Options.Tol")
	}
	if o.Seed == 0 {
		o.Seed = 0x6869_7265_7a
	}
	e := &env{bk: [2]backend.Backend{oracle, candidate}, rng: rand.New(rand.NewPCG(o.Seed, 2)), opt: o}
	e.groups(t, []group{
		{"memory", e.memory}, {"matmul", e.matmul}, {"conv2d", e.convForward}, {"chains", e.chains},
		{"refuses_training", func(t *testing.T) { e.refusesTraining(t, trainErr) }},
		{"bad_input", func(t *testing.T) { badInput(t, e, candidate, oracle) }},
	})
}

func (e *env) convForward(t *testing.T) {
	shapes := append(ConvShapes(e.opt.Short),
		// Output widths a bfloat16 backend may store differently (multiples of 16).
		backend.Conv2D{In: backend.Dims{N: 2, C: 3, H: 11, W: 9}, Out: 16, KH: 9, KW: 9, Stride: 1, Pad: 4},
		backend.Conv2D{In: backend.Dims{N: 1, C: 32, H: 7, W: 10}, Out: 48, KH: 3, KW: 3, Stride: 2, Pad: 1},
	)
	for _, c := range shapes {
		name := fmt.Sprintf("in %v out %d k %d×%d s %d p %d", c.In, c.Out, c.KH, c.KW, c.Stride, c.Pad)
		x, w, bias := e.rand(t, c.In.Size()), e.rand(t, c.WeightLen()), e.rand(t, c.Out)
		y := e.rand(t, c.OutDims().Size())
		e.run(t, name+" forward", func(b backend.Backend, s int) error { return b.Conv2DForward(c, x[s], w[s], bias[s], y[s]) }, y)
		e.run(t, name+" forward no bias", func(b backend.Backend, s int) error { return b.Conv2DForward(c, x[s], w[s], nil, y[s]) }, y)
	}
}

// convOut runs a 'same' 3×3 convolution from d.C−ish input to d (d.C output
// channels) and returns its output: on a reduced-precision backend, a buffer in
// the backend's own format (bfloat16 for 16 channels).
func (e *env) convOut(t *testing.T, d backend.Dims) pair {
	t.Helper()
	c := backend.Conv2D{In: backend.Dims{N: d.N, C: 5, H: d.H, W: d.W}, Out: d.C, KH: 3, KW: 3, Stride: 1, Pad: 1}
	x, w, bias, y := e.rand(t, c.In.Size()), e.rand(t, c.WeightLen()), e.rand(t, c.Out), e.rand(t, d.Size())
	e.run(t, fmt.Sprintf("conv to %v", d), func(b backend.Backend, s int) error { return b.Conv2DForward(c, x[s], w[s], bias[s], y[s]) }, y)
	return y
}

// chains feeds a convolution's output into every op that can read an
// activation, on widths the backend stores in its own format (16) and in fp32 (3).
func (e *env) chains(t *testing.T) {
	for _, d := range []backend.Dims{{N: 2, C: 16, H: 6, W: 10}, {N: 1, C: 3, H: 8, W: 6}, {N: 3, C: 32, H: 4, W: 4}} {
		t.Run(d.String(), func(t *testing.T) {
			n := d.Size()
			for _, f := range []backend.Activation{backend.Identity, backend.ReLU, backend.LeakyReLU, backend.Tanh, backend.Sigmoid} {
				x, y := e.convOut(t, d), e.rand(t, n)
				e.run(t, fmt.Sprintf("%v", f), func(b backend.Backend, s int) error { return b.Activate(f, 0.2, x[s], y[s]) }, y)
				e.run(t, fmt.Sprintf("%v in place", f), func(b backend.Backend, s int) error { return b.Activate(f, 0.2, x[s], x[s]) }, x)
			}
			// conv → ReLU → conv: the serving path of every upscaler.
			x := e.convOut(t, d)
			e.run(t, "relu", func(b backend.Backend, s int) error { return b.Activate(backend.ReLU, 0, x[s], x[s]) }, x)
			c2 := backend.Conv2D{In: d, Out: 3, KH: 5, KW: 5, Stride: 1, Pad: 2}
			w2, y2 := e.rand(t, c2.WeightLen()), e.rand(t, c2.OutDims().Size())
			e.run(t, "conv after relu", func(b backend.Backend, s int) error { return b.Conv2DForward(c2, x[s], w2[s], nil, y2[s]) }, y2)

			x = e.convOut(t, d)
			up := e.rand(t, 4*n)
			e.run(t, "upsample", func(b backend.Backend, s int) error { return b.Upsample2x(d, x[s], up[s]) }, up)
			big := backend.Dims{N: d.N, C: d.C, H: 2 * d.H, W: 2 * d.W}
			c3 := backend.Conv2D{In: big, Out: 16, KH: 3, KW: 3, Stride: 1, Pad: 1}
			w3, y3 := e.rand(t, c3.WeightLen()), e.rand(t, c3.OutDims().Size())
			e.run(t, "conv after upsample", func(b backend.Backend, s int) error { return b.Conv2DForward(c3, up[s], w3[s], nil, y3[s]) }, y3)
			pool := e.rand(t, n/4)
			e.run(t, "maxpool", func(b backend.Backend, s int) error { return b.MaxPool2(d, x[s], pool[s]) }, pool)

			// Inputs the ops share, the same on both sides.
			vecN, vecC, gamma, beta, mean := e.rand(t, n), e.rand(t, d.C), e.rand(t, d.C), e.rand(t, d.C), e.rand(t, d.C)
			variance, mat := e.buf(t, e.uniform(d.C, 0.5, 1.5)), e.rand(t, 7*n/d.N)
			type op struct {
				name string
				out  func(x pair) pair // the compared output: a fresh buffer, or x itself
				f    func(b backend.Backend, s int, x, out pair) error
			}
			fresh := func(m int) func(pair) pair { return func(pair) pair { return e.rand(t, m) } }
			self := func(x pair) pair { return x }
			ops := []op{
				{"copy", fresh(n), func(b backend.Backend, s int, x, o pair) error { return b.Copy(o[s], x[s]) }},
				{"axpby", fresh(n), func(b backend.Backend, s int, x, o pair) error { return b.Axpby(0.5, x[s], -1, o[s]) }},
				{"axpby beta=0", fresh(n), func(b backend.Backend, s int, x, o pair) error { return b.Axpby(2, x[s], 0, o[s]) }},
				{"axpby into it", self, func(b backend.Backend, s int, x, o pair) error { return b.Axpby(1, vecN[s], 0.5, x[s]) }},
				{"mul", fresh(n), func(b backend.Backend, s int, x, o pair) error { return b.Mul(x[s], vecN[s], o[s]) }},
				{"mul in place", self, func(b backend.Backend, s int, x, o pair) error { return b.Mul(x[s], x[s], x[s]) }},
				{"clamp", fresh(n), func(b backend.Backend, s int, x, o pair) error { return b.Clamp(x[s], o[s], -0.3, 0.6) }},
				{"clamp in place", self, func(b backend.Backend, s int, x, o pair) error { return b.Clamp(x[s], x[s], -0.3, 0.6) }},
				{"sum", fresh(1), func(b backend.Backend, s int, x, o pair) error { return b.Sum(x[s], o[s]) }},
				{"add bias", self, func(b backend.Backend, s int, x, o pair) error { return b.AddBias(d, x[s], vecC[s]) }},
				{"batchnorm infer", fresh(n), func(b backend.Backend, s int, x, o pair) error {
					return b.BatchNormInfer(backend.BatchNorm{Dims: d, Epsilon: 1e-5}, x[s], gamma[s], beta[s], mean[s], variance[s], o[s])
				}},
				{"matmul", fresh(d.N * 7), func(b backend.Backend, s int, x, o pair) error {
					return b.MatMul(backend.Gemm{TransB: true, M: d.N, N: 7, K: n / d.N, Alpha: 1}, x[s], mat[s], o[s])
				}},
				{"mse", fresh(1), func(b backend.Backend, s int, x, o pair) error {
					return b.MSE(x[s], vecN[s], o[s], e.scratch(t, s, n))
				}},
			}
			if d.C%4 == 0 {
				ops = append(ops, op{"pixel shuffle", fresh(n), func(b backend.Backend, s int, x, o pair) error { return b.PixelShuffle(d, 2, x[s], o[s]) }})
			}
			for _, op := range ops {
				x := e.convOut(t, d)
				out := op.out(x)
				e.run(t, op.name, func(b backend.Backend, s int) error { return op.f(b, s, x, out) }, out)
			}
		})
	}
}

// scratch is an output buffer of n values on side s that is not compared.
func (e *env) scratch(t *testing.T, s, n int) backend.Buffer {
	t.Helper()
	x, err := e.bk[s].Alloc(n)
	if err != nil {
		t.Fatalf("%s: alloc %d: %v", e.bk[s].Name(), n, err)
	}
	t.Cleanup(func() { e.bk[s].Free(x) })
	return x
}

// refusesTraining calls every training op on the candidate and wants an error
// wrapping trainErr from each.
func (e *env) refusesTraining(t *testing.T, trainErr error) {
	b := e.bk[cand]
	d := backend.Dims{N: 2, C: 16, H: 4, W: 4}
	c := backend.Conv2D{In: d, Out: 16, KH: 3, KW: 3, Stride: 1, Pad: 1}
	alloc := func(n int) backend.Buffer { return e.scratch(t, cand, n) }
	x, w, y := alloc(d.Size()), alloc(c.WeightLen()), alloc(d.Size())
	if err := b.Conv2DForward(c, x, w, nil, y); err != nil { // y in the backend's own format
		t.Fatalf("conv forward: %v", err)
	}
	ch := func() backend.Buffer { return alloc(d.C) }
	bn := backend.BatchNorm{Dims: d, Epsilon: 1e-5, Momentum: 0.1}
	ops := map[string]func() error{
		"conv2d backward data":    func() error { return b.Conv2DBackwardData(c, y, w, alloc(d.Size())) },
		"conv2d backward weights": func() error { return b.Conv2DBackwardWeights(c, x, y, alloc(c.WeightLen()), ch()) },
		"activate backward":       func() error { return b.ActivateBackward(backend.ReLU, 0, y, y, y, alloc(d.Size())) },
		"bias grad":               func() error { return b.BiasGrad(d, y, ch()) },
		"upsample2x backward":     func() error { return b.Upsample2xBackward(backend.Dims{N: 2, C: 16, H: 2, W: 2}, y, alloc(d.Size()/4)) },
		"maxpool2 backward":       func() error { return b.MaxPool2Backward(d, y, alloc(d.Size()/4), alloc(d.Size())) },
		"batchnorm train": func() error {
			return b.BatchNormTrain(bn, y, ch(), ch(), alloc(d.Size()), ch(), ch(), ch(), ch())
		},
		"batchnorm backward": func() error {
			return b.BatchNormBackward(bn, y, y, ch(), ch(), ch(), alloc(d.Size()), ch(), ch())
		},
		"adam": func() error {
			return b.AdamUpdate(backend.Adam{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, Step: 1}, w, alloc(c.WeightLen()), alloc(c.WeightLen()), alloc(c.WeightLen()))
		},
	}
	for name, f := range ops {
		if err := safe(f); err == nil || !errors.Is(err, trainErr) {
			t.Errorf("%s on %s: error %v, want one wrapping %q", name, b.Name(), err, trainErr)
		}
	}
}
