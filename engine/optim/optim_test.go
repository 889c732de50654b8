package optim_test

import (
	"math"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/optim"
	"github.com/hirez-ml/hirez/engine/tensor"
)

func param(t *testing.T, b *ref.Backend, name string, val, grad []float32) *layer.Param {
	t.Helper()
	v, err := tensor.FromHost(b, val, len(val))
	if err != nil {
		t.Fatal(err)
	}
	g, err := tensor.FromHost(b, grad, len(grad))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Free)
	t.Cleanup(g.Free)
	return &layer.Param{Name: name, Value: v, Grad: g, Trainable: true}
}

func host(t *testing.T, x *tensor.Tensor) []float32 {
	t.Helper()
	h, err := x.Host()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestAdamMatchesFormula follows torch.optim.Adam in float64 by hand.
func TestAdamMatchesFormula(t *testing.T) {
	b := ref.New()
	p := param(t, b, "w", []float32{0.5, -1, 2}, []float32{0.1, -0.3, 0})
	buf := &layer.Param{Name: "bn.running_mean", Value: p.Value} // not trainable: skipped
	cfg := optim.AdamConfig{LR: 0.01, Beta1: 0.5, Beta2: 0.9, Epsilon: 1e-8}
	a, err := optim.NewAdam([]*layer.Param{p, buf}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	w := []float64{0.5, -1, 2}
	g := []float64{0.1, -0.3, 0}
	m, v := make([]float64, 3), make([]float64, 3)
	for step := 1; step <= 5; step++ {
		if err := a.Step(); err != nil {
			t.Fatal(err)
		}
		for i := range w {
			m[i] = 0.5*m[i] + 0.5*g[i]
			v[i] = 0.9*v[i] + 0.1*g[i]*g[i]
			bc1, bc2 := 1-math.Pow(0.5, float64(step)), 1-math.Pow(0.9, float64(step))
			w[i] -= 0.01 / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + 1e-8)
		}
	}
	for i, got := range host(t, p.Value) {
		if math.Abs(float64(got)-w[i]) > 1e-6 {
			t.Errorf("w[%d] = %v, want %v", i, got, w[i])
		}
	}
	if a.Steps() != 5 {
		t.Errorf("Steps() = %d", a.Steps())
	}
}

// TestAdamStateRoundTrip checks that a restored optimizer continues exactly
// as the original would.
func TestAdamStateRoundTrip(t *testing.T) {
	b := ref.New()
	cfg := optim.DCGANAdam()
	cfg.Prefix = "adam_g"
	p1 := param(t, b, "conv1.weight", []float32{1, 2, 3, 4}, []float32{0.5, -0.5, 0.25, 1})
	p2 := param(t, b, "conv1.weight", []float32{1, 2, 3, 4}, []float32{0.5, -0.5, 0.25, 1})
	a1, err := optim.NewAdam([]*layer.Param{p1}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Free()
	for range 3 {
		if err := a1.Step(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := a1.State()
	if err != nil {
		t.Fatal(err)
	}
	saved := map[string][]float32{}
	var names []string
	for _, s := range st {
		names = append(names, s.Name)
		saved[s.Name] = host(t, s.Value)
	}
	if want := []string{"adam_g.m.conv1.weight", "adam_g.v.conv1.weight", "adam_g.step"}; !equal(names, want) {
		t.Fatalf("state names %v, want %v", names, want)
	}
	if saved["adam_g.step"][0] != 3 {
		t.Errorf("saved step %v", saved["adam_g.step"])
	}
	if err := p2.Value.CopyFromHost(host(t, p1.Value)); err != nil {
		t.Fatal(err)
	}
	a2, err := optim.NewAdam([]*layer.Param{p2}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Free()
	if err := a2.Load(func(n string) ([]float32, bool) { v, ok := saved[n]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if a2.Steps() != 3 {
		t.Errorf("restored Steps() = %d", a2.Steps())
	}
	for _, a := range []*optim.Adam{a1, a2} {
		if err := a.Step(); err != nil {
			t.Fatal(err)
		}
	}
	h1, h2 := host(t, p1.Value), host(t, p2.Value)
	for i := range h1 {
		if h1[i] != h2[i] {
			t.Fatalf("after restore: %v vs %v", h1, h2)
		}
	}
	if err := a2.Load(func(string) ([]float32, bool) { return nil, false }); err == nil {
		t.Error("loading an empty state succeeded")
	}
}

func TestEMA(t *testing.T) {
	b := ref.New()
	p := param(t, b, "fc.weight", []float32{1, 2}, []float32{0, 0})
	rm := param(t, b, "bn.running_mean", []float32{5, 5}, []float32{0, 0})
	rm.Trainable = false
	e, err := optim.NewEMA([]*layer.Param{p, rm}, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	if err := p.Value.CopyFromHost([]float32{11, 12}); err != nil {
		t.Fatal(err)
	}
	if err := rm.Value.CopyFromHost([]float32{7, 8}); err != nil {
		t.Fatal(err)
	}
	if err := e.Update(); err != nil {
		t.Fatal(err)
	}
	sh := e.Params()
	if sh[0].Name != "fc.weight" || sh[1].Name != "bn.running_mean" {
		t.Errorf("shadow names %q %q", sh[0].Name, sh[1].Name)
	}
	want := [][]float32{{2, 3}, {7, 8}} // 0.9·1 + 0.1·11 = 2; buffers copied
	for i, s := range sh {
		got := host(t, s.Value)
		for j := range got {
			if math.Abs(float64(got[j]-want[i][j])) > 1e-6 {
				t.Errorf("%s = %v, want %v", s.Name, got, want[i])
			}
		}
	}
	dst := param(t, b, "fc.weight", []float32{0, 0}, []float32{0, 0})
	dst2 := param(t, b, "bn.running_mean", []float32{0, 0}, []float32{0, 0})
	if err := e.CopyTo([]*layer.Param{dst, dst2}); err != nil {
		t.Fatal(err)
	}
	if got := host(t, dst.Value); math.Abs(float64(got[0])-2) > 1e-6 {
		t.Errorf("CopyTo: %v", got)
	}
	if err := e.CopyTo([]*layer.Param{dst2, dst}); err == nil {
		t.Error("CopyTo with mismatched names succeeded")
	}
	if _, err := optim.NewEMA(nil, 1.5); err == nil {
		t.Error("decay 1.5 accepted")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEMAWarmup: UpdateAt(n) uses min(decay, (1+n)/(10+n)); after the first step
// the shadow is mostly the new parameters, not the initial ones.
func TestEMAWarmup(t *testing.T) {
	for _, c := range []struct {
		decay float32
		n     int
		want  float32
	}{{0.999, 1, 2.0 / 11}, {0.999, 100, 101.0 / 110}, {0.999, 100000, 0.999}, {0.5, 100, 0.5}} {
		if got := optim.WarmupDecay(c.decay, c.n); math.Abs(float64(got-c.want)) > 1e-7 {
			t.Errorf("WarmupDecay(%v, %d) = %v, want %v", c.decay, c.n, got, c.want)
		}
	}
	b := ref.New()
	p := param(t, b, "fc.weight", []float32{0}, []float32{0})
	e, err := optim.NewEMA([]*layer.Param{p}, 0.999)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	if err := p.Value.CopyFromHost([]float32{11}); err != nil {
		t.Fatal(err)
	}
	if err := e.UpdateAt(1); err != nil {
		t.Fatal(err)
	}
	// (2/11)·0 + (9/11)·11 = 9
	if got := host(t, e.Params()[0].Value); math.Abs(float64(got[0])-9) > 1e-5 {
		t.Errorf("shadow after UpdateAt(1) = %v, want 9", got)
	}
}
