//go:build cgo

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// twin runs the same ops on the cpu backend and on ref over buffers holding the
// same values, then compares every buffer.
type twin struct {
	t    *testing.T
	cpu  *Backend
	ref  *ref.Backend
	vals [][]float32
}

func newTwin(t *testing.T) *twin {
	t.Helper()
	c, err := New(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &twin{t: t, cpu: c, ref: ref.New()}
}

// buf adds a buffer of n values drawn from [lo, hi) and returns its index.
func (tw *twin) buf(rng *rand.Rand, n int, lo, hi float32) int {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float32()
	}
	tw.vals = append(tw.vals, v)
	return len(tw.vals) - 1
}

// run executes ops on both backends and compares all buffers with tolerance tol
// relative to each buffer's largest magnitude.
func (tw *twin) run(name string, tol float64, ops func(be backend.Backend, b []backend.Buffer) error) {
	tw.t.Helper()
	got := tw.exec(tw.cpu, ops)
	want := tw.exec(tw.ref, ops)
	for i := range got {
		scale := 1e-6
		for _, w := range want[i] {
			scale = math.Max(scale, math.Abs(float64(w)))
		}
		worst, at := 0.0, 0
		for j := range got[i] {
			d := math.Abs(float64(got[i][j]) - float64(want[i][j]))
			if d > worst || math.IsNaN(d) {
				worst, at = d, j
			}
		}
		if worst/scale > tol || math.IsNaN(worst) {
			tw.t.Errorf("%s: buffer %d: |cpu−ref| = %g at %d (cpu %g ref %g), scale %g", name, i, worst, at, got[i][at], want[i][at], scale)
		}
	}
}

func (tw *twin) exec(be backend.Backend, ops func(be backend.Backend, b []backend.Buffer) error) [][]float32 {
	tw.t.Helper()
	bufs := make([]backend.Buffer, len(tw.vals))
	for i, v := range tw.vals {
		b, err := be.Alloc(len(v))
		if err != nil {
			tw.t.Fatal(err)
		}
		if err := be.Upload(b, v); err != nil {
			tw.t.Fatal(err)
		}
		bufs[i] = b
	}
	if err := ops(be, bufs); err != nil {
		tw.t.Fatalf("%s: %v", be.Name(), err)
	}
	out := make([][]float32, len(bufs))
	for i, b := range bufs {
		out[i] = make([]float32, b.Len())
		if err := be.Download(out[i], b); err != nil {
			tw.t.Fatal(err)
		}
		be.Free(b)
	}
	return out
}

var convCases = []backend.Conv2D{
	{In: backend.Dims{N: 2, C: 3, H: 13, W: 11}, Out: 5, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{In: backend.Dims{N: 1, C: 3, H: 17, W: 19}, Out: 4, KH: 9, KW: 9, Stride: 1, Pad: 4},
	{In: backend.Dims{N: 5, C: 7, H: 12, W: 9}, Out: 6, KH: 5, KW: 5, Stride: 2, Pad: 2},
	{In: backend.Dims{N: 2, C: 16, H: 8, W: 8}, Out: 32, KH: 1, KW: 1, Stride: 1, Pad: 0},
	{In: backend.Dims{N: 3, C: 5, H: 11, W: 13}, Out: 3, KH: 4, KW: 4, Stride: 2, Pad: 1},
	{In: backend.Dims{N: 1, C: 20, H: 9, W: 10}, Out: 17, KH: 7, KW: 7, Stride: 2, Pad: 3},
	{In: backend.Dims{N: 2, C: 32, H: 16, W: 16}, Out: 64, KH: 3, KW: 3, Stride: 1, Pad: 1},
}

func TestConv(t *testing.T) {
	for i, c := range convCases {
		for _, bias := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d/%v/bias=%v", i, convString(c), bias), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 1))
				tw := newTwin(t)
				od := c.OutDims()
				x := tw.buf(rng, c.In.Size(), -1, 1)
				w := tw.buf(rng, c.WeightLen(), -1, 1)
				bi := tw.buf(rng, c.Out, -1, 1)
				y := tw.buf(rng, od.Size(), -1, 1)
				dy := tw.buf(rng, od.Size(), -1, 1)
				dx := tw.buf(rng, c.In.Size(), -1, 1)
				dw := tw.buf(rng, c.WeightLen(), -1, 1)
				db := tw.buf(rng, c.Out, -1, 1)
				tw.run("conv", 1e-5, func(be backend.Backend, b []backend.Buffer) error {
					var bb, dbb backend.Buffer
					if bias {
						bb, dbb = b[bi], b[db]
					}
					if err := be.Conv2DForward(c, b[x], b[w], bb, b[y]); err != nil {
						return err
					}
					if err := be.Conv2DBackwardData(c, b[dy], b[w], b[dx]); err != nil {
						return err
					}
					return be.Conv2DBackwardWeights(c, b[x], b[dy], b[dw], dbb)
				})
			})
		}
	}
}

