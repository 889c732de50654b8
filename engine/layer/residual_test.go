package layer_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Finite-difference checks of Residual (identity and bicubic skips) and Bicubic.
func TestGradientsResidual(t *testing.T) {
	b := ref.New()
	defer b.Close()
	mk := func(t *testing.T, specs ...layer.Layer) *layer.Sequential {
		s, err := layer.NewSequential("body", specs...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	conv := func(t *testing.T, name string, in, out, k int) layer.Layer {
		c, err := layer.NewConv2D(b, name, layer.Conv2DConfig{In: in, Out: out, Kernel: k, Pad: layer.PadSame})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("bicubic", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 1))
		l, err := layer.NewBicubic("bic", 2)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Free()
		x := mustT(t, b, uniform(rng, 2*3*5*4, -1, 1), 2, 3, 5, 4)
		gradCheck(t, b, l, x, rng)
	})
	t.Run("identity skip", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(2, 1))
		body := mk(t, conv(t, "conv1", 3, 4, 3), layer.NewTanh("act1"), conv(t, "conv2", 4, 3, 3))
		l, err := layer.NewResidual("res", body, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Free()
		if err := layer.Initialize(l, layer.PyTorchInit, rng); err != nil {
			t.Fatal(err)
		}
		x := mustT(t, b, uniform(rng, 2*3*5*6, -1, 1), 2, 3, 5, 6)
		gradCheck(t, b, l, x, rng)
	})
	t.Run("bicubic skip", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 1))
		ps, _ := layer.NewPixelShuffle("shuffle", 2)
		body := mk(t, conv(t, "conv1", 3, 4, 3), layer.NewTanh("act1"), conv(t, "conv2", 4, 12, 3), ps)
		bic, _ := layer.NewBicubic("bicubic", 2)
		l, err := layer.NewResidual("res", body, bic)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Free()
		if err := layer.Initialize(l, layer.PyTorchInit, rng); err != nil {
			t.Fatal(err)
		}
		if n := len(l.Params()); n != 4 {
			t.Errorf("%d params, want the body's 4", n)
		}
		x := mustT(t, b, uniform(rng, 1*3*4*5, -1, 1), 1, 3, 4, 5)
		gradCheck(t, b, l, x, rng)
	})
}

// Bicubic is MATLAB's imresize ×2 (engine/metrics), short of the uint8 rounding
// metrics does between its two passes: within one level everywhere, borders
// included.
func TestBicubicMatchesImresize(t *testing.T) {
	b := ref.New()
	defer b.Close()
	rng := rand.New(rand.NewPCG(5, 5))
	for _, r := range []int{2, 3} {
		w, h := 9, 7
		img := imageio.NewRGB(w, h)
		for i := range img.Pix {
			img.Pix[i] = uint8(40 + rng.IntN(176)) // no overshoot past 0 or 255 to clamp between passes
		}
		want, err := metrics.ImresizeTo(img, r*w, r*h)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := layer.NewBicubic("bic", r)
		x := mustT(t, b, imageio.AppendCHW01(nil, img), 1, 3, h, w)
		y, err := l.Forward(x, layer.Infer)
		if err != nil {
			t.Fatal(err)
		}
		if !tensor.SameShape(y.Shape(), []int{1, 3, r * h, r * w}) {
			t.Fatalf("shape %v", y.Shape())
		}
		got, err := imageio.FromCHW01(host(t, y), r*w, r*h)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range got.Pix {
			worst = math.Max(worst, math.Abs(float64(got.Pix[i])-float64(want.Pix[i])))
		}
		if worst > 1 {
			t.Errorf("×%d: differs from metrics.ImresizeTo by %v levels", r, worst)
		}
		l.Free()
	}
}
