package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/features"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/train"
)

// DefaultFeatures is the bundled feature extractor the GAN scores use.
const DefaultFeatures = "models/emoji-features.safetensors"

// featureEval is the feature-space half of 'eval gan' and the experiment: an
// extractor with its reference sets, loaded once.
type featureEval struct {
	path           string
	e              *features.Extractor
	ref            *features.Reference
	heldout, train string
	groups         []string
}

// openFeatureEval loads the extractor at path and embeds the held-out and
// training images (only those of groups when set). It returns nil and no error
// when path is the default and does not exist, so the pixel scores still run on
// a checkout without the bundled extractor; the caller says so.
func openFeatureEval(ctx context.Context, b backend.Backend, path, heldout, trainDir string, groups []string, explicit bool) (*featureEval, error) {
	if _, err := os.Stat(path); err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, usagef("--features: %v", err)
	}
	if trainDir == "" {
		trainDir = filepath.Join(filepath.Dir(filepath.Clean(heldout)), "train")
	}
	if _, err := os.Stat(trainDir); err != nil {
		return nil, usagef("--train-data: %v (the copy check needs the training images; run 'make data')", err)
	}
	e, err := features.Open(path, b)
	if err != nil {
		return nil, err
	}
	ref, err := newReference(ctx, e, heldout, trainDir, groups)
	if err != nil {
		e.Free()
		return nil, err
	}
	return &featureEval{path: path, e: e, ref: ref, heldout: heldout, train: trainDir, groups: groups}, nil
}

// newReference embeds the held-out and training images of groups (all when empty).
func newReference(ctx context.Context, e *features.Extractor, heldout, trainDir string, groups []string) (*features.Reference, error) {
	_, held, err := train.LoadGroups(heldout, groups, 0)
	if err != nil {
		return nil, err
	}
	_, tr, err := train.LoadGroups(trainDir, groups, 0)
	if err != nil {
		return nil, err
	}
	return features.NewReference(ctx, e, held, tr, metrics.DefaultKID())
}

func (f *featureEval) free() {
	if f != nil {
		f.e.Free()
	}
}

func (f *featureEval) score(ctx context.Context, fake []*imageio.RGB) (features.Score, error) {
	return f.ref.Score(ctx, f.e, fake)
}

// write prints a score as a Markdown table.
func (f *featureEval) write(w io.Writer, s features.Score) {
	fmt.Fprintf(w, "feature space (%s, %d px): %d generated vs %d held-out images of %s; training images %s",
		filepath.Base(f.path), f.e.Side(), s.N, f.ref.Held(), f.heldout, f.train)
	if len(f.groups) > 0 {
		fmt.Fprintf(w, "; groups %q", f.groups)
	}
	fmt.Fprintf(w, "\n| measure | model | floor: training images vs held-out |\n|---|---:|---:|\n")
	fmt.Fprintf(w, "| KID ×10³ (%d subsets of %d) | %.2f ± %.2f | %.2f ± %.2f |\n", s.KID.Subsets, s.KID.SubsetSize, s.KID.Mean, s.KID.Std, s.Floor.Mean, s.Floor.Std)
	fmt.Fprintf(w, "| precision (k = %d) | %.3f | %.3f |\n", features.K, s.Precision, s.FloorPrecision)
	fmt.Fprintf(w, "| recall (k = %d) | %.3f | %.3f |\n", features.K, s.Recall, s.FloorRecall)
	fmt.Fprintf(w, "| nearest-training-image similarity (median) | %.3f | %.3f (held-out images) |\n", s.Nearest, s.HeldoutNearest)
	fmt.Fprintf(w, "| closer to a training image than any held-out image is | %.1f %% | — |\n", 100*s.CopyShare)
}

