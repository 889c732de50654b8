package layer_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// snCase is a layer with spectral norm and the same layer without it, which
// the tests drive with W/σ computed here.
type snCase struct {
	name  string
	shape []int // input
	make  func(b backend.Backend, sn bool) (layer.Layer, error)
}

func snCases() []snCase {
	return []snCase{
		{"conv k3 stride 2", []int{2, 2, 7, 6}, func(b backend.Backend, sn bool) (layer.Layer, error) {
			return layer.NewConv2D(b, "c", layer.Conv2DConfig{In: 2, Out: 3, Kernel: 3, Stride: 2, Pad: 1, SpectralNorm: sn})
		}},
		{"conv k4 no bias", []int{1, 3, 6, 6}, func(b backend.Backend, sn bool) (layer.Layer, error) {
			return layer.NewConv2D(b, "c", layer.Conv2DConfig{In: 3, Out: 4, Kernel: 4, Stride: 2, Pad: 1, NoBias: true, SpectralNorm: sn})
		}},
		{"dense", []int{3, 7}, func(b backend.Backend, sn bool) (layer.Layer, error) {
			return layer.NewDense(b, "fc", layer.DenseConfig{In: 7, Out: 5, SpectralNorm: sn})
		}},
		// One output, as D's last layer: u is ±1, σ = ‖W‖.
		{"dense out 1", []int{2, 3, 2, 2}, func(b backend.Backend, sn bool) (layer.Layer, error) {
			return layer.NewDense(b, "fc", layer.DenseConfig{In: 12, Out: 1, SpectralNorm: sn})
		}},
	}
}

// snParts returns the layer's weight, bias (or nil) and u parameters.
func snParts(t *testing.T, l layer.Layer) (w, bias, u *layer.Param) {
	t.Helper()
	for _, p := range l.Params() {
		switch {
		case strings.HasSuffix(p.Name, ".weight_u"):
			u = p
		case strings.HasSuffix(p.Name, ".weight"):
			w = p
		case strings.HasSuffix(p.Name, ".bias"):
			bias = p
		}
	}
	if w == nil || u == nil {
		t.Fatalf("%s: params %v lack weight or weight_u", l.Name(), l.Params())
	}
	return w, bias, u
}

// powerStep is the layer's training-mode iteration in float64: v = Wᵀu/‖Wᵀu‖,
// u' = Wv/‖Wv‖, σ = u'ᵀWv.
func powerStep(w []float32, u []float64) (u2, v []float64, sigma float64) {
	rows, cols := len(u), len(w)/len(u)
	v = make([]float64, cols)
	for i := range rows {
		for j := range cols {
			v[j] += u[i] * float64(w[i*cols+j])
		}
	}
	unit(v)
	wv := matVec(w, v)
	u2 = append([]float64(nil), wv...)
	unit(u2)
	for i := range rows {
		sigma += u2[i] * wv[i]
	}
	return u2, v, sigma
}

func matVec(w []float32, v []float64) []float64 {
	rows := len(w) / len(v)
	out := make([]float64, rows)
	for i := range rows {
		for j := range v {
			out[i] += float64(w[i*len(v)+j]) * v[j]
		}
	}
	return out
}

func unit(x []float64) {
	var n float64
	for _, v := range x {
		n += v * v
	}
	n = math.Max(math.Sqrt(n), 1e-12)
	for i := range x {
		x[i] /= n
	}
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// scaled is w·k rounded to float32.
func scaled(w []float32, k float64) []float32 {
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = float32(float64(v) * k)
	}
	return out
}

// sigmaFixed is uᵀWv.
func sigmaFixed(w []float32, u, v []float64) float64 {
	var s float64
	for i, x := range matVec(w, v) {
		s += u[i] * x
	}
	return s
}

