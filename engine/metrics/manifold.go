package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// PrecisionRecall is the improved precision and recall of Kynkäänniemi et al.
// (2019): each set's manifold is the union of balls around its vectors, each ball
// reaching the vector's k-th nearest neighbour in its own set (Euclidean).
// Precision is the share of fake vectors inside the real manifold (are the
// samples realistic?); recall the share of real vectors inside the fake manifold
// (is the data's variety covered?). The paper uses k = 3.
func PrecisionRecall(ctx context.Context, real, fake [][]float32, k int) (precision, recall float64, err error) {
	if _, err := featureDim(real, fake); err != nil {
		return 0, 0, fmt.Errorf("metrics: precision/recall: %w", err)
	}
	if k < 1 || len(real) <= k || len(fake) <= k {
		return 0, 0, fmt.Errorf("metrics: precision/recall with k = %d needs more than k vectors per set (have %d real, %d fake)", k, len(real), len(fake))
	}
	dist := func(x, y []float32) float64 {
		var s float64
		for i := range x {
			d := float64(x[i]) - float64(y[i])
			s += d * d
		}
		return math.Sqrt(s)
	}
	drr, err := gram(ctx, real, real, dist)
	if err != nil {
		return 0, 0, err
	}
	dff, err := gram(ctx, fake, fake, dist)
	if err != nil {
		return 0, 0, err
	}
	drf, err := gram(ctx, real, fake, dist)
	if err != nil {
		return 0, 0, err
	}
	rr, rf := kthRadius(drr, k), kthRadius(dff, k)
	in := 0
	for j := range fake {
		for i := range real {
			if drf[i][j] <= rr[i] {
				in++
				break
			}
		}
	}
	precision = float64(in) / float64(len(fake))
	in = 0
	for i := range real {
		for j := range fake {
			if drf[i][j] <= rf[j] {
				in++
				break
			}
		}
	}
	return precision, float64(in) / float64(len(real)), nil
}

// kthRadius returns, per row of a square distance matrix, the distance to the
// k-th nearest other vector (the row's own zero on the diagonal is skipped).
func kthRadius(d [][]float64, k int) []float64 {
	r := make([]float64, len(d))
	row := make([]float64, 0, len(d))
	for i := range d {
		row = row[:0]
		for j, v := range d[i] {
			if j != i {
				row = append(row, v)
			}
		}
		slices.Sort(row)
		r[i] = row[k-1]
	}
	return r
}

// NearestSimilarity returns, for each query vector, its largest cosine similarity
// to any reference vector: with the training set as reference, a generator that
// copies its training images scores 1 (a horizontally flipped copy, as training
// sees them, scores close to 1), while new images of the same domain score what
// held-out real images score. Zero vectors have similarity 0.
func NearestSimilarity(ctx context.Context, query, ref [][]float32) ([]float64, error) {
	if _, err := featureDim(query, ref); err != nil {
		return nil, fmt.Errorf("metrics: nearest similarity: %w", err)
	}
	norm := func(x []float32) float64 { return math.Sqrt(dot(x, x)) }
	refNorm := make([]float64, len(ref))
	for i, r := range ref {
		refNorm[i] = norm(r)
	}
	out := make([]float64, len(query))
	err := parallelFor(ctx, len(query), func(i int) error {
		qn := norm(query[i])
		best := math.Inf(-1)
		for j, r := range ref {
			s := 0.0
			if qn > 0 && refNorm[j] > 0 {
				s = dot(query[i], r) / (qn * refNorm[j])
			}
			best = max(best, s)
		}
		out[i] = best
		return nil
	})
	return out, err
}
