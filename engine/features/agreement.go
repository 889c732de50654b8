package features

import (
	"context"
	"fmt"
	"math"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// Centroids tell whether a class-conditional generator draws the class it is
// asked for. Each class is the mean direction of its training images'
// features, and an image belongs to the class whose direction is nearest
// (cosine). KID and recall cannot see a generator that ignores its label: such
// a generator can match the mix of all classes and still answer "Flags" with a
// face. The label agreement can.
type Centroids struct {
	dirs [][]float64 // unit vectors, one per class
}

// Agreement is how often images land in the class they were meant for.
type Agreement struct {
	Overall  float64   // share of all images
	PerClass []float64 // share of each class's images (NaN for a class with none)
	Chance   float64   // 1 / classes: what a generator that ignores its label scores on a balanced set
}

// NewCentroids embeds each class's images (byClass[k] are class k's training
// images) and keeps their mean feature directions.
func NewCentroids(ctx context.Context, e *Extractor, byClass [][]*imageio.RGB) (*Centroids, error) {
	if len(byClass) < 2 {
		return nil, fmt.Errorf("features: label agreement needs at least 2 classes, got %d", len(byClass))
	}
	c := &Centroids{}
	for k, imgs := range byClass {
		if len(imgs) == 0 {
			return nil, fmt.Errorf("features: class %d has no images for its centroid", k)
		}
		f, err := e.Embed(ctx, imgs)
		if err != nil {
			return nil, err
		}
		sum := make([]float64, len(f[0]))
		for _, v := range f {
			unit(v, func(i int, x float64) { sum[i] += x })
		}
		c.dirs = append(c.dirs, normalized(sum))
	}
	return c, nil
}

// Classes is the number of classes.
func (c *Centroids) Classes() int { return len(c.dirs) }

// Agreement classifies the images (classes[i] is the class image i was drawn
// as) and counts how many land in their own class.
func (c *Centroids) Agreement(ctx context.Context, e *Extractor, images []*imageio.RGB, classes []int) (Agreement, error) {
	if len(images) != len(classes) || len(images) == 0 {
		return Agreement{}, fmt.Errorf("features: label agreement of %d images with %d classes", len(images), len(classes))
	}
	for i, k := range classes {
		if k < 0 || k >= len(c.dirs) {
			return Agreement{}, fmt.Errorf("features: image %d: class %d out of range [0, %d)", i, k, len(c.dirs))
		}
	}
	f, err := e.Embed(ctx, images)
	if err != nil {
		return Agreement{}, err
	}
	hits, counts := make([]int, len(c.dirs)), make([]int, len(c.dirs))
	total := 0
	for i, v := range f {
		k := classes[i]
		counts[k]++
		if c.nearest(v) == k {
			hits[k]++
			total++
		}
	}
	a := Agreement{Overall: float64(total) / float64(len(images)), Chance: 1 / float64(len(c.dirs))}
	for k := range c.dirs {
		a.PerClass = append(a.PerClass, float64(hits[k])/float64(counts[k])) // 0/0 = NaN: no image of k
	}
	return a, nil
}

// nearest is the class whose direction is closest to v; the first on ties
// (a zero vector is class 0).
func (c *Centroids) nearest(v []float32) int {
	best, bestSim := 0, math.Inf(-1)
	for k, d := range c.dirs {
		s := 0.0
		unit(v, func(i int, x float64) { s += x * d[i] })
		if s > bestSim {
			best, bestSim = k, s
		}
	}
	return best
}

// unit calls f with each coordinate of v/|v| (nothing for a zero vector).
func unit(v []float32, f func(i int, x float64)) {
	n := 0.0
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		return
	}
	n = math.Sqrt(n)
	for i, x := range v {
		f(i, float64(x)/n)
	}
}

func normalized(v []float64) []float64 {
	n := 0.0
	for _, x := range v {
		n += x * x
	}
	if n > 0 {
		n = math.Sqrt(n)
		for i := range v {
			v[i] /= n
		}
	}
	return v
}
