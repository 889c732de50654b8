// Package backendtest is the conformance harness every backend runs in its
// tests: each op is compared against the reference backend on awkward shapes
// (odd sizes, kernels 1…9, stride 2, batch 1 and 5, with and without padding),
// on shapes drawn at random from a fixed seed (channels 1 to 256, sides that no
// SIMD block divides), and from two OS threads in turn, within a relative error
// bound; bad arguments must come back as errors, never panics.
//
// A backend's test is one line:
//
//	func TestConformance(t *testing.T) { backendtest.Run(t, newBackend(t)) }
//
// A backend can land op by op: a call that returns an error wrapping
// backend.ErrNotImplemented is not compared (the candidate's outputs get the
// oracle's values, so that later cases start from the same inputs) and the
// group it belongs to ("memory", "conv2d", …) ends as skipped, naming each op
// that did not run, never as passed. Alloc, Upload and Download must work.
package backendtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// Options tunes Parity.
type Options struct {
	// Tol bounds max|got − want| / max|want| per output; 0 means 1e-4, a few
	// float32 roundings over the longest sums here.
	Tol float64
	// Seed makes the random inputs reproducible; 0 means a fixed default.
	Seed uint64
	// Short runs fewer convolution shapes (for -short and slow backends).
	Short bool
}

// Run checks candidate against a fresh reference backend with default
// options (Short under testing.Short()).
func Run(t *testing.T, candidate backend.Backend) {
	t.Helper()
	oracle := ref.New()
	defer oracle.Close()
	Parity(t, oracle, candidate, Options{Short: testing.Short()})
}

// Parity runs every conformance check of candidate against oracle. It does not
// close either backend.
func Parity(t *testing.T, oracle, candidate backend.Backend, o Options) {
	t.Helper()
	if o.Tol == 0 {
		o.Tol = 1e-4
	}
	if o.Seed == 0 {
		o.Seed = 0x6869_7265_7a
	}
	e := &env{bk: [2]backend.Backend{oracle, candidate}, rng: rand.New(rand.NewPCG(o.Seed, 1)), opt: o}
	e.groups(t, []group{
		{"memory", e.memory}, {"activations", e.activations}, {"matmul", e.matmul}, {"bias", e.bias},
		{"conv2d", e.conv}, {"resample", e.resample}, {"batchnorm", e.batchnorm}, {"losses", e.losses},
		{"adam", e.adam}, {"finite", e.finite}, {"concurrent", e.concurrent}, {"random_shapes", e.randomShapes},
		{"threads", e.threads}, {"bad_input", func(t *testing.T) { badInput(t, e, candidate, oracle) }},
	})
}

// group is one subtest of the suite.
type group struct {
	name string
	f    func(t *testing.T)
}

// groups runs each of gs with e.group.
func (e *env) groups(t *testing.T, gs []group) {
	t.Helper()
	for _, g := range gs {
		e.group(t, g.name, g.f)
	}
}

// group runs the checks f as subtest name and ends it as skipped when a call
// in it was not implemented by the candidate (after f, so that every other
// call in the group still ran and was compared).
func (e *env) group(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		e.skipped = &notImplemented{}
		f(t)
		if msg := e.skipped.String(); msg != "" {
			t.Skipf("not implemented by %s: %s", e.bk[cand].Name(), msg)
		}
	})
}

// notImplemented collects the calls of one group that the candidate does not
// run (from any goroutine): the distinct errors, each with its first case and
// a count.
type notImplemented struct {
	mu    sync.Mutex
	errs  []string
	first map[string]string
	count map[string]int
}

// skip records case name's error err when it wraps backend.ErrNotImplemented
// and reports whether it did.
func (e *env) skip(name string, err error) bool {
	if !errors.Is(err, backend.ErrNotImplemented) {
		return false
	}
	n := e.skipped
	n.mu.Lock()
	defer n.mu.Unlock()
	msg := err.Error()
	if n.first == nil {
		n.first, n.count = map[string]string{}, map[string]int{}
	}
	if _, ok := n.first[msg]; !ok {
		n.errs = append(n.errs, msg)
		n.first[msg] = name
	}
	n.count[msg]++
	return true
}

func (n *notImplemented) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	parts := make([]string, 0, len(n.errs))
	for _, msg := range slices.Sorted(slices.Values(n.errs)) {
		p := fmt.Sprintf("%q (%s", msg, n.first[msg])
		if c := n.count[msg]; c > 1 {
			p += fmt.Sprintf(", %d calls", c)
		}
		parts = append(parts, p+")")
	}
	return strings.Join(parts, "; ")
}

