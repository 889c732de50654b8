package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// gaussian returns n vectors of dim values ~ N(mean, 1) from seed.
func gaussian(seed uint64, n, dim int, mean float64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, dim)
		for j := range out[i] {
			out[i][j] = float32(mean + rng.NormFloat64())
		}
	}
	return out
}

// kidDirect is the unbiased MMD² of the whole sets, written as the formula reads.
func kidDirect(a, b [][]float32) float64 {
	d := float64(len(a[0]))
	k := func(x, y []float32) float64 { return math.Pow(dot(x, y)/d+1, 3) }
	var saa, sbb, sab float64
	for i := range a {
		for j := range a {
			if i != j {
				saa += k(a[i], a[j])
			}
		}
	}
	for i := range b {
		for j := range b {
			if i != j {
				sbb += k(b[i], b[j])
			}
		}
	}
	for i := range a {
		for j := range b {
			sab += k(a[i], b[j])
		}
	}
	m, n := float64(len(a)), float64(len(b))
	return (saa/(m*(m-1)) + sbb/(n*(n-1)) - 2*sab/(m*n)) * 1e3
}

func TestKID(t *testing.T) {
	ctx := context.Background()
	a, b := gaussian(1, 60, 16, 0), gaussian(2, 60, 16, 0)
	// One subset of half the vectors is the formula on those vectors: with a
	// set twice as large, KID's subset is some half of it.
	r, err := KID(ctx, append(a, a...), append(b, b...), KIDConfig{Subsets: 1, SubsetSize: 60, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.SubsetSize != 60 {
		t.Fatalf("subset of %d, want 60", r.SubsetSize)
	}
	full, err := KID(ctx, a, b, KIDConfig{Subsets: 200, SubsetSize: 1000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if full.SubsetSize != 30 {
		t.Errorf("60 vectors per set: subsets of %d, want 30 (half)", full.SubsetSize)
	}
	// Averaged over many half-subsets, the estimate is unbiased: it approaches
	// the formula on the whole sets within its standard error.
	if want := kidDirect(a, b); math.Abs(full.Mean-want) > 3*full.Std/math.Sqrt(200)+1e-9 {
		t.Errorf("mean over half-subsets %v, the whole-set formula gives %v (std %v)", full.Mean, want, full.Std)
	}
	// Unbiased: same distribution → mean near 0 within its spread; a shifted one is far.
	same, err := KID(ctx, gaussian(3, 400, 16, 0), gaussian(4, 400, 16, 0), KIDConfig{Subsets: 50, SubsetSize: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	shifted, err := KID(ctx, gaussian(3, 400, 16, 0), gaussian(5, 400, 16, 0.5), KIDConfig{Subsets: 50, SubsetSize: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("same %v, shifted %v", same, shifted)
	if math.Abs(same.Mean) > 3*same.Std+1e-3 {
		t.Errorf("KID of one distribution %v: not centred on 0", same)
	}
	if shifted.Mean < 10*math.Max(same.Std, 1e-3) {
		t.Errorf("KID of a shifted distribution %v is not far above the same-distribution %v", shifted, same)
	}
	if same.SubsetSize != 200 || same.Subsets != 50 {
		t.Errorf("result %+v does not report its subsets", same)
	}
}

func TestKIDErrors(t *testing.T) {
	ctx := context.Background()
	ok := gaussian(1, 10, 4, 0)
	for _, tc := range []struct {
		name string
		a, b [][]float32
		cfg  KIDConfig
		want string
	}{
		{"empty", nil, ok, DefaultKID(), "empty"},
		{"three vectors", ok[:3], ok, DefaultKID(), "at least 4"},
		{"ragged", append(gaussian(1, 3, 4, 0), make([]float32, 5)), ok, DefaultKID(), "has 5 values"},
		{"nan", [][]float32{{0, 1, 2, float32(math.NaN())}, {0, 0, 0, 0}}, ok, DefaultKID(), "NaN"},
		{"no subsets", ok, ok, KIDConfig{SubsetSize: 10}, "subset"},
	} {
		if _, err := KID(ctx, tc.a, tc.b, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestPrecisionRecall(t *testing.T) {
	ctx := context.Background()
	real := gaussian(1, 200, 8, 0)
	p, r, err := PrecisionRecall(ctx, real, gaussian(2, 200, 8, 0), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("same distribution: precision %.3f recall %.3f", p, r)
	if p < 0.6 || r < 0.6 {
		t.Errorf("same distribution: precision %.3f recall %.3f, want both high", p, r)
	}
	// Fakes collapsed onto one real point: realistic (precision 1), no variety (recall low).
	collapsed := make([][]float32, 50)
	for i := range collapsed {
		collapsed[i] = append([]float32(nil), real[0]...)
		collapsed[i][0] += float32(i) * 1e-4
	}
	p, r, err = PrecisionRecall(ctx, real, collapsed, 3)
	if err != nil {
		t.Fatal(err)
	}
	if p != 1 || r > 0.05 {
		t.Errorf("collapsed fakes: precision %.3f recall %.3f, want 1 and ≈ 0", p, r)
	}
	// Far away: neither.
	p, r, err = PrecisionRecall(ctx, real, gaussian(3, 200, 8, 20), 3)
	if err != nil {
		t.Fatal(err)
	}
	if p != 0 || r != 0 {
		t.Errorf("disjoint sets: precision %.3f recall %.3f, want 0 and 0", p, r)
	}
	if _, _, err := PrecisionRecall(ctx, real[:3], real, 3); err == nil || !strings.Contains(err.Error(), "more than k") {
		t.Errorf("3 real vectors with k = 3: error %v", err)
	}
}

func TestNearestSimilarity(t *testing.T) {
	ctx := context.Background()
	train := gaussian(1, 100, 8, 1)
	query := [][]float32{append([]float32(nil), train[7]...), gaussian(9, 1, 8, 1)[0], make([]float32, 8)}
	for i := range query[0] {
		query[0][i] *= 3 // a copy at another scale is still a copy
	}
	s, err := NearestSimilarity(ctx, query, train)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(s[0]-1) > 1e-9 {
		t.Errorf("a copy's similarity %v, want 1", s[0])
	}
	if s[1] >= 1-1e-6 || s[1] <= 0 {
		t.Errorf("a new vector's similarity %v, want in (0, 1)", s[1])
	}
	if s[2] != 0 {
		t.Errorf("a zero vector's similarity %v, want 0", s[2])
	}
}