// TestSpectralNormBackwardFixedUV: a training forward is the plain layer with
// W/σ, σ = uᵀWv after one power iteration from the stored u (stored back), and
// Backward is the exact gradient of W ↦ Σ dy ⊙ plain(x; W/(uᵀWv)) with u and v
// held at that forward's values, for a u far from converged (central
// differences, as gradcheck_test.go). dx and the bias gradient are the plain
// layer's at W/σ.
func TestSpectralNormBackwardFixedUV(t *testing.T) {
	b := ref.New()
	defer b.Close()
	for i, c := range snCases() {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			l, err := c.make(b, true)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Free()
			p, err := c.make(b, false)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Free()
			if err := layer.Initialize(l, layer.PyTorchInit, rng); err != nil {
				t.Fatal(err)
			}
			w, bias, up := snParts(t, l)
			if up.Trainable || !w.Trainable || up.Value.Len() != w.Value.Dim(0) {
				t.Fatalf("weight_u: trainable %v, %d values for %d outputs", up.Trainable, up.Value.Len(), w.Value.Dim(0))
			}
			var pw, pbias *layer.Param
			for _, q := range p.Params() {
				if strings.HasSuffix(q.Name, ".weight") {
					pw = q
				} else {
					pbias = q
				}
			}
			if bias != nil {
				if err := pbias.Value.CopyFromHost(host(t, bias.Value)); err != nil {
					t.Fatal(err)
				}
			}
			wh, u0 := host(t, w.Value), f64(host(t, up.Value))
			u1, v, sigma := powerStep(wh, u0)

			n, _ := tensor.Size(c.shape)
			x := mustT(t, b, uniform(rng, n, -1, 1), c.shape...)
			y, err := l.Forward(x, layer.Train)
			if err != nil {
				t.Fatal(err)
			}
			yl := append([]float32(nil), host(t, y)...)
			for k, got := range host(t, up.Value) {
				if math.Abs(float64(got)-u1[k]) > 1e-6 {
					t.Fatalf("stored u[%d] = %v, one power iteration gives %v", k, got, u1[k])
				}
			}
			if err := pw.Value.CopyFromHost(scaled(wh, 1/sigma)); err != nil {
				t.Fatal(err)
			}
			yp, err := p.Forward(x, layer.Train)
			if err != nil {
				t.Fatal(err)
			}
			if e, at := maxRelErr(yl, f64(host(t, yp))); e > 1e-5 {
				t.Errorf("forward differs from the plain layer at W/σ: %.3g at %d", e, at)
			}
			dyv := uniform(rng, yp.Len(), -1, 1)
			dy := mustT(t, b, dyv, yp.Shape()...)
			if err := layer.ZeroGrad(p); err != nil {
				t.Fatal(err)
			}
			dxp, err := p.Backward(dy)
			if err != nil {
				t.Fatal(err)
			}
			dxPlain := append([]float32(nil), host(t, dxp)...)
			var dbPlain []float32
			if pbias != nil {
				dbPlain = host(t, pbias.Grad)
			}
			if err := layer.ZeroGrad(l); err != nil {
				t.Fatal(err)
			}
			dx, err := l.Backward(dy)
			if err != nil {
				t.Fatal(err)
			}
			if e, at := maxRelErr(host(t, dx), f64(dxPlain)); e > 1e-5 {
				t.Errorf("dx: %.3g from the plain layer's at W/σ, at %d", e, at)
			}
			if bias != nil {
				if e, at := maxRelErr(host(t, bias.Grad), f64(dbPlain)); e > 1e-5 {
					t.Errorf("dbias: %.3g from the plain layer's, at %d", e, at)
				}
			}
			analytic := host(t, w.Grad)

			// F(W') = Σ dy ⊙ plain(x; W'/(u1ᵀW'v)).
			wt := mustT(t, b, wh, w.Value.Shape()...)
			f := func() float64 {
				w2 := host(t, wt)
				if err := pw.Value.CopyFromHost(scaled(w2, 1/sigmaFixed(w2, u1, v))); err != nil {
					t.Fatal(err)
				}
				y, err := p.Forward(x, layer.Infer)
				if err != nil {
					t.Fatal(err)
				}
				var s float64
				for k, val := range host(t, y) {
					s += float64(dyv[k]) * float64(val)
				}
				return s
			}
			if e, at := maxRelErr(analytic, numGrad(t, wt, f)); e > fdTol {
				t.Errorf("dW: relative error %.3g at %d against finite differences with u, v fixed", e, at)
			}
		})
	}
}

