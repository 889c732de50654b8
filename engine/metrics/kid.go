package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// KIDConfig holds the parameters of the Kernel Inception Distance (Bińkowski et
// al. 2018, "Demystifying MMD GANs"): the unbiased MMD² between two feature sets
// with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³, averaged over random
// subsets. The defaults are those of the paper's code and of torch-fidelity.
type KIDConfig struct {
	Subsets    int    // random subsets drawn (100)
	SubsetSize int    // vectors per set in each subset (1000), capped at half the smaller set
	Seed       uint64 // makes the subsets reproducible
}

// DefaultKID returns 100 subsets of up to 1000 with seed 1 (torch-fidelity's
// defaults).
func DefaultKID() KIDConfig { return KIDConfig{Subsets: 100, SubsetSize: 1000, Seed: 1} }

// KIDResult is the KID ×10³ (the usual unit) and its spread over the subsets.
type KIDResult struct {
	Mean, Std  float64 // ×10³, over the subsets
	SubsetSize int     // vectors per set in each subset
	Subsets    int
}

func (r KIDResult) String() string {
	return fmt.Sprintf("%.2f ± %.2f (×10³, %d subsets of %d)", r.Mean, r.Std, r.Subsets, r.SubsetSize)
}

// KID compares feature sets a and b (rows of equal length). The full kernel
// matrices are computed once; each subset is then a sum over index sets, so the
// cost is that of one pass whatever the subset count.
func KID(ctx context.Context, a, b [][]float32, cfg KIDConfig) (KIDResult, error) {
	if cfg.Subsets < 1 || cfg.SubsetSize < 2 {
		return KIDResult{}, fmt.Errorf("metrics: KID needs at least 1 subset of at least 2 (have %+v)", cfg)
	}
	dim, err := featureDim(a, b)
	if err != nil {
		return KIDResult{}, fmt.Errorf("metrics: KID: %w", err)
	}
	if min(len(a), len(b)) < 4 {
		return KIDResult{}, fmt.Errorf("metrics: KID needs at least 4 vectors per set (have %d and %d)", len(a), len(b))
	}
	// Subsets hold at most half the smaller set: subsets as large as a set would
	// all be that set, and their spread would say nothing.
	m := min(cfg.SubsetSize, min(len(a), len(b))/2)
	kernel := func(x, y []float32) float64 {
		v := dot(x, y)/float64(dim) + 1
		return v * v * v
	}
	kaa, err := gram(ctx, a, a, kernel)
	if err != nil {
		return KIDResult{}, err
	}
	kbb, err := gram(ctx, b, b, kernel)
	if err != nil {
		return KIDResult{}, err
	}
	kab, err := gram(ctx, a, b, kernel)
	if err != nil {
		return KIDResult{}, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6b6964)) // "kid"
	vals := make([]float64, cfg.Subsets)
	for s := range vals {
		ia, ib := rng.Perm(len(a))[:m], rng.Perm(len(b))[:m]
		var saa, sbb, sab float64
		for _, i := range ia {
			for _, j := range ia {
				if i != j {
					saa += kaa[i][j]
				}
			}
		}
		for _, i := range ib {
			for _, j := range ib {
				if i != j {
					sbb += kbb[i][j]
				}
			}
		}
		for _, i := range ia {
			for _, j := range ib {
				sab += kab[i][j]
			}
		}
		fm := float64(m)
		vals[s] = (saa/(fm*(fm-1)) + sbb/(fm*(fm-1)) - 2*sab/(fm*fm)) * 1e3
	}
	mean, std := meanStd(vals)
	return KIDResult{Mean: mean, Std: std, SubsetSize: m, Subsets: cfg.Subsets}, nil
}

// gram is the matrix f(a[i], b[j]), rows computed in parallel.
func gram(ctx context.Context, a, b [][]float32, f func(x, y []float32) float64) ([][]float64, error) {
	g := make([][]float64, len(a))
	err := parallelFor(ctx, len(a), func(i int) error {
		row := make([]float64, len(b))
		for j := range b {
			row[j] = f(a[i], b[j])
		}
		g[i] = row
		return nil
	})
	return g, err
}

func dot(x, y []float32) float64 {
	var s float64
	for i := range x {
		s += float64(x[i]) * float64(y[i])
	}
	return s
}

// featureDim checks that every row of every set has one common, non-zero length
// and only finite values, and returns it.
func featureDim(sets ...[][]float32) (int, error) {
	dim := -1
	for si, s := range sets {
		if len(s) == 0 {
			return 0, fmt.Errorf("feature set %d is empty", si)
		}
		for i, row := range s {
			if dim < 0 {
				dim = len(row)
			}
			if len(row) != dim || dim == 0 {
				return 0, fmt.Errorf("feature set %d row %d has %d values, want %d", si, i, len(row), dim)
			}
			for _, v := range row {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return 0, fmt.Errorf("feature set %d row %d holds %v", si, i, v)
				}
			}
		}
	}
	if dim < 0 {
		return 0, errors.New("no feature sets")
	}
	return dim, nil
}

func meanStd(v []float64) (mean, std float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	if len(v) > 1 {
		std = math.Sqrt(std / float64(len(v)-1))
	}
	return mean, std
}
