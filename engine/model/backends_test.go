package model

import (
	"flag"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// allSides makes TestPresetsMatchRef check every side in each preset's Sides,
// the sides the services, the trainer and the experiment run. That costs
// minutes in the reference backend, so the plain test run checks the smallest
// side only; scripts/test-isa.sh sets the flag in its oneDNN ISA matrix (without
// -race, which slows the reference loops several times).
var allSides = flag.Bool("allsides", false, "TestPresetsMatchRef: every preset at every side it is meant for")

// refCache names a folder that keeps the reference backend's results of
// TestPresetsMatchRef between test processes: they do not depend on the oneDNN
// ISA, so scripts/test-isa.sh computes them once for its whole ISA matrix.
var refCache = flag.String("refcache", "", "TestPresetsMatchRef: folder caching ref's outputs across runs (empty: none)")

// inferenceTol bounds inference-only backends: bfloat16 keeps 8 bits of
// mantissa (2⁻⁹ relative per rounding) and, with random weights and no
// normalisation, up to ten layers compound it (upsampler-study: 0.055); a
// layout or padding fault is off by order 1.
const inferenceTol = 8e-2

// TestPresetsMatchRef builds every preset on each compiled backend and on ref
// with the same weights and compares, at the sides the preset is served and
// trained at: the forward pass in eval and train mode, the input gradient and
// every parameter gradient. Native backends pick kernels and weight layouts
// by shape and by CPU (DNNL_MAX_CPU_ISA), so the awkward shapes of
// backendtest are not enough on their own: these are the real ones.
func TestPresetsMatchRef(t *testing.T) {
	if raceEnabled {
		t.Skip("minutes of reference loops under -race; scripts/test-isa.sh (make test) runs it without -race, natively and under each oneDNN ISA")
	}
	oracle := ref.New()
	defer oracle.Close()
	for _, name := range choose.All() {
		if name == "ref" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			training := !choose.InferenceOnly(name)
			b, err := choose.OpenWith(name, choose.Options{Training: training})
			if err != nil {
				t.Skipf("backend %s: %v", name, err)
			}
			defer b.Close()
			for _, p := range Presets() {
				sides := p.Sides
				if !*allSides {
					sides = []int{slices.Min(p.Sides)}
				}
				for _, side := range sides {
					t.Run(fmt.Sprintf("%s/%d", p.Name, side), func(t *testing.T) {
						matchRef(t, oracle, b, p.Name, side, training)
					})
				}
			}
		})
	}
}

// gradTol bounds gradients as ‖got − want‖₂ / ‖want‖₂. They are not held
// to parityTol's max-norm: a ReLU whose input lies within float32 rounding of
// zero may be on for one backend and off for the other, which moves single
// gradient values by percents although both are right (at 128² a
// 256-channel layer has 16 million pre-activations, so some always do). A
// layout, padding or scratch fault moves the whole tensor, or a border of it,
// by order one, which this still catches; each op on its own is held to 1e-4
// max-norm by backendtest.
const gradTol = 1e-2