// TestSpectralNormGradients is gradcheck_test.go's check through the layer
// itself, u included: once u has converged to W's top left singular vector,
// one more power iteration is stationary to first order, so the central
// differences of the whole forward (u restored before each) match the
// u, v-constant backward.
func TestSpectralNormGradients(t *testing.T) {
	b := ref.New()
	defer b.Close()
	for i, c := range snCases() {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 12))
			l, err := c.make(b, true)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Free()
			if err := layer.Initialize(l, layer.PyTorchInit, rng); err != nil {
				t.Fatal(err)
			}
			_, bias, up := snParts(t, l)
			if bias != nil {
				if err := bias.Value.CopyFromHost(uniform(rng, bias.Value.Len(), -1, 1)); err != nil {
					t.Fatal(err)
				}
			}
			n, _ := tensor.Size(c.shape)
			x := mustT(t, b, uniform(rng, n, -1, 1), c.shape...)
			for range 300 {
				if _, err := l.Forward(x, layer.Train); err != nil {
					t.Fatal(err)
				}
			}
			u0 := host(t, up.Value)
			y, err := l.Forward(x, layer.Train)
			if err != nil {
				t.Fatal(err)
			}
			w := uniform(rng, y.Len(), -1, 1)
			dy := mustT(t, b, w, y.Shape()...)
			f := func() float64 {
				if err := up.Value.CopyFromHost(u0); err != nil {
					t.Fatal(err)
				}
				y, err := l.Forward(x, layer.Train)
				if err != nil {
					t.Fatal(err)
				}
				var s float64
				for k, v := range host(t, y) {
					s += float64(w[k]) * float64(v)
				}
				return s
			}
			if err := layer.ZeroGrad(l); err != nil {
				t.Fatal(err)
			}
			f()
			dx, err := l.Backward(dy)
			if err != nil {
				t.Fatal(err)
			}
			analytic := append([]float32(nil), host(t, dx)...)
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
		})
	}
}

// TestSpectralNormInfer: inference uses the stored u and leaves it alone (two
// eval forwards, same bytes, same u); training moves u; after enough training
// forwards σ is W's largest singular value, so W/σ has spectral norm 1.
func TestSpectralNormInfer(t *testing.T) {
	b := ref.New()
	defer b.Close()
	c := snCases()[0]
	rng := rand.New(rand.NewPCG(5, 6))
	l, err := c.make(b, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Free()
	p, err := c.make(b, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	if err := layer.Initialize(l, layer.DCGANInit, rng); err != nil {
		t.Fatal(err)
	}
	w, bias, up := snParts(t, l)
	if names := []string{w.Name, bias.Name, up.Name}; strings.Join(names, " ") != "c.weight c.bias c.weight_u" {
		t.Errorf("params %v", names)
	}
	n, _ := tensor.Size(c.shape)
	x := mustT(t, b, uniform(rng, n, -1, 1), c.shape...)
	u0 := host(t, up.Value)
	y1, err := l.Forward(x, layer.Infer)
	if err != nil {
		t.Fatal(err)
	}
	a := append([]float32(nil), host(t, y1)...)
	y2, err := l.Forward(x, layer.Infer)
	if err != nil {
		t.Fatal(err)
	}
	if string(f32bytes(a)) != string(f32bytes(host(t, y2))) || string(f32bytes(u0)) != string(f32bytes(host(t, up.Value))) {
		t.Error("an eval forward changed u or its output")
	}
	if _, err := l.Backward(mustT(t, b, a, y1.Shape()...)); err == nil {
		t.Error("backward after an eval forward")
	}
	if _, err := l.Forward(x, layer.Train); err != nil {
		t.Fatal(err)
	}
	if string(f32bytes(u0)) == string(f32bytes(host(t, up.Value))) {
		t.Error("a training forward left u as it was")
	}
	for range 200 {
		if _, err := l.Forward(x, layer.Train); err != nil {
			t.Fatal(err)
		}
	}
	// σ₁(W) by many power iterations here.
	wh := host(t, w.Value)
	u := f64(u0)
	var sigma float64
	for range 2000 {
		u, _, sigma = powerStep(wh, u)
	}
	if err := p.Params()[0].Value.CopyFromHost(scaled(wh, 1/sigma)); err != nil {
		t.Fatal(err)
	}
	if err := p.Params()[1].Value.CopyFromHost(host(t, bias.Value)); err != nil {
		t.Fatal(err)
	}
	yl, err := l.Forward(x, layer.Infer)
	if err != nil {
		t.Fatal(err)
	}
	got := append([]float32(nil), host(t, yl)...)
	yp, err := p.Forward(x, layer.Infer)
	if err != nil {
		t.Fatal(err)
	}
	if e, at := maxRelErr(got, f64(host(t, yp))); e > 1e-4 {
		t.Errorf("converged eval forward differs from W/σ₁(W) by %.3g at %d", e, at)
	}

	// Zero weights have no spectral norm.
	if err := w.Value.CopyFromHost(make([]float32, w.Value.Len())); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Forward(x, layer.Train); err == nil || !strings.Contains(err.Error(), "σ") {
		t.Errorf("zero weights: %v", err)
	}
}

func f32bytes(v []float32) []byte {
	out := make([]byte, 0, 4*len(v))
	for _, x := range v {
		u := math.Float32bits(x)
		out = append(out, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return out
}
