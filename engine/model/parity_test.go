package model

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Parity with PyTorch: scripts/fixtures/torch_presets.py builds every preset as a
// torch module, fills it with hashFill, and records the forward (eval and train),
// the backward of sum(y·dy) and one Adam step in testdata/parity_<preset>.safetensors.

// parityTol is the largest accepted relative error, max|got−want| / max|want|
// per tensor.
const parityTol = 1e-4

// hashFill mirrors fill() in torch_presets.py: u = splitmix64(fnv1a(name) + i) >> 40
// over 2^24, mapped per tensor kind with float64 maths, then rounded to float32.
func hashFill(name string, shape []int) []float32 {
	h := uint64(0xcbf29ce484222325)
	for _, b := range []byte(name) {
		h = (h ^ uint64(b)) * 0x100000001b3
	}
	n := prod(shape)
	out := make([]float32, n)
	fanIn := 1
	if len(shape) > 1 {
		fanIn = prod(shape[1:])
	}
	for i := range out {
		z := h + uint64(i) + 0x9e3779b97f4a7c15
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		u := float64(z>>40) / (1 << 24)
		var v float64
		switch {
		case strings.HasSuffix(name, ".running_var"):
			v = 1 + 0.5*u
		case strings.HasSuffix(name, ".running_mean"), strings.HasSuffix(name, ".bias"):
			v = 0.1 * (2*u - 1)
		case strings.HasSuffix(name, ".weight_u"): // spectral norm's u: any vector, not necessarily unit
			v = 2*u - 1
		case strings.HasSuffix(name, ".weight") && len(shape) == 1:
			v = 1 + 0.2*(2*u-1)
		case strings.HasSuffix(name, ".weight"):
			v = (2*u - 1) * math.Sqrt(6.0/float64(fanIn))
		case name == "x.latent":
			v = 1.7 * (2*u - 1)
		case name == "x.signed" || name == "dy":
			v = 2*u - 1
		case name == "x.unit":
			v = u
		default:
			panic(name)
		}
		out[i] = float32(v)
	}
	return out
}

// sampleIdx mirrors sample_idx() in torch_presets.py.
func sampleIdx(n int) []int {
	const m = 256
	idx := make([]int, 0, m)
	if n <= m {
		for i := range n {
			idx = append(idx, i)
		}
		return idx
	}
	for k := range m {
		idx = append(idx, k*(n-1)/(m-1))
	}
	return idx
}

func relErr(got, want []float32) float64 {
	var diff, scale float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	if scale == 0 {
		return diff
	}
	return diff / scale
}

// eachBackend runs f on every backend built into this test binary (ref always;
// cpu with cgo and oneDNN).
func eachBackend(t *testing.T, f func(t *testing.T, b backend.Backend)) {
	for _, name := range choose.Names() {
		t.Run(name, func(t *testing.T) {
			b, err := choose.Open(name)
			if err != nil {
				t.Skipf("backend %s: %v", name, err)
			}
			defer b.Close()
			f(t, b)
		})
	}
}

func TestParityWithPyTorch(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend.Backend) {
		for _, p := range Presets() {
			t.Run(p.Name, func(t *testing.T) { parity(t, b, p.Name) })
		}
	})
}

