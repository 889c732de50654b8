package choose

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// net is a small generator-then-discriminator stack touching every layer kind.
func net(t *testing.T, b backend.Backend) *layer.Sequential {
	t.Helper()
	must := func(l layer.Layer, err error) layer.Layer {
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	s, err := layer.NewSequential("net",
		must(layer.NewDense(b, "fc", layer.DenseConfig{In: 8, Out: 16 * 4 * 4})),
		must(layer.NewReshape("view", 16, 4, 4)),
		must(layer.NewBatchNorm(b, "bn0", layer.BatchNormConfig{Channels: 16})),
		layer.NewReLU("r0"),
		layer.NewUpSample2x("up"),
		must(layer.NewConv2D(b, "conv1", layer.Conv2DConfig{In: 16, Out: 8, Kernel: 3, Pad: layer.PadSame})),
		layer.NewLeakyReLU("r1", 0.2),
		layer.NewMaxPool2("pool"),
		must(layer.NewConv2D(b, "conv2", layer.Conv2DConfig{In: 8, Out: 8, Kernel: 5, Stride: 2, Pad: 2})),
		layer.NewTanh("t"),
		must(layer.NewPixelShuffle("ps", 2)),
		layer.NewSigmoid("s"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := layer.Initialize(s, layer.PyTorchInit, rand.New(rand.NewPCG(3, 3))); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLayersAgree runs the same network forward and backward on every built-in
// backend and on ref, and compares outputs and parameter gradients. An
// inference-only backend (cpu-bf16) runs the inference forward only, within a
// bfloat16 bound, and must refuse the training forward or backward.
func TestLayersAgree(t *testing.T) {
	oracle, _ := Open("ref")
	defer oracle.Close()
	for _, name := range All() {
		if name == "ref" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			cand, err := Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer cand.Close()
			rng := rand.New(rand.NewPCG(1, 1))
			z := make([]float32, 5*8)
			for i := range z {
				z[i] = float32(rng.NormFloat64())
			}
			inferOnly := InferenceOnly(name)
			tol := 1e-4
			if inferOnly {
				tol = 3e-2 // bfloat16: 8 significant bits (see engine/backend/cpu/bf16_test.go)
			}
			results := [2]map[string][]float32{}
			for i, b := range []backend.Backend{oracle, cand} {
				n := net(t, b)
				defer n.Free()
				x, err := tensor.FromHost(b, z, 5, 8)
				if err != nil {
					t.Fatal(err)
				}
				defer x.Free()
				res := map[string][]float32{}
				modes := []layer.Mode{layer.Train, layer.Infer}
				if inferOnly { // both sides: the training forward would move BatchNorm's running statistics
					modes = modes[1:]
				}
				for _, mode := range modes {
					y, err := n.Forward(x, mode)
					if err != nil {
						t.Fatal(err)
					}
					res["y."+mode.String()], _ = y.Host()
					if mode == layer.Train {
						dy, _ := tensor.FromHost(b, res["y.train"], y.Shape()...)
						defer dy.Free()
						dx, err := n.Backward(dy)
						if err != nil {
							t.Fatal(err)
						}
						res["dx"], _ = dx.Host()
					}
				}
				if inferOnly {
					if i == 1 {
						if _, err := n.Forward(x, layer.Train); err == nil { // BatchNorm in training mode
							t.Error("inference-only backend ran a training forward")
						}
					}
					results[i] = res
					continue
				}
				for _, p := range n.Params() {
					res[p.Name], _ = p.Value.Host()
					if p.Trainable {
						res[p.Name+".grad"], _ = p.Grad.Host()
					}
				}
				results[i] = res
			}
			for k, want := range results[0] {
				got := results[1][k]
				var worst, scale float64
				for i := range want {
					scale = math.Max(scale, math.Abs(float64(want[i])))
					worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
				}
				if worst > tol*math.Max(scale, 1e-6) {
					t.Errorf("%s: max error %.3g (max |ref| %.3g)", k, worst, scale)
				}
			}
		})
	}
}
