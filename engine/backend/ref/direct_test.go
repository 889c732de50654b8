package ref_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/backendtest"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// directConv is the textbook seven-loop convolution, written independently of
// ref's im2col path so the oracle itself is checked.
func directConv(c backend.Conv2D, x, w, bias []float32) []float32 {
	o := c.OutDims()
	y := make([]float32, o.Size())
	for n := 0; n < o.N; n++ {
		for co := 0; co < o.C; co++ {
			for oh := 0; oh < o.H; oh++ {
				for ow := 0; ow < o.W; ow++ {
					s := float64(bias[co])
					for ci := 0; ci < c.In.C; ci++ {
						for ki := 0; ki < c.KH; ki++ {
							for kj := 0; kj < c.KW; kj++ {
								ih, iw := oh*c.Stride-c.Pad+ki, ow*c.Stride-c.Pad+kj
								if ih < 0 || ih >= c.In.H || iw < 0 || iw >= c.In.W {
									continue
								}
								s += float64(x[((n*c.In.C+ci)*c.In.H+ih)*c.In.W+iw]) * float64(w[((co*c.In.C+ci)*c.KH+ki)*c.KW+kj])
							}
						}
					}
					y[((n*o.C+co)*o.H+oh)*o.W+ow] = float32(s)
				}
			}
		}
	}
	return y
}

func TestConvMatchesDirect(t *testing.T) {
	b := ref.New()
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = rng.Float32()*2 - 1
		}
		return v
	}
	up := func(h []float32) backend.Buffer {
		x, err := b.Alloc(len(h))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Upload(x, h); err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, c := range backendtest.ConvShapes(false) {
		xs, ws, bs := rnd(c.In.Size()), rnd(c.WeightLen()), rnd(c.Out)
		y := up(make([]float32, c.OutDims().Size()))
		if err := b.Conv2DForward(c, up(xs), up(ws), up(bs), y); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, y.Len())
		if err := b.Download(got, y); err != nil {
			t.Fatal(err)
		}
		want := directConv(c, xs, ws, bs)
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%+v: y[%d] = %v, want %v", c, i, got[i], want[i])
			}
		}
	}
}

// TestKnownValues pins semantics that PyTorch defines: pixel shuffle order,
// max-pool ties, the unbiased running variance, ReLU's gradient at 0.
func TestKnownValues(t *testing.T) {
	b := ref.New()
	buf := func(h ...float32) backend.Buffer {
		x, _ := b.Alloc(len(h))
		_ = b.Upload(x, h)
		return x
	}
	get := func(x backend.Buffer) string {
		h := make([]float32, x.Len())
		_ = b.Download(h, x)
		return fmt.Sprint(h)
	}
	// torch.nn.PixelShuffle(2)(torch.arange(8.).view(1, 8, 1, 1)) =
	// [[0 1] [2 3]] and [[4 5] [6 7]].
	y := buf(make([]float32, 8)...)
	if err := b.PixelShuffle(backend.Dims{N: 1, C: 8, H: 1, W: 1}, 2, buf(0, 1, 2, 3, 4, 5, 6, 7), y); err != nil {
		t.Fatal(err)
	}
	if got := get(y); got != "[0 1 2 3 4 5 6 7]" {
		t.Errorf("pixel shuffle: %s", got)
	}
	y = buf(make([]float32, 8)...)
	if err := b.PixelShuffle(backend.Dims{N: 1, C: 4, H: 1, W: 2}, 2, buf(0, 1, 2, 3, 4, 5, 6, 7), y); err != nil {
		t.Fatal(err)
	}
	// channels (i, j) = (0,0): [0 1], (0,1): [2 3], (1,0): [4 5], (1,1): [6 7]
	if got := get(y); got != "[0 2 1 3 4 6 5 7]" {
		t.Errorf("pixel shuffle 1×4×1×2: %s", got)
	}
	// Running variance uses the unbiased estimate: values 1, 3 → var 2.
	d := backend.Dims{N: 2, C: 1, H: 1, W: 1}
	bn := backend.BatchNorm{Dims: d, Epsilon: 1e-5, Momentum: 1}
	rm, rv, sm, si := buf(0), buf(1), buf(0), buf(0)
	if err := b.BatchNormTrain(bn, buf(1, 3), buf(1), buf(0), buf(0, 0), sm, si, rm, rv); err != nil {
		t.Fatal(err)
	}
	if get(rm) != "[2]" || get(rv) != "[2]" {
		t.Errorf("running mean %s var %s, want 2 and 2", get(rm), get(rv))
	}
	dx := buf(0, 0, 0)
	if err := b.ActivateBackward(backend.ReLU, 0, buf(-1, 0, 1), nil, buf(5, 5, 5), dx); err != nil {
		t.Fatal(err)
	}
	if got := get(dx); got != "[0 0 5]" {
		t.Errorf("relu backward: %s", got)
	}
	// NaN propagates through activations.
	yn := buf(0, 0)
	if err := b.Activate(backend.ReLU, 0, buf(float32(math.NaN()), -1), yn); err != nil {
		t.Fatal(err)
	}
	if got := get(yn); got != "[NaN 0]" {
		t.Errorf("relu(NaN): %s", got)
	}
}