const (
	oracle = 0
	cand   = 1
)

// pair is one logical buffer allocated on both backends.
type pair [2]backend.Buffer

type env struct {
	bk      [2]backend.Backend
	rng     *rand.Rand
	opt     Options
	skipped *notImplemented // the current group's
}

func (e *env) uniform(n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*e.rng.Float32()
	}
	return v
}

// buf allocates a pair holding data (which also fixes the length).
func (e *env) buf(t *testing.T, data []float32) pair {
	t.Helper()
	var p pair
	for s, b := range e.bk {
		x, err := b.Alloc(len(data))
		if err != nil {
			t.Fatalf("%s: alloc %d: %v", b.Name(), len(data), err)
		}
		if err := b.Upload(x, data); err != nil {
			t.Fatalf("%s: upload: %v", b.Name(), err)
		}
		p[s] = x
		t.Cleanup(func() { b.Free(x) })
	}
	return p
}

func (e *env) rand(t *testing.T, n int) pair { t.Helper(); return e.buf(t, e.uniform(n, -1, 1)) }

// run calls f on the oracle side and on the candidate side, then compares the
// given outputs (which must be every buffer f writes). f picks its buffers with
// p[s]. It reports whether the candidate ran f: when it returns
// backend.ErrNotImplemented, the call is recorded for the group's skip and
// the oracle's outputs are copied to the candidate's.
func (e *env) run(t *testing.T, name string, f func(b backend.Backend, s int) error, outs ...pair) bool {
	t.Helper()
	for s, b := range e.bk {
		err := safe(func() error { return f(b, s) })
		if s == cand && e.skip(name, err) {
			for _, p := range outs {
				if err := e.bk[cand].Upload(p[cand], e.download(t, oracle, p[oracle])); err != nil {
					t.Fatalf("%s: upload: %v", e.bk[cand].Name(), err)
				}
			}
			return false
		}
		if err != nil {
			t.Errorf("%s on %s %s: %v", name, [2]string{"oracle", "candidate"}[s], b.Name(), err)
			return false
		}
	}
	for i, p := range outs {
		e.compare(t, fmt.Sprintf("%s: output %d", name, i), p)
	}
	return true
}

func (e *env) download(t *testing.T, s int, x backend.Buffer) []float32 {
	t.Helper()
	h := make([]float32, x.Len())
	if err := e.bk[s].Download(h, x); err != nil {
		t.Fatalf("%s: download: %v", e.bk[s].Name(), err)
	}
	return h
}

// compare checks max|got − want| ≤ Tol·max|want|; NaN must match NaN.
func (e *env) compare(t *testing.T, name string, p pair) {
	t.Helper()
	want, got := e.download(t, oracle, p[oracle]), e.download(t, cand, p[cand])
	if len(want) != len(got) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	var scale, worst float64
	at := -1
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		if math.IsNaN(w) || math.IsNaN(g) || math.IsInf(w, 0) || math.IsInf(g, 0) {
			if !(math.IsNaN(w) && math.IsNaN(g)) && w != g {
				t.Errorf("%s: [%d] = %v, want %v", name, i, g, w)
				return
			}
			continue
		}
		scale = math.Max(scale, math.Abs(w))
		if d := math.Abs(g - w); d > worst {
			worst, at = d, i
		}
	}
	if scale < 1e-6 {
		scale = 1e-6
	}
	if worst/scale > e.opt.Tol {
		t.Errorf("%s: relative error %.3g > %.3g at [%d]: got %v, want %v (max |want| %.3g, %d values)",
			name, worst/scale, e.opt.Tol, at, got[at], want[at], scale, len(want))
	}
}

