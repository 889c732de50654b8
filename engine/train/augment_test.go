package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/tensor"
)

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func randVals(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(2*rng.Float64() - 1)
	}
	return v
}

// TestAugmentTranspose: Backward is the transpose of what Forward did, with the
// parameters Forward drew: ⟨T(x) − T(0), y⟩ = ⟨x, Tᵀ(y)⟩ for random x and y
// (T(0) is brightness's constant, shifted and cut like the rest), for each
// policy alone and combined in either order, on a non-square batch.
func TestAugmentTranspose(t *testing.T) {
	b := ref.New()
	defer b.Close()
	shape := []int{3, 3, 16, 12}
	n := 3 * 3 * 16 * 12
	for i, policy := range []string{"translation", "cutout", "color", "color,translation,cutout", "translation,cutout,color"} {
		t.Run(policy, func(t *testing.T) {
			a, err := newAugmenter(b, policy)
			if err != nil {
				t.Fatal(err)
			}
			defer a.free()
			data := rand.New(rand.NewPCG(uint64(i), 1))
			for trial := range 5 {
				xs, ys := randVals(data, n), randVals(data, n)
				x, _ := tensor.FromHost(b, xs, shape...)
				y, _ := tensor.FromHost(b, ys, shape...)
				tx, err := a.Forward(x, rand.New(rand.NewPCG(uint64(trial), 2)))
				if err != nil {
					t.Fatal(err)
				}
				txs, _ := tx.Host()
				t0 := make([]float32, n)
				a.apply(t0) // T(0) with the same draw
				for k := range txs {
					txs[k] -= t0[k]
				}
				ty, err := a.Backward(y)
				if err != nil {
					t.Fatal(err)
				}
				tys, _ := ty.Host()
				lhs, rhs := dot(txs, ys), dot(xs, tys)
				if math.Abs(lhs-rhs) > 1e-5*(1+math.Abs(lhs)) {
					t.Errorf("trial %d: ⟨T(x) − T(0), y⟩ = %.7g, ⟨x, Tᵀy⟩ = %.7g", trial, lhs, rhs)
				}
				if slices.Equal(txs, xs) {
					t.Errorf("trial %d: T left x as it was", trial)
				}
				x.Free()
				y.Free()
			}
		})
	}
}

func grid(vals []float32, w int) string {
	var sb strings.Builder
	for i, v := range vals {
		if i%w == 0 && i > 0 {
			sb.WriteString("/")
		}
		fmt.Fprintf(&sb, " %g", v)
	}
	return sb.String()
}

func iota16() []float32 {
	x := make([]float32, 16)
	for i := range x {
		x[i] = float32(i + 1)
	}
	return x
}

// TestAugmentTranslationByHand: a 4×4 image shifted by (1, −1): output (i, j)
// is input (i+1, j−1), 0 outside; the transpose moves a gradient back.
func TestAugmentTranslationByHand(t *testing.T) {
	a := &augmenter{ops: []string{AugmentTranslation}, n: 1, c: 1, h: 4, w: 4, ty: []int{1}, tx: []int{-1}}
	x := iota16()
	a.apply(x)
	if got, want := grid(x, 4), grid([]float32{0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 0, 0, 0}, 4); got != want {
		t.Errorf("forward:\n got %s\nwant %s", got, want)
	}
	dy := iota16()
	a.transpose(dy)
	if got, want := grid(dy, 4), grid([]float32{0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0}, 4); got != want {
		t.Errorf("transpose:\n got %s\nwant %s", got, want)
	}
	// The shift's range: ⌊32/8 + ½⌋ = 4, every value in [−4, 4] drawn.
	seen := map[int]bool{}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 50 {
		a.draw(32, 3, 32, 32, rng)
		for i := range 32 {
			seen[a.ty[i]], seen[a.tx[i]] = true, true
		}
	}
	if len(seen) != 9 || !seen[-4] || !seen[4] {
		t.Errorf("shifts drawn at side 32: %v, want −4…4", seen)
	}
}