func parity(t *testing.T, b backend.Backend, preset string) {
	if c, err := ConfigFor(preset, 0); err == nil && (c.Input != "" || c.Residual) {
		// torch has no MATLAB bicubic (F.interpolate's bicubic uses a = −0.75 and
		// clamped borders); these are covered by TestResidualStartsAtBicubic and the
		// finite-difference checks of layer.Bicubic and layer.Residual instead.
		t.Skipf("%s: no torch fixture for the MATLAB-bicubic step", preset)
	}
	fx, err := safetensors.ReadFile("testdata/parity_"+preset+".safetensors", safetensors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *safetensors.Tensor {
		t.Helper()
		tt, ok := fx.Tensor(name)
		if !ok {
			t.Fatalf("fixture has no %q", name)
		}
		return tt
	}
	side, _ := strconv.Atoi(fx.Metadata["side"])
	net, err := Build(preset, b, Options{Side: side})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	// The torch module's state_dict names are ours: every trainable parameter has a
	// gradient in the fixture, every BatchNorm its running statistics.
	for _, prm := range net.Params() {
		if err := prm.Value.CopyFromHost(hashFill(prm.Name, prm.Value.Shape())); err != nil {
			t.Fatal(err)
		}
		if prm.Trainable {
			get("grad/" + prm.Name)
		} else {
			get("running/" + prm.Name)
		}
	}
	xs := get("x")
	x, err := tensor.FromHost(b, xs.F32, xs.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	worst := map[string]float64{}
	check := func(what string, got []float32, want *safetensors.Tensor, idx []int) {
		t.Helper()
		if idx != nil {
			s := make([]float32, len(idx))
			for i, j := range idx {
				s[i] = got[j]
			}
			got = s
		}
		if len(got) != len(want.F32) {
			t.Fatalf("%s: %d values, fixture has %d", what, len(got), len(want.F32))
		}
		e := relErr(got, want.F32)
		kind, _, _ := strings.Cut(what, "/")
		worst[kind] = max(worst[kind], e)
		if e > parityTol {
			t.Errorf("%s: relative error %.2g > %g", what, e, parityTol)
		}
	}
	host := func(tt *tensor.Tensor) []float32 {
		t.Helper()
		h, err := tt.Host()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	y, err := net.Forward(x, layer.Infer)
	if err != nil {
		t.Fatal(err)
	}
	check("y_eval", host(y), get("y_eval"), nil)

	y, err = net.Forward(x, layer.Train)
	if err != nil {
		t.Fatal(err)
	}
	check("y_train", host(y), get("y_train"), nil)
	dys := get("dy")
	dy, err := tensor.FromHost(b, dys.F32, y.Shape()...)
	if err != nil {
		t.Fatal(err)
	}
	defer dy.Free()
	dx, err := net.Backward(dy)
	if err != nil {
		t.Fatal(err)
	}
	check("dx", host(dx), get("dx"), nil)
	adam := backend.Adam{LR: 1e-3, Beta1: 0.5, Beta2: 0.999, Epsilon: 1e-8, Step: 1}
	for _, prm := range net.Params() {
		if !prm.Trainable {
			check("running/"+prm.Name, host(prm.Value), get("running/"+prm.Name), nil)
			continue
		}
		idx := sampleIdx(prm.Value.Len())
		check("grad/"+prm.Name, host(prm.Grad), get("grad/"+prm.Name), idx)
		m, _ := tensor.New(b, prm.Value.Shape()...)
		v, _ := tensor.New(b, prm.Value.Shape()...)
		if err := b.AdamUpdate(adam, prm.Value.Buffer(), prm.Grad.Buffer(), m.Buffer(), v.Buffer()); err != nil {
			t.Fatal(err)
		}
		m.Free()
		v.Free()
		// Adam's first step is lr·g/(|g|+ε): ±lr for any gradient well above
		// float32 noise, but for a gradient that is itself rounding noise (a unit
		// that barely reaches the output) the sign is noise too, on either side.
		// Those entries are compared as gradients above, not as Adam steps.
		g, a := get("grad/"+prm.Name).F32, get("adam/"+prm.Name)
		gmax := float32(0)
		for _, v := range g {
			gmax = max(gmax, abs32(v))
		}
		var keep []int
		var want []float32
		for k, v := range g {
			if abs32(v) > 1e-5*gmax {
				keep, want = append(keep, idx[k]), append(want, a.F32[k])
			}
		}
		check("adam/"+prm.Name, host(prm.Value), &safetensors.Tensor{F32: want}, keep)
	}
	t.Logf("%s on %s: max relative error %v", preset, b.Name(), worst)
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