// safe turns a panic into an error, so one broken op does not stop the run.
func safe(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

func (e *env) memory(t *testing.T) {
	for _, n := range []int{1, 7, 1000, 65537} {
		x := e.rand(t, n)
		e.compare(t, fmt.Sprintf("upload/download %d", n), x)

		y := e.rand(t, n)
		e.run(t, "copy", func(b backend.Backend, s int) error { return b.Copy(y[s], x[s]) }, y)
		e.run(t, "fill", func(b backend.Backend, s int) error { return b.Fill(y[s], -0.75) }, y)

		y = e.rand(t, n)
		e.run(t, "axpby", func(b backend.Backend, s int) error { return b.Axpby(0.5, x[s], -1.5, y[s]) }, y)
		nan := make([]float32, n)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		y = e.buf(t, nan)
		e.run(t, "axpby beta=0 ignores y", func(b backend.Backend, s int) error { return b.Axpby(2, x[s], 0, y[s]) }, y)

		z, out := e.rand(t, n), e.rand(t, n)
		e.run(t, "mul", func(b backend.Backend, s int) error { return b.Mul(x[s], z[s], out[s]) }, out)
		e.run(t, "mul out=x", func(b backend.Backend, s int) error { return b.Mul(z[s], x[s], z[s]) }, z)
		e.run(t, "clamp", func(b backend.Backend, s int) error { return b.Clamp(x[s], out[s], -0.3, 0.6) }, out)
		e.run(t, "clamp in place", func(b backend.Backend, s int) error { return b.Clamp(x[s], x[s], -0.3, 0.6) }, x)

		sum := e.rand(t, 1)
		e.run(t, "sum", func(b backend.Backend, s int) error { return b.Sum(out[s], sum[s]) }, sum)
	}
	if err := e.bk[cand].Sync(); err != nil {
		t.Errorf("sync: %v", err)
	}
}

func (e *env) activations(t *testing.T) {
	for _, n := range []int{1, 2 * 3 * 13 * 11} {
		data := e.uniform(n, -4, 4)
		data[0] = 0 // ReLU's kink: gradient 0 there, as in PyTorch
		for _, f := range []backend.Activation{backend.Identity, backend.ReLU, backend.LeakyReLU, backend.Tanh, backend.Sigmoid} {
			name := fmt.Sprintf("%v n=%d", f, n)
			x, y, dy, dx := e.buf(t, data), e.rand(t, n), e.rand(t, n), e.rand(t, n)
			e.run(t, name, func(b backend.Backend, s int) error { return b.Activate(f, 0.2, x[s], y[s]) }, y)
			e.run(t, name+" backward", func(b backend.Backend, s int) error {
				return b.ActivateBackward(f, 0.2, x[s], y[s], dy[s], dx[s])
			}, dx)
			e.run(t, name+" backward dx=dy", func(b backend.Backend, s int) error {
				return b.ActivateBackward(f, 0.2, x[s], y[s], dy[s], dy[s])
			}, dy)
			e.run(t, name+" in place", func(b backend.Backend, s int) error { return b.Activate(f, 0.2, x[s], x[s]) }, x)
		}
	}
	// Saturation: large |x| must not give NaN.
	big := []float32{-100, -30, -10, 10, 30, 100, float32(math.Inf(1)), float32(math.Inf(-1))}
	for _, f := range []backend.Activation{backend.Tanh, backend.Sigmoid} {
		x, y := e.buf(t, big), e.rand(t, len(big))
		e.run(t, fmt.Sprintf("%v saturating", f), func(b backend.Backend, s int) error { return b.Activate(f, 0, x[s], y[s]) }, y)
	}
}

func (e *env) matmul(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {5, 100, 256}, {64, 1, 512}}
	for _, sh := range shapes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
					g := backend.Gemm{TransA: ta, TransB: tb, M: sh[0], N: sh[1], K: sh[2], Alpha: ab[0], Beta: ab[1]}
					a, bb, c := e.rand(t, g.M*g.K), e.rand(t, g.K*g.N), e.rand(t, g.M*g.N)
					e.run(t, fmt.Sprintf("%+v", g), func(b backend.Backend, s int) error { return b.MatMul(g, a[s], bb[s], c[s]) }, c)
				}
			}
		}
	}
}

func (e *env) bias(t *testing.T) {
	for _, d := range []backend.Dims{{N: 2, C: 3, H: 13, W: 11}, {N: 5, C: 7, H: 1, W: 1}, {N: 1, C: 1, H: 1, W: 1}} {
		x, bias, db := e.rand(t, d.Size()), e.rand(t, d.C), e.rand(t, d.C)
		e.run(t, fmt.Sprintf("add bias %v", d), func(b backend.Backend, s int) error { return b.AddBias(d, x[s], bias[s]) }, x)
		e.run(t, fmt.Sprintf("bias grad %v", d), func(b backend.Backend, s int) error { return b.BiasGrad(d, x[s], db[s]) }, db)
	}
}