// TestChain runs conv outputs (held in NHWC inside the cpu backend) through every
// op that reads them, so each op is checked on both layouts.
func TestChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	tw := newTwin(t)
	c1 := backend.Conv2D{In: backend.Dims{N: 2, C: 3, H: 10, W: 14}, Out: 6, KH: 3, KW: 3, Stride: 1, Pad: 1}
	d := c1.OutDims()
	c2 := backend.Conv2D{In: up(d), Out: 4, KH: 5, KW: 5, Stride: 1, Pad: 2}
	d2 := c2.OutDims()
	x := tw.buf(rng, c1.In.Size(), -1, 1)
	w1 := tw.buf(rng, c1.WeightLen(), -1, 1)
	w2 := tw.buf(rng, c2.WeightLen(), -1, 1)
	bias := tw.buf(rng, d.C, -1, 1)
	a := tw.buf(rng, d.Size(), 0, 1)
	r := tw.buf(rng, d.Size(), 0, 1)
	u := tw.buf(rng, 4*d.Size(), 0, 1)
	y2 := tw.buf(rng, d2.Size(), 0, 1)
	p := tw.buf(rng, d2.Size()/4, 0, 1)
	dp := tw.buf(rng, d2.Size(), 0, 1)
	du := tw.buf(rng, d.Size(), 0, 1)
	db := tw.buf(rng, d.C, 0, 1)
	tgt := tw.buf(rng, d2.Size()/4, -1, 1)
	loss := tw.buf(rng, 1, 0, 1)
	grad := tw.buf(rng, d2.Size()/4, 0, 1)
	m := tw.buf(rng, d.Size(), 0, 1)
	s := tw.buf(rng, 1, 0, 1)
	fc := tw.buf(rng, 3*d2.Size()/4/d2.N, -1, 1)
	fo := tw.buf(rng, 3*d2.N, -1, 1)
	tw.run("chain", 1e-5, func(be backend.Backend, b []backend.Buffer) error {
		steps := []func() error{
			func() error { return be.Conv2DForward(c1, b[x], b[w1], nil, b[a]) },
			func() error { return be.AddBias(d, b[a], b[bias]) },
			func() error { return be.Activate(backend.LeakyReLU, 0.2, b[a], b[r]) },
			func() error { return be.Upsample2x(d, b[r], b[u]) },
			func() error { return be.Conv2DForward(c2, b[u], b[w2], nil, b[y2]) },
			func() error { return be.MaxPool2(d2, b[y2], b[p]) },
			func() error { return be.MSE(b[p], b[tgt], b[loss], b[grad]) },
			func() error { return be.MaxPool2Backward(d2, b[y2], b[grad], b[dp]) },
			func() error { return be.Activate(backend.Tanh, 0, b[dp], b[dp]) },
			func() error { return be.Conv2DBackwardData(c2, b[dp], b[w2], b[u]) },
			func() error { return be.Upsample2xBackward(d, b[u], b[du]) },
			func() error { return be.BiasGrad(d, b[du], b[db]) },
			func() error { return be.ActivateBackward(backend.LeakyReLU, 0.2, b[a], nil, b[du], b[du]) },
			func() error { return be.Mul(b[du], b[a], b[m]) },
			func() error { return be.Sum(b[m], b[s]) },
			func() error {
				g := backend.Gemm{TransB: true, M: d2.N, N: 3, K: d2.Size() / 4 / d2.N, Alpha: 1}
				return be.MatMul(g, b[p], b[fc], b[fo])
			},
		}
		for i, f := range steps {
			if err := f(); err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
		}
		return nil
	})
}

func TestElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	tw := newTwin(t)
	const n = 70001 // past the OpenMP threshold, odd
	x := tw.buf(rng, n, -6, 6)
	y := tw.buf(rng, n, -1, 1)
	z := tw.buf(rng, n, -1, 1)
	tgt := tw.buf(rng, n, 0, 1)
	loss := tw.buf(rng, 1, 0, 1)
	grad := tw.buf(rng, n, 0, 1)
	p := tw.buf(rng, n, -1, 1)
	m := tw.buf(rng, n, -1, 1)
	v := tw.buf(rng, n, 0, 1)
	acts := []backend.Activation{backend.ReLU, backend.LeakyReLU, backend.Tanh, backend.Sigmoid, backend.Identity}
	tw.run("elementwise", 2e-6, func(be backend.Backend, b []backend.Buffer) error {
		for _, f := range acts {
			if err := be.Activate(f, 0.2, b[x], b[y]); err != nil {
				return err
			}
			if err := be.ActivateBackward(f, 0.2, b[x], b[y], b[z], b[grad]); err != nil {
				return err
			}
			if err := be.Axpby(0.5, b[grad], 1.5, b[z]); err != nil {
				return err
			}
		}
		steps := []func() error{
			func() error { return be.Axpby(2, b[x], 0, b[y]) },
			func() error { return be.Mul(b[x], b[y], b[y]) },
			func() error { return be.Clamp(b[y], b[y], -3, 2) },
			func() error { return be.BCEWithLogits(b[x], b[tgt], b[loss], b[grad]) },
			func() error { return be.Hinge(b[x], -1, b[loss], b[grad]) },
			func() error {
				for s := 1; s <= 3; s++ {
					if err := be.AdamUpdate(backend.Adam{LR: 2e-4, Beta1: 0.5, Beta2: 0.999, Epsilon: 1e-8, Step: s}, b[p], b[x], b[m], b[v]); err != nil {
						return err
					}
				}
				return nil
			},
			func() error { return be.Copy(b[z], b[p]) },
			func() error { return be.Fill(b[tgt], 0.25) },
			func() error { return be.Sum(b[x], b[loss]) },
		}
		for _, f := range steps {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestBatchNormShuffle(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	tw := newTwin(t)
	d := backend.Dims{N: 5, C: 8, H: 6, W: 9}
	bn := backend.BatchNorm{Dims: d, Epsilon: 1e-5, Momentum: 0.1}
	x := tw.buf(rng, d.Size(), -2, 3)
	g := tw.buf(rng, d.C, 0.5, 1.5)
	be_ := tw.buf(rng, d.C, -1, 1)
	y := tw.buf(rng, d.Size(), 0, 1)
	sm := tw.buf(rng, d.C, 0, 1)
	si := tw.buf(rng, d.C, 0, 1)
	rm := tw.buf(rng, d.C, -1, 1)
	rv := tw.buf(rng, d.C, 0.5, 1)
	dy := tw.buf(rng, d.Size(), -1, 1)
	dx := tw.buf(rng, d.Size(), 0, 1)
	dg := tw.buf(rng, d.C, 0, 1)
	db := tw.buf(rng, d.C, 0, 1)
	yi := tw.buf(rng, d.Size(), 0, 1)
	ps := tw.buf(rng, d.Size(), 0, 1)
	pu := tw.buf(rng, d.Size(), 0, 1)
	tw.run("batchnorm", 1e-5, func(be backend.Backend, b []backend.Buffer) error {
		if err := be.BatchNormTrain(bn, b[x], b[g], b[be_], b[y], b[sm], b[si], b[rm], b[rv]); err != nil {
			return err
		}
		if err := be.BatchNormBackward(bn, b[x], b[dy], b[g], b[sm], b[si], b[dx], b[dg], b[db]); err != nil {
			return err
		}
		if err := be.BatchNormInfer(bn, b[x], b[g], b[be_], b[rm], b[rv], b[yi]); err != nil {
			return err
		}
		if err := be.PixelShuffle(d, 2, b[x], b[ps]); err != nil {
			return err
		}
		return be.PixelUnshuffle(backend.Dims{N: 5, C: 2, H: 12, W: 18}, 2, b[ps], b[pu])
	})
}

// TestWeightCache checks that a weight written after a forward pass is not served
// from the packed cache.
func TestWeightCache(t *testing.T) {
	c := backend.Conv2D{In: backend.Dims{N: 1, C: 16, H: 8, W: 8}, Out: 32, KH: 3, KW: 3, Stride: 1, Pad: 1}
	rng := rand.New(rand.NewPCG(5, 5))
	// Each write to w between forwards must invalidate w's packed copy: the
	// same sequence on ref gives the outputs to match.
	tw := newTwin(t)
	xi := tw.buf(rng, c.In.Size(), -1, 1)
	wi := tw.buf(rng, c.WeightLen(), -1, 1)
	w2i := tw.buf(rng, c.WeightLen(), -1, 1)
	yi := tw.buf(rng, c.OutDims().Size(), 0, 1)
	y2i := tw.buf(rng, c.OutDims().Size(), 0, 1)
	ms := tw.buf(rng, c.WeightLen(), 0, 0)
	vs := tw.buf(rng, c.WeightLen(), 0, 0)
	tw.run("weight cache", 1e-5, func(be backend.Backend, b []backend.Buffer) error {
		fwd := func(y int) error { return be.Conv2DForward(c, b[xi], b[wi], nil, b[y]) }
		steps := []func() error{
			func() error { return fwd(yi) },
			func() error { return be.Axpby(0.5, b[w2i], 1, b[wi]) },
			func() error { return fwd(yi) },
			func() error {
				return be.AdamUpdate(backend.Adam{LR: 0.1, Beta1: 0.9, Beta2: 0.99, Epsilon: 1e-8, Step: 1}, b[wi], b[w2i], b[ms], b[vs])
			},
			func() error { return fwd(yi) },
			func() error { return be.Copy(b[wi], b[w2i]) },
			func() error { return fwd(y2i) },
			func() error { return be.Activate(backend.ReLU, 0, b[wi], b[wi]) },
			func() error { return fwd(y2i) },
		}
		for _, f := range steps {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestConcurrent(t *testing.T) {
	be, err := New(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r := ref.New()
	c := backend.Conv2D{In: backend.Dims{N: 2, C: 4, H: 9, W: 7}, Out: 8, KH: 3, KW: 3, Stride: 1, Pad: 1}
	rng := rand.New(rand.NewPCG(6, 6))
	wv := make([]float32, c.WeightLen())
	for i := range wv {
		wv[i] = rng.Float32() - 0.5
	}
	w, _ := be.Alloc(len(wv))
	if err := be.Upload(w, wv); err != nil {
		t.Fatal(err)
	}
	rw, _ := r.Alloc(len(wv))
	_ = r.Upload(rw, wv)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			xv := make([]float32, c.In.Size())
			for i := range xv {
				xv[i] = rng.Float32() - 0.5
			}
			x, _ := be.Alloc(len(xv))
			y, _ := be.Alloc(c.OutDims().Size())
			defer be.Free(x)
			defer be.Free(y)
			got := make([]float32, y.Len())
			for range 20 {
				if err := be.Upload(x, xv); err != nil {
					t.Error(err)
					return
				}
				if err := be.Conv2DForward(c, x, w, nil, y); err != nil {
					t.Error(err)
					return
				}
				if err := be.Activate(backend.ReLU, 0, y, y); err != nil {
					t.Error(err)
					return
				}
				if err := be.Download(got, y); err != nil {
					t.Error(err)
					return
				}
			}
			// Compare with ref (ref is used from one goroutine at a time here).
			rx, _ := r.Alloc(len(xv))
			ry, _ := r.Alloc(len(got))
			want := make([]float32, len(got))
			refMu.Lock()
			_ = r.Upload(rx, xv)
			_ = r.Conv2DForward(c, rx, rw, nil, ry)
			_ = r.Activate(backend.ReLU, 0, ry, ry)
			_ = r.Download(want, ry)
			refMu.Unlock()
			for i := range got {
				if math.Abs(float64(got[i]-want[i])) > 1e-4 {
					t.Errorf("goroutine %d: y[%d] = %g, want %g", g, i, got[i], want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
}

// refMu serialises the ref backend in TestConcurrent.
var refMu sync.Mutex

func TestErrors(t *testing.T) {
	be, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := ref.New()
	x, _ := be.Alloc(12)
	y, _ := be.Alloc(12)
	other, _ := r.Alloc(12)
	freed, _ := be.Alloc(12)
	be.Free(freed)
	be.Free(freed) // twice is a no-op
	be.Free(nil)
	good := backend.Conv2D{In: backend.Dims{N: 1, C: 1, H: 3, W: 4}, Out: 1, KH: 1, KW: 1, Stride: 1}
	cases := map[string]error{
		"alloc 0":         func() error { _, err := be.Alloc(0); return err }(),
		"upload length":   be.Upload(x, make([]float32, 5)),
		"download length": be.Download(make([]float32, 5), x),
		"other backend":   be.Copy(x, other),
		"freed":           be.Fill(freed, 1),
		"nil":             be.Axpby(1, nil, 0, y),
		"axpby length":    func() error { z, _ := be.Alloc(3); return be.Axpby(1, x, 0, z) }(),
		"conv shape":      be.Conv2DForward(backend.Conv2D{In: backend.Dims{N: 1, C: 1, H: 2, W: 2}, Out: 1, KH: 3, KW: 3, Stride: 1}, x, y, nil, y),
		"conv stride":     be.Conv2DForward(backend.Conv2D{In: backend.Dims{N: 1, C: 1, H: 3, W: 4}, Out: 1, KH: 1, KW: 1}, x, y, nil, y),
		"conv w length":   be.Conv2DForward(good, x, y, nil, y),
		"conv alias":      func() error { w, _ := be.Alloc(1); return be.Conv2DForward(good, x, w, nil, x) }(),
		"maxpool odd":     be.MaxPool2(backend.Dims{N: 1, C: 1, H: 3, W: 4}, x, y),
		"matmul shape":    be.MatMul(backend.Gemm{M: 3, N: 5, K: 4, Alpha: 1}, x, y, y),
		"activation":      be.Activate(backend.Activation(42), 0, x, y),
		"adam step":       be.AdamUpdate(backend.Adam{LR: 1, Step: 0}, x, y, x, y),
		"shuffle factor":  be.PixelShuffle(backend.Dims{N: 1, C: 3, H: 2, W: 2}, 2, x, y),
	}
	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	if err := be.Fill(x, 1); err == nil {
		t.Error("fill after close: no error")
	}
	if err := be.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}
