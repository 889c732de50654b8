package safetensors

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Every half value converts to float32 and back unchanged (NaNs stay NaN).
func TestF16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToFloat32(h)
		back := Float32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("%#04x → %g → %#04x", h, f, back)
		}
	}
}

// roundHalf is an independent oracle: x rounded to the binary16 grid in float64
// (10 mantissa bits, exponent floored at −14 for subnormals, ties to even).
func roundHalf(x float64) float64 {
	a := math.Abs(x)
	if a == 0 {
		return x
	}
	_, exp := math.Frexp(a) // a = frac·2^exp, frac ∈ [0.5, 1)
	e := max(exp-1, -14)
	ulp := math.Ldexp(1, e-10)
	r := math.RoundToEven(a/ulp) * ulp
	if r > 65504 {
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

func TestF16RoundsToNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []float32{0, 1, 1 + 1.0/2048, 1 + 3.0/2048, 65504, 65519.99, 65520, 1e-8, 2.9802322e-08, 5.9604645e-08, 8.940697e-08, -3e-5}
	for range 20000 {
		// Exponents spanning subnormal half to overflow.
		cases = append(cases, float32(r.NormFloat64()*math.Pow(2, float64(r.IntN(44)-28))))
	}
	for _, f := range cases {
		got, want := float64(F16ToFloat32(Float32ToF16(f))), roundHalf(float64(f))
		if got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("Float32ToF16(%g) = %g, want %g", f, got, want)
		}
	}
}

func TestBF16RoundsToNearestEven(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // just above the tie
		{0x7f7fffff, 0x7f80}, // max float rounds to Inf
		{0x7f800000, 0x7f80}, // Inf
		{0x80000000, 0x8000}, // −0
	}
	for _, c := range cases {
		if got := Float32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("Float32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if got := Float32ToBF16(math.Float32frombits(0x7f800001)); !math.IsNaN(float64(BF16ToFloat32(got))) {
		t.Errorf("signalling NaN with a low payload became %#04x", got)
	}
	for i := 0; i < 1<<16; i++ {
		f := BF16ToFloat32(uint16(i))
		if math.IsNaN(float64(f)) {
			continue
		}
		if back := Float32ToBF16(f); back != uint16(i) {
			t.Fatalf("%#04x → %g → %#04x", i, f, back)
		}
	}
}