// ConvShapes is the list of convolutions Parity checks (exported so backend
// benchmarks and tests can reuse the awkward shapes).
func ConvShapes(short bool) []backend.Conv2D {
	var cs []backend.Conv2D
	for _, in := range []backend.Dims{{N: 2, C: 3, H: 13, W: 11}, {N: 1, C: 4, H: 9, W: 12}, {N: 5, C: 2, H: 10, W: 10}} {
		for _, k := range []int{1, 3, 5, 7, 9} {
			for _, stride := range []int{1, 2} {
				for _, pad := range []int{0, (k - 1) / 2} {
					c := backend.Conv2D{In: in, Out: 5, KH: k, KW: k, Stride: stride, Pad: pad}
					if c.Validate() != nil {
						continue
					}
					if short && (k == 7 || (in.N == 1 && stride == 2)) {
						continue
					}
					cs = append(cs, c)
				}
			}
		}
	}
	// Non-square kernel and a wider layer, the shapes real models use.
	cs = append(cs,
		backend.Conv2D{In: backend.Dims{N: 2, C: 3, H: 8, W: 7}, Out: 4, KH: 3, KW: 1, Stride: 1, Pad: 0},
		backend.Conv2D{In: backend.Dims{N: 2, C: 16, H: 8, W: 8}, Out: 32, KH: 3, KW: 3, Stride: 1, Pad: 1},
	)
	return cs
}

func (e *env) conv(t *testing.T) {
	for _, c := range ConvShapes(e.opt.Short) {
		e.convCase(t, c)
	}
}

func (e *env) resample(t *testing.T) {
	for _, d := range []backend.Dims{{N: 2, C: 3, H: 13, W: 11}, {N: 1, C: 1, H: 1, W: 1}, {N: 5, C: 4, H: 6, W: 8}} {
		x, y := e.rand(t, d.Size()), e.rand(t, 4*d.Size())
		e.run(t, fmt.Sprintf("upsample %v", d), func(b backend.Backend, s int) error { return b.Upsample2x(d, x[s], y[s]) }, y)
		e.run(t, fmt.Sprintf("upsample backward %v", d), func(b backend.Backend, s int) error { return b.Upsample2xBackward(d, y[s], x[s]) }, x)
	}
	for _, d := range []backend.Dims{{N: 2, C: 3, H: 14, W: 12}, {N: 1, C: 1, H: 2, W: 2}, {N: 5, C: 4, H: 8, W: 6}} {
		e.maxpoolCase(t, d)
	}
	// Ties: the first maximum in row-major order takes the gradient.
	d := backend.Dims{N: 1, C: 1, H: 2, W: 4}
	x, dy, dx := e.buf(t, []float32{1, 1, 0, 2, 1, 1, 2, 2}), e.buf(t, []float32{3, 5}), e.rand(t, 8)
	ran := e.run(t, "maxpool backward ties", func(b backend.Backend, s int) error { return b.MaxPool2Backward(d, x[s], dy[s], dx[s]) }, dx)
	if got := e.download(t, cand, dx[cand]); ran && (got[0] != 3 || got[1] != 0 || got[3] != 5 || got[6] != 0) {
		t.Errorf("maxpool backward ties: got %v, want the first maximum of each block to take dy", got)
	}

	for _, r := range []int{1, 2, 3} {
		d := backend.Dims{N: 2, C: 2 * r * r, H: 5, W: 3}
		wide := backend.Dims{N: 2, C: 2, H: 5 * r, W: 3 * r}
		x, y, back := e.rand(t, d.Size()), e.rand(t, d.Size()), e.rand(t, d.Size())
		ran := e.run(t, fmt.Sprintf("pixel shuffle r=%d", r), func(b backend.Backend, s int) error { return b.PixelShuffle(d, r, x[s], y[s]) }, y)
		ran = e.run(t, fmt.Sprintf("pixel unshuffle r=%d", r), func(b backend.Backend, s int) error { return b.PixelUnshuffle(wide, r, y[s], back[s]) }, back) && ran
		if want, got := e.download(t, cand, x[cand]), e.download(t, cand, back[cand]); ran && fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("pixel unshuffle r=%d does not invert pixel shuffle", r)
		}
	}
}

func (e *env) batchnorm(t *testing.T) {
	for _, d := range []backend.Dims{{N: 2, C: 3, H: 13, W: 11}, {N: 5, C: 4, H: 1, W: 1}, {N: 1, C: 2, H: 3, W: 3}} {
		e.batchnormCase(t, d)
	}
}