// TestAugmentCutoutByHand: a 2×2 square (half of 4) zeroed in every channel,
// clipped by the border when its first row is −1; the mask is its own transpose.
func TestAugmentCutoutByHand(t *testing.T) {
	for _, tc := range []struct {
		cy, cx int
		want   []float32
	}{
		{-1, 2, []float32{1, 2, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{1, 1, []float32{1, 2, 3, 4, 5, 0, 0, 8, 9, 0, 0, 12, 13, 14, 15, 16}},
		{3, -1, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 14, 15, 16}},
	} {
		a := &augmenter{ops: []string{AugmentCutout}, n: 1, c: 2, h: 4, w: 4, cutH: 2, cutW: 2, cy: []int{tc.cy}, cx: []int{tc.cx}}
		for _, transpose := range []bool{false, true} {
			x := append(iota16(), iota16()...)
			if transpose {
				a.transpose(x)
			} else {
				a.apply(x)
			}
			want := grid(append(append([]float32(nil), tc.want...), tc.want...), 4)
			if got := grid(x, 4); got != want {
				t.Errorf("square at (%d, %d), transpose %v:\n got %s\nwant %s", tc.cy, tc.cx, transpose, got, want)
			}
		}
	}
	// The reference's offsets: centre in [0, 32], square rows [centre − 8, centre + 8).
	a := &augmenter{ops: []string{AugmentCutout}}
	rng := rand.New(rand.NewPCG(2, 2))
	lo, hi := 100, -100
	for range 50 {
		a.draw(32, 3, 32, 32, rng)
		for _, v := range a.cy {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if a.cutH != 16 || lo != -8 || hi != 24 {
		t.Errorf("cutout side %d, first rows drawn in [%d, %d], want 16 and [−8, 24]", a.cutH, lo, hi)
	}
}

// TestAugmentColorByHand: brightness +0.25, saturation 0 (every pixel becomes
// the mean of its channels), contrast 0.5 about the sample's mean.
func TestAugmentColorByHand(t *testing.T) {
	a := &augmenter{ops: []string{AugmentColor}, n: 1, c: 3, h: 1, w: 2,
		bright: []float64{0.25}, sat: []float64{0}, contrast: []float64{0.5}}
	x := []float32{0.1, 0.5, 0.3, -0.5, -0.4, 0.9} // channels × 2 pixels
	a.apply(x)
	want := []float32{0.325, 0.475, 0.325, 0.475, 0.325, 0.475}
	for i := range x {
		if math.Abs(float64(x[i]-want[i])) > 1e-6 {
			t.Fatalf("color: %v, want %v", x, want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 3))
	a.draw(1000, 3, 1, 1, rng)
	for i := range 1000 {
		if a.bright[i] < -0.5 || a.bright[i] >= 0.5 || a.sat[i] < 0 || a.sat[i] >= 2 || a.contrast[i] < 0.5 || a.contrast[i] >= 1.5 {
			t.Fatalf("sample %d: brightness %v saturation %v contrast %v", i, a.bright[i], a.sat[i], a.contrast[i])
		}
	}
}

func TestAugmentPolicies(t *testing.T) {
	for _, ok := range []string{"", "translation", "color,translation,cutout", "cutout, color"} {
		if _, err := ParseAugment(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, msg := range map[string]string{
		"rotate":                  `unknown policy "rotate"`,
		"translation,,cutout":     `unknown policy ""`,
		"color,translation,color": "color listed twice",
		"Translation":             `unknown policy "Translation"`,
	} {
		_, err := ParseAugment(bad)
		if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want ErrBadOptions with %q", bad, err, msg)
		}
		if strings.Contains(msg, "unknown") && !strings.Contains(err.Error(), "translation, cutout, color") {
			t.Errorf("%q: %v does not list the valid names", bad, err)
		}
	}
	r := SmallDataRecipe()
	if err := r.check(); err != nil {
		t.Errorf("SmallDataRecipe: %v", err)
	}
	if r.Augment == "" || r.Loss != Hinge || r.LRD != 4e-4 || r.LRG != 1e-4 || !r.EMAWarmup {
		t.Errorf("SmallDataRecipe %s", r)
	}
	// The study baselines are unchanged, and their signature too (checkpoints of
	// runs made before the field existed still resume).
	if s := StableRecipe().String(); strings.Contains(s, "augment") {
		t.Errorf("StableRecipe gained augmentation: %s", s)
	}
}