// writeAgreement prints whether a class-conditional generator's images look
// like the classes they were drawn as (classes[i] indexes labels, the model's
// classes in order): each image gets the class of the nearest training-image
// centroid in feature space (features.Centroids). The held-out real images,
// labelled the same way, are the column to compare with: what a generator
// scores whose every class looks as its real images do.
func (f *featureEval) writeAgreement(ctx context.Context, w io.Writer, fake []*imageio.RGB, classes []int, labels []string) error {
	var trainBy [][]*imageio.RGB
	var held []*imageio.RGB
	var heldClasses []int
	for k, l := range labels {
		_, tr, err := train.LoadGroups(f.train, []string{l}, 0)
		if err != nil {
			return err
		}
		_, h, err := train.LoadGroups(f.heldout, []string{l}, 0)
		if err != nil {
			return err
		}
		trainBy = append(trainBy, tr)
		held = append(held, h...)
		for range h {
			heldClasses = append(heldClasses, k)
		}
	}
	c, err := features.NewCentroids(ctx, f.e, trainBy)
	if err != nil {
		return err
	}
	gen, err := c.Agreement(ctx, f.e, fake, classes)
	if err != nil {
		return err
	}
	real, err := c.Agreement(ctx, f.e, held, heldClasses)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nlabel agreement: the share of images nearest to their own class's centroid of training features (chance %.3f)\n", gen.Chance)
	fmt.Fprintf(w, "| class | model (%d images) | held-out real images (%d) |\n|---|---:|---:|\n", len(fake), len(held))
	fmt.Fprintf(w, "| all | %.3f | %.3f |\n", gen.Overall, real.Overall)
	for k, l := range labels {
		if math.IsNaN(gen.PerClass[k]) {
			continue // not drawn (eval gan --label draws one class)
		}
		fmt.Fprintf(w, "| %s | %.3f | %.3f |\n", l, gen.PerClass[k], real.PerClass[k])
	}
	return nil
}

// runEvalFeatures validates a feature extractor as a metric: held-out real
// images must score at the floor, spoilt copies of them progressively worse,
// and copies of training images must be flagged.
func runEvalFeatures(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "eval features", "[--features FILE] [--data DIR] [--train-data DIR] [--group NAME]…")
	path := fs.String("features", DefaultFeatures, "feature extractor to validate")
	data := fs.String("data", "data/noto128/heldout", "held-out real images")
	trainData := fs.String("train-data", "", "training images (default: the train folder beside --data)")
	backendName := fs.String("backend", "", "backend: "+choose.Describe(false))
	var groups multiFlag
	fs.Var(&groups, "group", "only this Unicode emoji group (repeat for more)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *trainData == "" {
		*trainData = filepath.Join(filepath.Dir(filepath.Clean(*data)), "train")
	}
	for _, d := range []string{*path, *data, *trainData} {
		if _, err := os.Stat(d); err != nil {
			return usagef("%v (run 'make data'; 'make models' trains the extractor)", err)
		}
	}
	b, err := choose.Open(*backendName)
	if err != nil {
		return usagef("%v", err)
	}
	defer b.Close()
	e, err := features.Open(*path, b)
	if err != nil {
		return err
	}
	defer e.Free()
	_, held, err := train.LoadGroups(*data, groups, 0)
	if err != nil {
		return err
	}
	_, tr, err := train.LoadGroups(*trainData, groups, 0)
	if err != nil {
		return err
	}
	// Half the held-out images are the reference, the other half is scored:
	// as real and unseen as a perfect generator's images.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	half := len(held) / 2
	ref, err := features.NewReference(ctx, e, held[:half], tr, metrics.DefaultKID())
	if err != nil {
		return err
	}
	probe := held[half : 2*half]
	w := env.Stdout
	fmt.Fprintf(w, "validation of %s (%d px): %d held-out images of %s scored against the other %d; training images %s (%d)\n",
		*path, e.Side(), len(probe), *data, half, *trainData, len(tr))
	fmt.Fprintf(w, "| set | KID ×10³ | precision | recall | nearest-train similarity | copies |\n|---|---:|---:|---:|---:|---:|\n")
	row := func(name string, imgs []*imageio.RGB) error {
		s, err := ref.Score(ctx, e, imgs)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(w, "| %s | %.2f ± %.2f | %.3f | %.3f | %.3f | %.1f %% |\n", name, s.KID.Mean, s.KID.Std, s.Precision, s.Recall, s.Nearest, 100*s.CopyShare)
		return nil
	}
	s, err := ref.Score(ctx, e, probe)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "| floor: training images vs the reference | %.2f ± %.2f | %.3f | %.3f | %.3f | — |\n", s.Floor.Mean, s.Floor.Std, s.FloorPrecision, s.FloorRecall, s.HeldoutNearest)
	if err := row("held-out images (real, unseen)", probe); err != nil {
		return err
	}
	for _, d := range features.Degradations() {
		spoilt := make([]*imageio.RGB, len(probe))
		for i, m := range probe {
			spoilt[i] = d.Apply(m, uint64(i))
		}
		if err := row(d.Name, spoilt); err != nil {
			return err
		}
	}
	// A fixed random sample: the folder's first files are one corner of Unicode.
	sample := slices.Clone(tr)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	return row("copies of training images", sample[:min(len(sample), len(probe))])
}