// batchnormCase checks training, backward and inference batch norm on d.
func (e *env) batchnormCase(t *testing.T, d backend.Dims) {
	bn := backend.BatchNorm{Dims: d, Epsilon: 1e-5, Momentum: 0.1}
	if d.N*d.H*d.W == 1 {
		return // one value per channel has no batch statistics (refused by contract)
	}
	x := e.buf(t, e.uniform(d.Size(), -2, 3))
	gamma, beta := e.buf(t, e.uniform(d.C, 0.5, 1.5)), e.rand(t, d.C)
	rm, rv := e.rand(t, d.C), e.buf(t, e.uniform(d.C, 0.5, 2))
	y, sm, si := e.rand(t, d.Size()), e.rand(t, d.C), e.rand(t, d.C)
	name := fmt.Sprintf("batchnorm %v", d)
	e.run(t, name+" train", func(b backend.Backend, s int) error {
		return b.BatchNormTrain(bn, x[s], gamma[s], beta[s], y[s], sm[s], si[s], rm[s], rv[s])
	}, y, sm, si, rm, rv)
	dy, dx, dg, db := e.rand(t, d.Size()), e.rand(t, d.Size()), e.rand(t, d.C), e.rand(t, d.C)
	e.run(t, name+" backward", func(b backend.Backend, s int) error {
		return b.BatchNormBackward(bn, x[s], dy[s], gamma[s], sm[s], si[s], dx[s], dg[s], db[s])
	}, dx, dg, db)
	e.run(t, name+" infer", func(b backend.Backend, s int) error {
		return b.BatchNormInfer(bn, x[s], gamma[s], beta[s], rm[s], rv[s], y[s])
	}, y)
}

// maxpoolCase checks 2×2 max pooling and its backward pass on d (even sides),
// on distinct values so the position of each maximum is unambiguous.
func (e *env) maxpoolCase(t *testing.T, d backend.Dims) {
	vals := e.rng.Perm(d.Size())
	data := make([]float32, len(vals))
	for i, v := range vals {
		data[i] = float32(v)/float32(len(vals)) - 0.5
	}
	x, y, dy, dx := e.buf(t, data), e.rand(t, d.Size()/4), e.rand(t, d.Size()/4), e.rand(t, d.Size())
	e.run(t, fmt.Sprintf("maxpool %v", d), func(b backend.Backend, s int) error { return b.MaxPool2(d, x[s], y[s]) }, y)
	e.run(t, fmt.Sprintf("maxpool backward %v", d), func(b backend.Backend, s int) error { return b.MaxPool2Backward(d, x[s], dy[s], dx[s]) }, dx)
}

func (e *env) losses(t *testing.T) {
	for _, n := range []int{1, 64, 3 * 17 * 19} {
		logits := e.uniform(n, -8, 8)
		if n > 4 {
			logits[0], logits[1], logits[2], logits[3] = 60, -60, 0, 1e-3
		}
		x := e.buf(t, logits)
		loss, grad := e.rand(t, 1), e.rand(t, n)
		for _, tv := range []float32{0, 1, 0.9} {
			target := make([]float32, n)
			for i := range target {
				target[i] = tv
			}
			tg := e.buf(t, target)
			e.run(t, fmt.Sprintf("bce n=%d t=%v", n, tv), func(b backend.Backend, s int) error {
				return b.BCEWithLogits(x[s], tg[s], loss[s], grad[s])
			}, loss, grad)
		}
		tg := e.rand(t, n)
		e.run(t, fmt.Sprintf("bce n=%d random targets", n), func(b backend.Backend, s int) error {
			return b.BCEWithLogits(x[s], tg[s], loss[s], grad[s])
		}, loss, grad)
		e.run(t, fmt.Sprintf("mse n=%d", n), func(b backend.Backend, s int) error { return b.MSE(x[s], tg[s], loss[s], grad[s]) }, loss, grad)
		for _, sign := range []float32{1, -1} {
			e.run(t, fmt.Sprintf("hinge n=%d sign=%v", n, sign), func(b backend.Backend, s int) error {
				return b.Hinge(x[s], sign, loss[s], grad[s])
			}, loss, grad)
		}
	}
}

