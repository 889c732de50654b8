package train

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/safetensors"
)

// randomExtractor saves an untrained narrow encoder at side 8 and returns its path:
// a fixed random function of the image is enough to exercise the probe.
func randomExtractor(t *testing.T, o Options) string {
	t.Helper()
	c := narrowFeatures(16)
	net, err := model.BuildConfig(*c, o.Backend, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	path := filepath.Join(t.TempDir(), "features.safetensors")
	if err := net.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func probeGAN(p *FeatureProbe) runner {
	return func(ctx context.Context, o Options) (Result, error) {
		c := tinyGAN(tinyRecipe())
		c.Features = p
		return GAN(ctx, c, o)
	}
}

// TestFeatureProbe runs the probe inside real GAN steps: it scores on schedule,
// writes the best snapshot with its step and KID, and a resumed run keeps the
// best score of the steps before the interruption (bit-identical weights too).
func TestFeatureProbe(t *testing.T) {
	data, held := writeImages(t, 10, 8), writeImages(t, 8, 12)
	out := t.TempDir()
	o := refOptions(t, data, out)
	var points []FeaturePoint
	p := &FeatureProbe{Every: 2, Extractor: randomExtractor(t, o), Heldout: held, Train: data, N: 6,
		Best: filepath.Join(out, "best.safetensors"), OnEval: func(fp FeaturePoint) { points = append(points, fp) }}
	o.Steps = 6
	o.Meta = map[string]string{"hirez.train.groups": "Smileys & Emotion"}
	res, err := probeGAN(p)(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 3 || points[0].Step != 2 || points[2].Step != 6 || !points[0].Best {
		t.Fatalf("evaluations %+v, want steps 2, 4, 6 with the first one best", points)
	}
	if res.Losses["kid"] != points[2].Score.KID.Mean {
		t.Errorf("progress kid %v, last evaluation %v", res.Losses["kid"], points[2].Score.KID.Mean)
	}
	best, bestKID := 0, points[0].Score.KID.Mean
	for _, fp := range points {
		if fp.Score.KID.Mean <= bestKID {
			best, bestKID = fp.Step, fp.Score.KID.Mean
		}
	}
	f, err := safetensors.ReadFile(p.Best, safetensors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g := f.Metadata["hirez.train.groups"]; g != "Smileys & Emotion" {
		t.Errorf("best snapshot metadata lacks the run's groups: %q", g)
	}
	if got, _ := strconv.Atoi(f.Metadata[MetaBestStep]); got != best {
		t.Errorf("best snapshot from step %d, the lowest KID was at step %d (%+v)", got, best, points)
	}
	if _, _, err := model.Open(p.Best, o.Backend); err != nil {
		t.Errorf("best snapshot does not open: %v", err)
	}

	// Interrupted at step 3 and resumed: same evaluations after the resume, same
	// weights, and the best before the interruption still counts.
	split := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o2 := refOptions(t, data, split)
	o2.Steps = 6
	o2.OnProgress = func(pr Progress) {
		if pr.Step == 3 {
			cancel()
		}
	}
	var resumed []FeaturePoint
	p2 := *p
	p2.Best = filepath.Join(split, "best.safetensors")
	p2.OnEval = func(fp FeaturePoint) { resumed = append(resumed, fp) }
	if _, err := probeGAN(&p2)(ctx, o2); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	o2 = refOptions(t, data, split)
	o2.Steps, o2.Resume = 6, true
	rb, err := probeGAN(&p2)(context.Background(), o2)
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed) != 3 {
		t.Fatalf("%d evaluations over the interrupted run, want 3", len(resumed))
	}
	for i := range resumed {
		if resumed[i].Score.KID != points[i].Score.KID || resumed[i].Best != points[i].Best {
			t.Errorf("evaluation %d: %+v resumed, %+v straight", i, resumed[i], points[i])
		}
	}
	sameBits(t, "weights", readTensors(t, res.Weights), readTensors(t, rb.Weights))
}

func TestFeatureProbeErrors(t *testing.T) {
	data := writeImages(t, 10, 8)
	o := refOptions(t, data, "")
	o.Steps = 1
	for _, tc := range []struct {
		name string
		p    FeatureProbe
	}{
		{"every 0", FeatureProbe{Extractor: randomExtractor(t, o), Heldout: data, Train: data}},
		{"no extractor", FeatureProbe{Every: 1, Extractor: filepath.Join(t.TempDir(), "none.safetensors"), Heldout: data, Train: data}},
		{"no held-out", FeatureProbe{Every: 1, Extractor: randomExtractor(t, o), Heldout: filepath.Join(t.TempDir(), "none"), Train: data}},
	} {
		p := tc.p
		if _, err := probeGAN(&p)(context.Background(), o); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
