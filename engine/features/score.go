package features

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
)

// K is the neighbourhood size of precision and recall (Kynkäänniemi et al.).
const K = 3

// Reference is the real side of every comparison, embedded once: the held-out
// images a generated set is compared with, and the training images it must not
// copy.
type Reference struct {
	heldout, train [][]float32
	// trainSeen is train plus each image's mirror: training flips at random, so
	// a copy of a flipped training image is a copy too.
	trainSeen [][]float32
	floor     metrics.KIDResult
	// heldoutNearest is each held-out image's nearest-training similarity: how
	// close new emoji of this domain come to the training set on their own.
	heldoutNearest []float64
	cfg            metrics.KIDConfig
}

// NewReference embeds the held-out and training images. The KID floor is that
// of the training images against the held-out ones: what a generator scores that
// reproduces its training distribution exactly (two halves of one held-out set
// would score ≈ 0 by construction, an unreachable goal).
func NewReference(ctx context.Context, e *Extractor, heldout, train []*imageio.RGB, cfg metrics.KIDConfig) (*Reference, error) {
	if len(heldout) <= K || len(train) <= K {
		return nil, fmt.Errorf("features: reference needs more than %d held-out and training images (have %d and %d)", K, len(heldout), len(train))
	}
	r := &Reference{cfg: cfg}
	var err error
	if r.heldout, err = e.Embed(ctx, heldout); err != nil {
		return nil, err
	}
	if r.train, err = e.Embed(ctx, train); err != nil {
		return nil, err
	}
	mirrored := make([]*imageio.RGB, len(train))
	for i, m := range train {
		mirrored[i] = m.Clone()
		mirrored[i].FlipH()
	}
	flipped, err := e.Embed(ctx, mirrored)
	if err != nil {
		return nil, err
	}
	r.trainSeen = slices.Concat(r.train, flipped)
	// Folders list files in code-point order, so a prefix of train is one corner
	// of Unicode; a fixed shuffle makes any prefix a fair sample (the floor below).
	rand.New(rand.NewPCG(cfg.Seed, 0x666c6f6f72)).Shuffle(len(r.train), func(i, j int) { // "floor"
		r.train[i], r.train[j] = r.train[j], r.train[i]
	})
	if r.floor, err = metrics.KID(ctx, r.train, r.heldout, cfg); err != nil {
		return nil, err
	}
	if r.heldoutNearest, err = metrics.NearestSimilarity(ctx, r.heldout, r.trainSeen); err != nil {
		return nil, err
	}
	return r, nil
}

// Held is the number of held-out images.
func (r *Reference) Held() int { return len(r.heldout) }

// Score is a generated set measured against a Reference.
type Score struct {
	N int // generated images
	// KID of the generated set against the held-out images, and the floor
	// (training images against held-out ones, see NewReference).
	KID, Floor metrics.KIDResult
	// Precision and Recall against the held-out images (k = K); the floor pair
	// is a random sample of N training images measured the same way.
	Precision, Recall           float64
	FloorPrecision, FloorRecall float64
	// Nearest is the median, over generated images, of the cosine similarity to
	// the nearest training image (or its mirror); HeldoutNearest the same for
	// held-out real images. A copying generator scores ≈ 1.
	Nearest, HeldoutNearest float64
	// CopyShare is the share of generated images that are closer to a training
	// image than any held-out image is: ≈ 0 for a generator that makes new
	// images, ≈ 1 for one that copies.
	CopyShare float64
}

func (s Score) String() string {
	return fmt.Sprintf("KID×10³ %.2f ± %.2f (floor %.2f ± %.2f), precision %.3f recall %.3f (floor %.3f %.3f), nearest-train similarity %.3f (held-out %.3f), copies %.1f %%",
		s.KID.Mean, s.KID.Std, s.Floor.Mean, s.Floor.Std, s.Precision, s.Recall, s.FloorPrecision, s.FloorRecall, s.Nearest, s.HeldoutNearest, 100*s.CopyShare)
}

// Score embeds fake and measures it.
func (r *Reference) Score(ctx context.Context, e *Extractor, fake []*imageio.RGB) (Score, error) {
	if len(fake) <= K {
		return Score{}, fmt.Errorf("features: score needs more than %d generated images (have %d)", K, len(fake))
	}
	f, err := e.Embed(ctx, fake)
	if err != nil {
		return Score{}, err
	}
	return r.ScoreFeatures(ctx, f)
}

// ScoreFeatures measures an already embedded generated set.
func (r *Reference) ScoreFeatures(ctx context.Context, f [][]float32) (Score, error) {
	s := Score{N: len(f), Floor: r.floor}
	var err error
	if s.KID, err = metrics.KID(ctx, f, r.heldout, r.cfg); err != nil {
		return Score{}, err
	}
	if s.Precision, s.Recall, err = metrics.PrecisionRecall(ctx, r.heldout, f, K); err != nil {
		return Score{}, err
	}
	// Precision and recall depend on the set sizes (the balls are k-NN radii),
	// so the floor uses as many training images as there are generated ones.
	sample := r.train[:min(len(f), len(r.train))]
	if s.FloorPrecision, s.FloorRecall, err = metrics.PrecisionRecall(ctx, r.heldout, sample, K); err != nil {
		return Score{}, err
	}
	near, err := metrics.NearestSimilarity(ctx, f, r.trainSeen)
	if err != nil {
		return Score{}, err
	}
	s.Nearest, s.HeldoutNearest = median(near), median(r.heldoutNearest)
	top := slices.Max(r.heldoutNearest)
	for _, v := range near {
		if v > top {
			s.CopyShare++
		}
	}
	s.CopyShare /= float64(len(near))
	return s, nil
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