func (e *env) adam(t *testing.T) {
	for _, n := range []int{1, 1000} {
		p, g, m, v := e.rand(t, n), e.rand(t, n), e.rand(t, n), e.buf(t, e.uniform(n, 0, 1))
		for step := 1; step <= 3; step++ {
			a := backend.Adam{LR: 2e-4, Beta1: 0.5, Beta2: 0.999, Epsilon: 1e-8, Step: step}
			e.run(t, fmt.Sprintf("adam n=%d step=%d", n, step), func(b backend.Backend, s int) error {
				return b.AdamUpdate(a, p[s], g[s], m[s], v[s])
			}, p, m, v)
		}
		a := backend.Adam{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, Step: 1000}
		e.run(t, fmt.Sprintf("adam n=%d step=1000", n), func(b backend.Backend, s int) error {
			return b.AdamUpdate(a, p[s], g[s], m[s], v[s])
		}, p, m, v)
	}
}

// finite checks what callers rely on to detect divergence cheaply: NaN and
// ±Inf propagate through Sum, Conv2DForward and MatMul.
func (e *env) finite(t *testing.T) {
	b := e.bk[cand]
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		data := e.uniform(1000, -1, 1)
		data[417] = bad
		x, out := e.buf(t, data), e.rand(t, 1)
		if err := b.Sum(x[cand], out[cand]); e.skip("sum", err) {
			return
		} else if err != nil {
			t.Fatalf("sum: %v", err)
		}
		if s := e.download(t, cand, out[cand])[0]; !math.IsNaN(float64(s)) && !math.IsInf(float64(s), 0) {
			t.Errorf("sum of a buffer holding %v = %v, want non-finite", bad, s)
		}
		c := backend.Conv2D{In: backend.Dims{N: 1, C: 10, H: 10, W: 10}, Out: 2, KH: 3, KW: 3, Stride: 1, Pad: 1}
		w, y := e.rand(t, c.WeightLen()), e.rand(t, c.OutDims().Size())
		if err := b.Conv2DForward(c, x[cand], w[cand], nil, y[cand]); e.skip("conv", err) {
			continue
		} else if err != nil {
			t.Fatalf("conv: %v", err)
		}
		if err := b.Sum(y[cand], out[cand]); err != nil {
			t.Fatalf("sum: %v", err)
		}
		if s := e.download(t, cand, out[cand])[0]; !math.IsNaN(float64(s)) && !math.IsInf(float64(s), 0) {
			t.Errorf("conv of an input holding %v sums to %v, want non-finite", bad, s)
		}
		g := backend.Gemm{M: 10, N: 10, K: 100, Alpha: 1}
		a, mm := e.rand(t, 1000), e.rand(t, 100)
		if err := b.MatMul(g, a[cand], x[cand], mm[cand]); e.skip("matmul", err) {
			continue
		} else if err != nil {
			t.Fatalf("matmul: %v", err)
		}
		if err := b.Sum(mm[cand], out[cand]); err != nil {
			t.Fatalf("sum: %v", err)
		}
		if s := e.download(t, cand, out[cand])[0]; !math.IsNaN(float64(s)) && !math.IsInf(float64(s), 0) {
			t.Errorf("matmul of an input holding %v sums to %v, want non-finite", bad, s)
		}
	}
}

// concurrent runs independent convolutions from several goroutines; the
// contract says a Backend is safe for concurrent use on distinct buffers.
func (e *env) concurrent(t *testing.T) {
	c := backend.Conv2D{In: backend.Dims{N: 2, C: 3, H: 13, W: 11}, Out: 4, KH: 3, KW: 3, Stride: 1, Pad: 1}
	const workers = 4
	var xs, ys [workers]pair
	w, bias := e.rand(t, c.WeightLen()), e.rand(t, c.Out)
	for i := range xs {
		xs[i], ys[i] = e.rand(t, c.In.Size()), e.rand(t, c.OutDims().Size())
		if err := e.bk[oracle].Conv2DForward(c, xs[i][oracle], w[oracle], bias[oracle], ys[i][oracle]); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, workers)
	for i := range xs {
		go func() {
			errs <- safe(func() error {
				for range 3 {
					if err := e.bk[cand].Conv2DForward(c, xs[i][cand], w[cand], bias[cand], ys[i][cand]); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	ran := true
	for range workers {
		if err := <-errs; e.skip("concurrent conv", err) {
			ran = false
		} else if err != nil {
			t.Errorf("concurrent conv: %v", err)
		}
	}
	if err := e.bk[cand].Sync(); err != nil {
		t.Errorf("sync: %v", err)
	}
	for i := range ys {
		if ran {
			e.compare(t, fmt.Sprintf("concurrent conv %d", i), ys[i])
		}
	}
}
