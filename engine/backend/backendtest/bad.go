package backendtest

import (
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
)

// alien is a Buffer no backend made.
type alien struct{ n int }

func (a alien) Len() int { return a.n }

// badInput checks that b rejects bad arguments with an error. other is another
// backend whose buffers b must refuse. A case whose error wraps
// backend.ErrNotImplemented did not check the arguments: it is recorded in e
// for the group's skip.
func badInput(t *testing.T, e *env, b, other backend.Backend) {
	alloc := func(n int) backend.Buffer {
		x, err := b.Alloc(n)
		if err != nil {
			t.Fatalf("alloc %d: %v", n, err)
		}
		t.Cleanup(func() { b.Free(x) })
		return x
	}
	foreign, err := other.Alloc(8)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Free(foreign)
	freed := alloc(8)
	b.Free(freed)
	b.Free(freed) // freeing twice is a no-op
	b.Free(nil)

	x8, y8, one := alloc(8), alloc(8), alloc(1)
	conv := backend.Conv2D{In: backend.Dims{N: 2, C: 3, H: 5, W: 5}, Out: 4, KH: 3, KW: 3, Stride: 1, Pad: 1}
	cx, cw, cy, cb := alloc(conv.In.Size()), alloc(conv.WeightLen()), alloc(conv.OutDims().Size()), alloc(conv.Out)
	d := backend.Dims{N: 1, C: 2, H: 2, W: 2} // 8 values
	bn := backend.BatchNorm{Dims: d, Epsilon: 1e-5, Momentum: 0.1}
	c2 := alloc(2)
	adam := backend.Adam{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, Step: 1}

	// wrap is a shape whose element count overflows int64 back to exactly 8, so
	// it passes a plain length check against an 8-value buffer; C code given
	// its dimensions would run far past the buffer.
	wrap := backend.Dims{N: 1<<62 + 2, C: 4, H: 1, W: 1}
	if wrap.Size() != 8 {
		t.Fatalf("wrap.Size() = %d, want 8 (int64 overflow)", wrap.Size())
	}
	cases := []struct {
		name string
		call func() error
	}{
		{"alloc 0", func() error { _, err := b.Alloc(0); return err }},
		{"alloc -1", func() error { _, err := b.Alloc(-1); return err }},
		{"upload short", func() error { return b.Upload(x8, make([]float32, 7)) }},
		{"upload nil buffer", func() error { return b.Upload(nil, make([]float32, 8)) }},
		{"download long", func() error { return b.Download(make([]float32, 9), x8) }},
		{"download freed", func() error { return b.Download(make([]float32, 8), freed) }},
		{"fill nil", func() error { return b.Fill(nil, 1) }},
		{"fill alien", func() error { return b.Fill(alien{8}, 1) }},
		{"fill foreign", func() error { return b.Fill(foreign, 1) }},
		{"fill freed", func() error { return b.Fill(freed, 1) }},
		{"copy lengths", func() error { return b.Copy(one, x8) }},
		{"copy foreign", func() error { return b.Copy(x8, foreign) }},
		{"axpby lengths", func() error { return b.Axpby(1, x8, 1, one) }},
		{"mul nil", func() error { return b.Mul(x8, nil, y8) }},
		{"mul lengths", func() error { return b.Mul(x8, y8, one) }},
		{"clamp alien", func() error { return b.Clamp(alien{8}, y8, 0, 1) }},
		{"sum out length", func() error { return b.Sum(x8, y8) }},
		{"sum freed", func() error { return b.Sum(freed, one) }},
		{"activate lengths", func() error { return b.Activate(backend.ReLU, 0, x8, one) }},
		{"activate unknown", func() error { return b.Activate(backend.Activation(99), 0, x8, y8) }},
		{"activate backward nil", func() error { return b.ActivateBackward(backend.ReLU, 0, nil, y8, x8, y8) }},
		{"matmul zero", func() error { return b.MatMul(backend.Gemm{M: 0, N: 2, K: 4, Alpha: 1}, x8, x8, x8) }},
		{"matmul lengths", func() error { return b.MatMul(backend.Gemm{M: 2, N: 2, K: 4, Alpha: 1}, x8, y8, one) }},
		{"matmul foreign", func() error { return b.MatMul(backend.Gemm{M: 2, N: 2, K: 4, Alpha: 1}, foreign, y8, c2) }},
		{"add bias zero dims", func() error { return b.AddBias(backend.Dims{N: 0, C: 2, H: 2, W: 2}, x8, c2) }},
		{"add bias lengths", func() error { return b.AddBias(d, x8, one) }},
		{"add bias overflowing shape", func() error { return b.AddBias(wrap, x8, alloc(4)) }},
		{"upsample overflowing shape", func() error { return b.Upsample2x(wrap, x8, alloc(32)) }},
		{"maxpool overflowing shape", func() error {
			w := wrap
			w.H, w.W = 2, 2
			return b.MaxPool2(w, x8, y8)
		}},
		{"batchnorm overflowing shape", func() error {
			z := bn
			z.Dims = wrap
			return b.BatchNormInfer(z, x8, alloc(4), alloc(4), alloc(4), alloc(4), y8)
		}},
		{"conv overflowing shape", func() error {
			c := conv
			c.In = wrap
			return b.Conv2DForward(c, x8, cw, cb, cy)
		}},
		{"conv huge kernel", func() error {
			c := conv
			c.KH, c.KW, c.Pad = 1<<40, 1<<40, 1<<40-1
			return b.Conv2DForward(c, cx, cw, cb, cy)
		}},
		{"matmul overflowing shape", func() error { return b.MatMul(backend.Gemm{M: 1<<62 + 2, N: 1, K: 4, Alpha: 1}, x8, alloc(4), x8) }},
		{"bias grad lengths", func() error { return b.BiasGrad(d, one, c2) }},
		{"conv zero batch", func() error {
			c := conv
			c.In.N = 0
			return b.Conv2DForward(c, cx, cw, cb, cy)
		}},
		{"conv zero stride", func() error {
			c := conv
			c.Stride = 0
			return b.Conv2DForward(c, cx, cw, cb, cy)
		}},
		{"conv kernel larger than input", func() error {
			c := conv
			c.KH, c.KW, c.Pad = 9, 9, 0
			return b.Conv2DForward(c, cx, cw, cb, cy)
		}},
		{"conv x length", func() error { return b.Conv2DForward(conv, x8, cw, cb, cy) }},
		{"conv w length", func() error { return b.Conv2DForward(conv, cx, x8, cb, cy) }},
		{"conv bias length", func() error { return b.Conv2DForward(conv, cx, cw, one, cy) }},
		{"conv y length", func() error { return b.Conv2DForward(conv, cx, cw, cb, cx) }},
		{"conv nil w", func() error { return b.Conv2DForward(conv, cx, nil, cb, cy) }},
		{"conv foreign x", func() error { return b.Conv2DForward(conv, foreign, cw, cb, cy) }},
		{"conv backward data dx length", func() error { return b.Conv2DBackwardData(conv, cy, cw, cy) }},
		{"conv backward weights dw length", func() error { return b.Conv2DBackwardWeights(conv, cx, cy, cx, cb) }},
		{"conv backward weights db length", func() error { return b.Conv2DBackwardWeights(conv, cx, cy, cw, one) }},
		{"upsample zero dims", func() error { return b.Upsample2x(backend.Dims{N: 1, C: 0, H: 1, W: 1}, x8, y8) }},
		{"upsample y length", func() error { return b.Upsample2x(d, x8, y8) }},
		{"upsample backward dx length", func() error { return b.Upsample2xBackward(d, cx, one) }},
		{"maxpool odd", func() error { return b.MaxPool2(backend.Dims{N: 1, C: 1, H: 3, W: 2}, alloc(6), alloc(1)) }},
		{"maxpool y length", func() error { return b.MaxPool2(d, x8, y8) }},
		{"maxpool backward dy length", func() error { return b.MaxPool2Backward(d, x8, y8, alloc(8)) }},
		{"pixel shuffle channels", func() error { return b.PixelShuffle(backend.Dims{N: 1, C: 2, H: 2, W: 2}, 2, x8, y8) }},
		{"pixel shuffle factor 0", func() error { return b.PixelShuffle(d, 0, x8, y8) }},
		{"pixel unshuffle size", func() error { return b.PixelUnshuffle(backend.Dims{N: 1, C: 2, H: 2, W: 2}, 3, x8, y8) }},
		{"batchnorm train lengths", func() error { return b.BatchNormTrain(bn, x8, one, c2, y8, c2, c2, c2, c2) }},
		{"batchnorm train nil", func() error { return b.BatchNormTrain(bn, x8, c2, c2, y8, nil, c2, c2, c2) }},
		{"batchnorm infer lengths", func() error { return b.BatchNormInfer(bn, x8, c2, c2, c2, c2, one) }},
		{"batchnorm backward lengths", func() error { return b.BatchNormBackward(bn, x8, one, c2, c2, c2, y8, c2, c2) }},
		{"batchnorm zero dims", func() error {
			z := bn
			z.Dims.H = 0
			return b.BatchNormInfer(z, x8, c2, c2, c2, c2, y8)
		}},
		{"bce lengths", func() error { return b.BCEWithLogits(x8, one, one, y8) }},
		{"bce loss length", func() error { return b.BCEWithLogits(x8, y8, c2, alloc(8)) }},
		{"mse nil target", func() error { return b.MSE(x8, nil, one, y8) }},
		{"hinge grad length", func() error { return b.Hinge(x8, 1, one, one) }},
		{"adam lengths", func() error { return b.AdamUpdate(adam, x8, y8, one, alloc(8)) }},
		{"adam step 0", func() error { a := adam; a.Step = 0; return b.AdamUpdate(a, x8, y8, alloc(8), alloc(8)) }},
		{"adam freed", func() error { return b.AdamUpdate(adam, x8, y8, freed, alloc(8)) }},
	}
	for _, c := range cases {
		if err := safe(c.call); e.skip(c.name, err) {
			continue
		} else if err == nil {
			t.Errorf("%s: no error", c.name)
		} else if len(err.Error()) >= 7 && err.Error()[:7] == "panic: " {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
