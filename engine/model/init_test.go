package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// signal is what flows through a freshly built network: the standard deviation of
// every layer's output in one training-mode forward pass, and the L2 norm of every
// weight gradient for the content loss ½·mean((y − target)²).
type signal struct {
	inStd float64
	names []string
	std   []float64
	grads map[string]float64
}

// measureSignal runs a batch of emoji-like images (discs on a light ground,
// [−1, 1]) through the preset at side, layer by layer, and back.
func measureSignal(t *testing.T, preset string, side, batch int) signal {
	t.Helper()
	b := ref.New()
	n, err := Build(preset, b, Options{Side: side, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	rng := rand.New(rand.NewPCG(3, 4))
	hw := side * side
	in := make([]float32, batch*3*hw)
	for i := range batch {
		cx, cy, r := rng.Float64()*float64(side), rng.Float64()*float64(side), (0.2+0.3*rng.Float64())*float64(side)
		col := [3]float64{2*rng.Float64() - 1, 2*rng.Float64() - 1, 2*rng.Float64() - 1}
		for y := range side {
			for x := range side {
				for c := range 3 {
					v := 0.85
					if math.Hypot(float64(x)-cx, float64(y)-cy) < r {
						v = col[c]
					}
					in[((i*3+c)*side+y)*side+x] = float32(v)
				}
			}
		}
	}
	x, err := tensor.FromHost(b, in, batch, 3, side, side)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	s := signal{inStd: std(in)}
	y := x
	for _, l := range n.Body().Layers() {
		if y, err = l.Forward(y, layer.Train); err != nil {
			t.Fatal(err)
		}
		h, _ := y.Host()
		s.names, s.std = append(s.names, l.Name()), append(s.std, std(h))
	}
	// Content-loss gradient against the nearest-upsampled input (a plausible 2h target).
	out, _ := y.Host()
	dy := make([]float32, len(out))
	o := 2 * side
	for i := range batch {
		for c := range 3 {
			for yy := range o {
				for xx := range o {
					k := ((i*3+c)*o+yy)*o + xx
					dy[k] = (out[k] - in[((i*3+c)*side+yy/2)*side+xx/2]) / float32(len(out))
				}
			}
		}
	}
	d, err := tensor.FromHost(b, dy, y.Shape()...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free()
	if err := n.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Backward(d); err != nil {
		t.Fatal(err)
	}
	s.grads = map[string]float64{}
	for _, p := range n.Params() {
		if !p.Trainable || !strings.HasSuffix(p.Name, ".weight") || len(p.Value.Shape()) != 4 {
			continue
		}
		g, _ := p.Grad.Host()
		var ss float64
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
		s.grads[strings.TrimSuffix(p.Name, ".weight")] = math.Sqrt(ss)
	}
	return s
}

func std(v []float32) float64 {
	var m, q float64
	for _, x := range v {
		m += float64(x)
	}
	m /= float64(len(v))
	for _, x := range v {
		q += (float64(x) - m) * (float64(x) - m)
	}
	return math.Sqrt(q / float64(len(v)))
}

// TestUpsamplerSignalAtInit is the measurement behind upsampler-stable
// (docs/models.md, "Why the Up Sampler stayed grey"): under the DCGAN N(0, 0.02)
// init the study's Up Sampler shrinks the signal by orders of magnitude from input
// to output (its untrained output is flat grey) and its first convs get gradients
// far smaller than its last; with BatchNorm after every hidden conv the signal keeps
// its scale and the gradients stay within a small factor of each other.
func TestUpsamplerSignalAtInit(t *testing.T) {
	const side, batch = 16, 4
	report := func(s signal) string {
		var sb strings.Builder
		for i, n := range s.names {
			fmt.Fprintf(&sb, "%s %.3g  ", n, s.std[i])
		}
		sb.WriteString("\n  grad ‖∇W‖:")
		for _, n := range []string{"enc1", "enc2", "bottleneck", "dec1", "dec2", "dec3", "out"} {
			fmt.Fprintf(&sb, " %s %.3g", n, s.grads[n])
		}
		return sb.String()
	}
	study := measureSignal(t, "upsampler-study", side, batch)
	stable := measureSignal(t, "upsampler-stable", side, batch)
	t.Logf("upsampler-study:  %s", report(study))
	t.Logf("upsampler-stable: %s", report(stable))

	t.Logf("input std %.3g", study.inStd)
	last := func(s signal) float64 { return s.std[len(s.std)-1] }
	if o := last(study); o > 0.01*study.inStd {
		t.Errorf("upsampler-study output std at init %.3g (input %.3g): the vanishing signal this test documents is gone (update docs/models.md)", o, study.inStd)
	}
	if o := last(stable); o < 0.2*stable.inStd {
		t.Errorf("upsampler-stable output std at init %.3g (input %.3g), want ≥ 0.2× the input (not flat grey)", o, stable.inStd)
	}
	// Gradients: balanced across depth in both (small activations times large
	// upstream gradients), but in the study net all of them are tiny.
	for _, name := range []string{"enc1", "bottleneck", "out"} {
		if r := stable.grads[name] / study.grads[name]; r < 50 {
			t.Errorf("‖∇%s‖ stable/study = %.3g, expected the study net's gradients ≥ 50× smaller", name, r)
		}
	}
}
