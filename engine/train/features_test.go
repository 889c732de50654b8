package train

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/features"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
)

// writeShapes writes n size×size PNGs, discs at even indices and squares at odd
// ones, in random colours and places, and returns the folder and the label of
// each file as the loader lists it.
func writeShapes(t *testing.T, n, size int) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	labels := map[string]string{}
	for i := range n {
		img := imageio.NewRGB(size, size)
		c := uint8(40 + 37*i%180)
		cx, cy, r := size/2+i%3-1, size/2+(i/3)%3-1, size/3
		for y := range size {
			for x := range size {
				dx, dy := x-cx, y-cy
				in := dx*dx+dy*dy < r*r
				if i%2 == 1 {
					in = max(dx, -dx) < r && max(dy, -dy) < r
				}
				if in {
					img.Set(x, y, c, 255-c, 128)
				} else {
					img.Set(x, y, 255, 255, 255)
				}
			}
		}
		name := filepath.Join(dir, fmt.Sprintf("img%03d.png", i))
		if err := imageio.WritePNGFile(name, img); err != nil {
			t.Fatal(err)
		}
		labels[name] = [2]string{"disc", "square"}[i%2]
	}
	return dir, labels
}

func narrowFeatures(side int) *model.Config {
	c := narrow("emoji-features")
	c.Side, c.Features = side, c.Features/8
	return c
}

func featuresRunner(labels map[string]string) runner {
	return func(ctx context.Context, o Options) (Result, error) {
		return Features(ctx, FeaturesConfig{
			Config: narrowFeatures(16), Classes: []string{"disc", "square"}, Batch: 8, LR: 3e-3,
			Label: func(f string) (string, bool) { l, ok := labels[f]; return l, ok },
		}, o)
	}
}

// TestFeaturesLearns trains a narrow encoder to tell discs from squares: real
// steps on the ref backend, then the published file opens as an Extractor whose
// features separate the two shapes (nearest-neighbour labels of fresh images).
func TestFeaturesLearns(t *testing.T) {
	data, labels := writeShapes(t, 32, 16)
	o := refOptions(t, data, t.TempDir())
	o.Steps = 150
	var first float64
	o.OnProgress = func(p Progress) {
		if p.Step == 1 {
			first = p.Losses["ce"]
		}
	}
	res, err := featuresRunner(labels)(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ce %.3f → %.3f, last batch accuracy %.2f", first, res.Losses["ce"], res.Losses["acc"])
	if !(res.Losses["ce"] < first/2) || res.Losses["acc"] < 0.9 {
		t.Errorf("ce %.3f → %.3f, accuracy %.2f: the encoder did not learn", first, res.Losses["ce"], res.Losses["acc"])
	}
	e, err := features.Open(res.Weights, o.Backend)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	if got := strings.Join(e.Classes(), ","); got != "disc,square" {
		t.Errorf("published classes %q", got)
	}
	// Fresh images at another size (the extractor resizes): label each by its
	// nearest training image in feature space.
	test, testLabels := writeShapes(t, 12, 20)
	_, trainImgs, err := LoadImages(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	names, testImgs, err := LoadImages(test, 0)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := e.Embed(context.Background(), trainImgs)
	if err != nil {
		t.Fatal(err)
	}
	fq, err := e.Embed(context.Background(), testImgs)
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for i, q := range fq {
		best, bestD := -1, 0.0
		for j, r := range ft {
			d := 0.0
			for k := range q {
				d += float64(q[k]-r[k]) * float64(q[k]-r[k])
			}
			if best < 0 || d < bestD {
				best, bestD = j, d
			}
		}
		if labels[filepath.Join(data, fmt.Sprintf("img%03d.png", best))] == testLabels[names[i]] {
			right++
		}
	}
	t.Logf("nearest-neighbour labels right for %d of 12 fresh images", right)
	if right < 9 {
		t.Errorf("nearest-neighbour labels right for %d of 12 fresh images", right)
	}
}

// TestFeaturesResumeIsExact stops a run at step 3 of 6 (cancelled, as a killed
// job would be; the learning rate schedule follows the run's own 6 steps) and
// resumes it: the same weights as a straight run, bit for bit.
func TestFeaturesResumeIsExact(t *testing.T) {
	data, labels := writeShapes(t, 20, 16)
	run := featuresRunner(labels)
	straight, split := t.TempDir(), t.TempDir()
	o := refOptions(t, data, straight)
	o.Steps = 6
	ra, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o = refOptions(t, data, split)
	o.Steps = 6
	o.OnProgress = func(p Progress) {
		if p.Step == 3 {
			cancel()
		}
	}
	if _, err := run(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	o = refOptions(t, data, split)
	o.Steps, o.Resume = 6, true
	rb, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !rb.Resumed {
		t.Fatal("the second run did not resume")
	}
	// Resuming a finished run takes no step and still publishes, grid included.
	o = refOptions(t, data, split)
	o.Steps, o.Resume = 6, true
	var grids int
	o.OnSample = func(Sample) { grids++ }
	if rc, err := run(context.Background(), o); err != nil || rc.Steps != 6 || grids != 1 {
		t.Errorf("resuming a finished run: %d steps, %d grids, %v", rc.Steps, grids, err)
	}
	sameBits(t, "checkpoint", readTensors(t, ra.Checkpoint), readTensors(t, rb.Checkpoint))
	sameBits(t, "weights", readTensors(t, ra.Weights), readTensors(t, rb.Weights))
}

func TestFeaturesBadLabels(t *testing.T) {
	data, labels := writeShapes(t, 8, 16)
	o := refOptions(t, data, "")
	o.Steps = 1
	labels[filepath.Join(data, "img000.png")] = "triangle"
	for _, tc := range []struct {
		name string
		cfg  FeaturesConfig
		want string
	}{
		{"one class", FeaturesConfig{Config: narrowFeatures(16), Classes: []string{"disc"}, Label: func(string) (string, bool) { return "disc", true }}, "at least 2"},
		{"duplicate", FeaturesConfig{Config: narrowFeatures(16), Classes: []string{"disc", "disc"}, Label: func(string) (string, bool) { return "disc", true }}, "twice"},
		{"no label", FeaturesConfig{Config: narrowFeatures(16), Classes: []string{"disc", "square"}, Batch: 8, Label: func(string) (string, bool) { return "", false }}, "has no label"},
		{"unknown label", FeaturesConfig{Config: narrowFeatures(16), Classes: []string{"disc", "square"}, Batch: 8,
			Label: func(f string) (string, bool) { l, ok := labels[f]; return l, ok }}, "triangle"},
		{"not an encoder", FeaturesConfig{Preset: "dcgan-d-stable", Classes: []string{"a", "b"}, Label: func(string) (string, bool) { return "a", true }}, "want an encoder"},
	} {
		_, err := Features(context.Background(), tc.cfg, o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