// matchRef compares one preset at one side on b against oracle: outputs
// within parityTol (inferenceTol for inference-only backends), gradients
// within gradTol.
func matchRef(t *testing.T, oracle, b backend.Backend, preset string, side int, training bool) {
	nets := [2]*Network{}
	for i, be := range []backend.Backend{oracle, b} {
		n, err := Build(preset, be, Options{Side: side, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Free()
		nets[i] = n
	}
	// Same weights on both sides, whatever each backend's initialiser did.
	for i := range nets {
		for _, prm := range nets[i].Params() {
			if err := prm.Value.CopyFromHost(hashFill(prm.Name, prm.Value.Shape())); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Two images where cheap, one at the large sides (the reference backend
	// runs the 48-GFLOP SRCNN-study pass at 128² in plain loops).
	batch := 2
	if side > 64 {
		batch = 1
	}
	want := refOutputs(t, nets[0], preset, side, batch)
	got := runNet(t, nets[1], batch, training)
	for _, what := range slices.Sorted(maps.Keys(got)) {
		g, w := got[what], want[what]
		switch {
		case what == "y_eval" || what == "y_train":
			tol := parityTol
			if !training {
				tol = inferenceTol
			}
			if e := relErr(g, w); e > tol {
				t.Errorf("%s at %d, batch %d, %s: relative error %.2g > %g against ref", preset, side, batch, what, e, tol)
			}
		default:
			if e := l2RelErr(g, w); e > gradTol {
				t.Errorf("%s at %d, batch %d, %s: relative L2 error %.2g > %g against ref", preset, side, batch, what, e, gradTol)
			}
		}
	}
}

// l2RelErr is ‖got − want‖₂ / ‖want‖₂ (the plain norm when want is zero).
func l2RelErr(got, want []float32) float64 {
	var d, w float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		w += float64(want[i]) * float64(want[i])
	}
	if w == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / w)
}

// refOutputs is runNet on the reference network, read from and written to
// -refcache when set.
func refOutputs(t *testing.T, n *Network, preset string, side, batch int) map[string][]float32 {
	t.Helper()
	path := ""
	if *refCache != "" {
		path = filepath.Join(*refCache, fmt.Sprintf("%s_%d_b%d.safetensors", preset, side, batch))
		if f, err := safetensors.ReadFile(path, safetensors.Options{}); err == nil {
			out := map[string][]float32{}
			for _, tt := range f.Tensors {
				out[tt.Name] = tt.F32
			}
			return out
		}
	}
	out := runNet(t, n, batch, true)
	if path != "" {
		f := &safetensors.File{}
		for _, name := range slices.Sorted(maps.Keys(out)) {
			f.Tensors = append(f.Tensors, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: []int{len(out[name])}, F32: out[name]})
		}
		if err := safetensors.WriteFile(path, f); err != nil {
			t.Fatalf("ref cache: %v", err)
		}
	}
	return out
}

// runNet runs n on the fixed input in eval mode and, when
// training, in train mode with a backward pass, and returns every output and
// gradient by name.
func runNet(t *testing.T, n *Network, batch int, training bool) map[string][]float32 {
	t.Helper()
	be := n.Backend()
	shape := n.InputShape(batch)
	x := hashFill(inputKind(n.Config()), shape)
	out := map[string][]float32{}
	keep := func(what string, tt *tensor.Tensor) {
		t.Helper()
		h, err := tt.Host()
		if err != nil {
			t.Fatalf("%s on %s: %v", what, be.Name(), err)
		}
		out[what] = h
	}
	in, err := tensor.FromHost(be, x, shape...)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Free()
	y, err := n.Forward(in, layer.Infer)
	if err != nil {
		t.Fatalf("forward (eval) on %s: %v", be.Name(), err)
	}
	keep("y_eval", y)
	if !training {
		return out
	}
	if y, err = n.Forward(in, layer.Train); err != nil {
		t.Fatalf("forward (train) on %s: %v", be.Name(), err)
	}
	keep("y_train", y)
	dy, err := tensor.FromHost(be, hashFill("dy", y.Shape()), y.Shape()...)
	if err != nil {
		t.Fatal(err)
	}
	defer dy.Free()
	if err := n.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	dx, err := n.Backward(dy)
	if err != nil {
		t.Fatalf("backward on %s: %v", be.Name(), err)
	}
	keep("dx", dx)
	for _, prm := range n.Params() {
		if prm.Trainable {
			keep("grad/"+prm.Name, prm.Grad)
		}
	}
	return out
}

// inputKind names hashFill's distribution for a net's input: a latent for
// generators, else images in the net's value range.
func inputKind(c Config) string {
	switch {
	case c.Role == Generator:
		return "x.latent"
	case c.Range == Signed:
		return "x.signed"
	}
	return "x.unit"
}
