package layer_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Finite-difference checks of every Backward on the reference backend.
//
// f(x, θ) = Σ w ⊙ Forward(x) with a fixed random projection w, so Backward(w)
// must return ∂f/∂x and add ∂f/∂θ into the parameter gradients. The numerical
// derivative is the central difference (f(v+ε) − f(v−ε)) / 2ε with ε = 1e-2,
// summed in float64 over float32 outputs: its truncation error is O(ε²) and its
// rounding error about 1e-7·|f|/ε, both far below the 1e-2 bound relative to
// the largest gradient. Inputs keep clear of kinks (ReLU at 0, max-pool ties)
// by more than ε.

const (
	fdEps = 1e-2
	fdTol = 1e-2
)

func uniform(rng *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return v
}

// awayFromZero draws values with |v| in [0.1, 1].
func awayFromZero(rng *rand.Rand, n int) []float32 {
	v := uniform(rng, n, 0.1, 1)
	for i := range v {
		if rng.IntN(2) == 0 {
			v[i] = -v[i]
		}
	}
	return v
}

// spaced draws a permutation of values 0.05 apart: no two within 2ε.
func spaced(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i, p := range rng.Perm(n) {
		v[i] = 0.05*float32(p) - 0.025*float32(n)
	}
	return v
}

func mustT(t *testing.T, b backend.Backend, data []float32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromHost(b, data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	return x
}

func host(t *testing.T, x *tensor.Tensor) []float32 {
	t.Helper()
	h, err := x.Host()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// maxRelErr is max|a − n| / max|n| (n the numerical gradient).
func maxRelErr(a []float32, n []float64) (float64, int) {
	var worst, scale float64
	at := 0
	for i := range n {
		scale = math.Max(scale, math.Abs(n[i]))
		if d := math.Abs(float64(a[i]) - n[i]); d > worst {
			worst, at = d, i
		}
	}
	return worst / math.Max(scale, 1e-6), at
}

// numGrad perturbs each value of v in turn and returns the central differences
// of f.
func numGrad(t *testing.T, v *tensor.Tensor, f func() float64) []float64 {
	t.Helper()
	base := host(t, v)
	work := append([]float32(nil), base...)
	g := make([]float64, len(base))
	for i := range base {
		work[i] = base[i] + fdEps
		if err := v.CopyFromHost(work); err != nil {
			t.Fatal(err)
		}
		fp := f()
		work[i] = base[i] - fdEps
		if err := v.CopyFromHost(work); err != nil {
			t.Fatal(err)
		}
		fm := f()
		work[i] = base[i]
		// The perturbation actually applied is the float32 difference.
		g[i] = (fp - fm) / (float64(base[i]+fdEps) - float64(base[i]-fdEps))
	}
	if err := v.CopyFromHost(base); err != nil {
		t.Fatal(err)
	}
	return g
}

// gradCheck compares l's Backward with finite differences for x and for every
// trainable parameter.
func gradCheck(t *testing.T, b backend.Backend, l layer.Layer, x *tensor.Tensor, rng *rand.Rand) {
	t.Helper()
	y, err := l.Forward(x, layer.Train)
	if err != nil {
		t.Fatal(err)
	}
	w := uniform(rng, y.Len(), -1, 1)
	dy := mustT(t, b, w, y.Shape()...)
	f := func() float64 {
		y, err := l.Forward(x, layer.Train)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for i, v := range host(t, y) {
			s += float64(w[i]) * float64(v)
		}
		return s
	}
	if err := layer.ZeroGrad(l); err != nil {
		t.Fatal(err)
	}
	f() // the Forward that Backward differentiates
	dx, err := l.Backward(dy)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(dx.Shape(), x.Shape()) {
		t.Fatalf("dx shape %v, want %v", dx.Shape(), x.Shape())
	}
	analytic := host(t, dx)
	grads := map[string][]float32{}
	for _, p := range l.Params() {
		if p.Trainable {
			grads[p.Name] = host(t, p.Grad)
		}
	}
	if e, at := maxRelErr(analytic, numGrad(t, x, f)); e > fdTol {
		t.Errorf("dx: relative error %.3g at %d", e, at)
	}
	for _, p := range l.Params() {
		if !p.Trainable {
			continue
		}
		if e, at := maxRelErr(grads[p.Name], numGrad(t, p.Value, f)); e > fdTol {
			t.Errorf("d%s: relative error %.3g at %d", p.Name, e, at)
		}
	}
}

func TestGradients(t *testing.T) {
	b := ref.New()
	defer b.Close()
	type input func(rng *rand.Rand, n int) []float32
	smooth := func(rng *rand.Rand, n int) []float32 { return uniform(rng, n, -1, 1) }
	must := func(l layer.Layer, err error) layer.Layer {
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	conv := func(name string, cfg layer.Conv2DConfig) layer.Layer {
		return must(layer.NewConv2D(b, name, cfg))
	}
	cases := []struct {
		name  string
		l     layer.Layer
		shape []int
		in    input
	}{
		{"dense", must(layer.NewDense(b, "fc", layer.DenseConfig{In: 7, Out: 5})), []int{3, 7}, smooth},
		{"dense no bias", must(layer.NewDense(b, "fc", layer.DenseConfig{In: 4, Out: 6, NoBias: true})), []int{1, 4}, smooth},
		{"dense 4-D input", must(layer.NewDense(b, "fc", layer.DenseConfig{In: 12, Out: 3})), []int{2, 3, 2, 2}, smooth},
		{"conv k1", conv("c", layer.Conv2DConfig{In: 3, Out: 4, Kernel: 1}), []int{2, 3, 5, 4}, smooth},
		{"conv k3 same", conv("c", layer.Conv2DConfig{In: 2, Out: 3, Kernel: 3, Pad: layer.PadSame}), []int{2, 2, 6, 5}, smooth},
		{"conv k3 stride 2 pad 1", conv("c", layer.Conv2DConfig{In: 2, Out: 3, Kernel: 3, Stride: 2, Pad: 1}), []int{2, 2, 7, 6}, smooth},
		{"conv k5 stride 2 pad 0", conv("c", layer.Conv2DConfig{In: 2, Out: 2, Kernel: 5, Stride: 2}), []int{1, 2, 9, 8}, smooth},
		{"conv k3 valid no bias", conv("c", layer.Conv2DConfig{In: 3, Out: 2, Kernel: 3, NoBias: true}), []int{1, 3, 5, 5}, smooth},
		{"upsample", layer.NewUpSample2x("up"), []int{2, 3, 3, 2}, smooth},
		{"maxpool", layer.NewMaxPool2("pool"), []int{2, 3, 4, 6}, spaced},
		{"pixel shuffle", must(layer.NewPixelShuffle("ps", 2)), []int{2, 8, 3, 2}, smooth},
		{"identity", layer.NewActivation("id", backend.Identity, 0), []int{2, 5}, smooth},
		{"relu", layer.NewReLU("relu"), []int{2, 3, 4, 4}, awayFromZero},
		{"leaky relu", layer.NewLeakyReLU("lrelu", 0.2), []int{2, 3, 4, 4}, awayFromZero},
		{"tanh", layer.NewTanh("tanh"), []int{2, 3, 4, 4}, smooth},
		{"sigmoid", layer.NewSigmoid("sigmoid"), []int{2, 3, 4, 4}, smooth},
		{"batchnorm 2d", must(layer.NewBatchNorm(b, "bn", layer.BatchNormConfig{Channels: 3})), []int{3, 3, 3, 2}, smooth},
		{"batchnorm 1d", must(layer.NewBatchNorm(b, "bn", layer.BatchNormConfig{Channels: 4})), []int{5, 4}, smooth},
		{"reshape", must(layer.NewReshape("view", 2, 3, 2)), []int{2, 12}, smooth},
		{"flatten", layer.NewFlatten("flat"), []int{2, 3, 2, 2}, smooth},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			defer c.l.Free()
			if err := layer.Initialize(c.l, layer.PyTorchInit, rng); err != nil {
				t.Fatal(err)
			}
			if bn, ok := c.l.(*layer.BatchNorm); ok {
				// Non-trivial gamma and beta.
				if err := bn.Weight.Value.CopyFromHost(uniform(rng, bn.Weight.Value.Len(), 0.5, 1.5)); err != nil {
					t.Fatal(err)
				}
				if err := bn.Bias.Value.CopyFromHost(uniform(rng, bn.Bias.Value.Len(), -1, 1)); err != nil {
					t.Fatal(err)
				}
			}
			n, _ := tensor.Size(c.shape)
			x := mustT(t, b, c.in(rng, n), c.shape...)
			gradCheck(t, b, c.l, x, rng)
		})
	}
}

// TestGradientsNetwork checks a small smooth network end to end: the chain
// rule through Sequential, shared buffers and views.
func TestGradientsNetwork(t *testing.T) {
	b := ref.New()
	defer b.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	fc, _ := layer.NewDense(b, "fc", layer.DenseConfig{In: 6, Out: 4 * 2 * 2, NoBias: true})
	bn0, _ := layer.NewBatchNorm(b, "bn0", layer.BatchNormConfig{Channels: 4})
	view, _ := layer.NewReshape("view", 4, 2, 2)
	conv1, _ := layer.NewConv2D(b, "conv1", layer.Conv2DConfig{In: 4, Out: 8, Kernel: 3, Pad: layer.PadSame, NoBias: true}) // a bias before BatchNorm has zero gradient
	bn1, _ := layer.NewBatchNorm(b, "bn1", layer.BatchNormConfig{Channels: 8})
	ps, _ := layer.NewPixelShuffle("ps", 2)
	conv2, _ := layer.NewConv2D(b, "conv2", layer.Conv2DConfig{In: 2, Out: 3, Kernel: 3, Stride: 2, Pad: 1})
	net, err := layer.NewSequential("g", fc, view, bn0, layer.NewTanh("t0"), layer.NewUpSample2x("up"), conv1, bn1,
		layer.NewSigmoid("s1"), ps, conv2, layer.NewTanh("out"))
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	if err := layer.Initialize(net, layer.PyTorchInit, rng); err != nil {
		t.Fatal(err)
	}
	x := mustT(t, b, uniform(rng, 3*6, -1, 1), 3, 6)
	gradCheck(t, b, net, x, rng)
}

func TestGradientsAccumulate(t *testing.T) {
	b := ref.New()
	defer b.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, l := range []layer.Layer{
		func() layer.Layer {
			l, _ := layer.NewConv2D(b, "c", layer.Conv2DConfig{In: 2, Out: 3, Kernel: 3, Pad: 1})
			return l
		}(),
		func() layer.Layer { l, _ := layer.NewDense(b, "fc", layer.DenseConfig{In: 8, Out: 3}); return l }(),
		func() layer.Layer { l, _ := layer.NewBatchNorm(b, "bn", layer.BatchNormConfig{Channels: 2}); return l }(),
		func() layer.Layer {
			l, _ := layer.NewConv2D(b, "csn", layer.Conv2DConfig{In: 2, Out: 3, Kernel: 3, Pad: 1, SpectralNorm: true})
			return l
		}(),
		func() layer.Layer {
			l, _ := layer.NewDense(b, "fcsn", layer.DenseConfig{In: 8, Out: 3, SpectralNorm: true})
			return l
		}(),
	} {
		t.Run(l.Name(), func(t *testing.T) {
			defer l.Free()
			if err := layer.Initialize(l, layer.DCGANInit, rng); err != nil {
				t.Fatal(err)
			}
			x := mustT(t, b, uniform(rng, 2*2*2*2, -1, 1), 2, 2, 2, 2)
			y, err := l.Forward(x, layer.Train)
			if err != nil {
				t.Fatal(err)
			}
			dy := mustT(t, b, uniform(rng, y.Len(), -1, 1), y.Shape()...)
			var once [][]float32
			for pass := 1; pass <= 2; pass++ {
				if _, err := l.Backward(dy); err != nil {
					t.Fatal(err)
				}
				for i, p := range l.Params() {
					if !p.Trainable {
						continue
					}
					g := host(t, p.Grad)
					if pass == 1 {
						once = append(once, g)
						continue
					}
					for j := range g {
						if d := math.Abs(float64(g[j] - 2*once[i][j])); d > 1e-5*(1+math.Abs(float64(g[j]))) {
							t.Fatalf("%s: after two backward passes grad[%d] = %v, want 2×%v", p.Name, j, g[j], once[i][j])
						}
					}
				}
			}
			if err := layer.ZeroGrad(l); err != nil {
				t.Fatal(err)
			}
			for _, p := range l.Params() {
				if p.Trainable {
					for _, v := range host(t, p.Grad) {
						if v != 0 {
							t.Fatalf("%s not zero after ZeroGrad", p.Name)
						}
					}
				}
			}
		})
	}
}
