package loss_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/loss"
	"github.com/hirez-ml/hirez/engine/tensor"
)

func mustT(t *testing.T, b *ref.Backend, data []float32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromHost(b, data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Free)
	return x
}

// TestGradients checks every loss's gradient by central differences
// (ε = 1e-2, float64 differences of float32 losses, 1e-2 relative bound);
// hinge inputs keep |1 ± x| > ε away from the kink.
func TestGradients(t *testing.T) {
	b := ref.New()
	rng := rand.New(rand.NewPCG(4, 2))
	shape := []int{3, 1, 2, 2}
	n := 12
	logits := make([]float32, n)
	for i := range logits {
		logits[i] = float32(rng.Float64()*6 - 3)
		if math.Abs(math.Abs(float64(logits[i]))-1) < 0.05 {
			logits[i] = 0.5
		}
	}
	targetData := make([]float32, n)
	for i := range targetData {
		targetData[i] = float32(rng.Float64())
	}
	target := mustT(t, b, targetData, shape...)
	bce, mse, hd, hg := loss.NewBCEWithLogits(), loss.NewMSE(), loss.NewHingeD(), loss.NewHingeG()
	defer bce.Free()
	defer mse.Free()
	defer hd.Free()
	defer hg.Free()
	cases := []struct {
		name string
		f    func(x *tensor.Tensor) (loss.Result, error)
	}{
		{"bce label 1", func(x *tensor.Tensor) (loss.Result, error) { return bce.Compute(x, 1) }},
		{"bce label 0.9", func(x *tensor.Tensor) (loss.Result, error) { return bce.Compute(x, 0.9) }},
		{"bce targets", func(x *tensor.Tensor) (loss.Result, error) { return bce.ComputeTarget(x, target) }},
		{"mse", func(x *tensor.Tensor) (loss.Result, error) { return mse.Compute(x, target) }},
		{"hinge D real", func(x *tensor.Tensor) (loss.Result, error) { return hd.Compute(x, true) }},
		{"hinge D fake", func(x *tensor.Tensor) (loss.Result, error) { return hd.Compute(x, false) }},
		{"hinge G", func(x *tensor.Tensor) (loss.Result, error) { return hg.Compute(x) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := mustT(t, b, append([]float32(nil), logits...), shape...)
			r, err := c.f(x)
			if err != nil {
				t.Fatal(err)
			}
			analytic, err := r.Grad.Host()
			if err != nil {
				t.Fatal(err)
			}
			value := func(v []float32) float64 {
				if err := x.CopyFromHost(v); err != nil {
					t.Fatal(err)
				}
				r, err := c.f(x)
				if err != nil {
					t.Fatal(err)
				}
				l, err := r.Value()
				if err != nil {
					t.Fatal(err)
				}
				return float64(l)
			}
			const eps = 1e-2
			work := append([]float32(nil), logits...)
			var worst, scale float64
			for i := range work {
				work[i] = logits[i] + eps
				fp := value(work)
				work[i] = logits[i] - eps
				fm := value(work)
				work[i] = logits[i]
				num := (fp - fm) / (float64(logits[i]+eps) - float64(logits[i]-eps))
				scale = math.Max(scale, math.Abs(num))
				worst = math.Max(worst, math.Abs(num-float64(analytic[i])))
			}
			if worst > 1e-2*scale {
				t.Errorf("max |analytic − numerical| %.3g, max |numerical| %.3g", worst, scale)
			}
		})
	}
}

func TestValues(t *testing.T) {
	b := ref.New()
	x := mustT(t, b, []float32{0, 0, 0, 0}, 4, 1)
	bce := loss.NewBCEWithLogits()
	defer bce.Free()
	r, err := bce.Compute(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Value(); math.Abs(float64(v)-math.Ln2) > 1e-6 {
		t.Errorf("bce(0, 1) = %v, want ln 2", v)
	}
	big := mustT(t, b, []float32{100, -100}, 2, 1)
	r, _ = bce.Compute(big, 1)
	if v, _ := r.Value(); math.Abs(float64(v)-50) > 1e-3 {
		t.Errorf("bce([100 −100], 1) = %v, want 50 (stable for large logits)", v)
	}
	hg := loss.NewHingeG()
	defer hg.Free()
	r, _ = hg.Compute(mustT(t, b, []float32{1, 2, 3}, 3, 1))
	if v, _ := r.Value(); v != -2 {
		t.Errorf("hinge G = %v, want −2", v)
	}
	mse := loss.NewMSE()
	defer mse.Free()
	if _, err := mse.Compute(x, big); err == nil {
		t.Error("mse with a target of another shape succeeded")
	}
}
