package features

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
)

// randomEncoder is an untrained, narrow emoji-features at side 16 on ref: its
// features are a fixed random function of the image, enough to tell copies from
// new images.
func randomEncoder(t *testing.T) *Extractor {
	t.Helper()
	b, err := choose.Open("ref")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c, err := model.ConfigFor("emoji-features", 16)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range c.Layers {
		if s.Op == model.OpConv || s.Op == model.OpDense {
			c.Layers[i].Out = s.Out / 4
		}
	}
	c.Features /= 4
	net, err := model.BuildConfig(c, b, 3)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(net, map[string]string{MetaClasses: `["a","b"]`})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Free)
	return e
}

func noise(seed uint64, n, side int) []*imageio.RGB {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]*imageio.RGB, n)
	for i := range out {
		m := imageio.NewRGB(side, side)
		for p := range m.Pix {
			m.Pix[p] = uint8(rng.IntN(256))
		}
		out[i] = m
	}
	return out
}

func TestScoreSeesCopies(t *testing.T) {
	ctx := context.Background()
	e := randomEncoder(t)
	train, held := noise(1, 40, 24), noise(2, 30, 24)
	ref, err := NewReference(ctx, e, held, train, metrics.KIDConfig{Subsets: 20, SubsetSize: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	copies, err := ref.Score(ctx, e, train[:20])
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := ref.Score(ctx, e, noise(3, 20, 32)) // another size: Embed resizes
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copies: %v\nfresh: %v", copies, fresh)
	if copies.CopyShare != 1 || copies.Nearest < 0.999 {
		t.Errorf("copies of training images: copy share %.2f, nearest %.4f; want 1 and 1", copies.CopyShare, copies.Nearest)
	}
	if fresh.CopyShare > 0.1 {
		t.Errorf("new images: copy share %.2f, want ≈ 0", fresh.CopyShare)
	}
	if copies.Floor != fresh.Floor || copies.HeldoutNearest != fresh.HeldoutNearest {
		t.Errorf("the reference's floor changed between scores")
	}
	if got := strings.Join(e.Classes(), ","); got != "a,b" {
		t.Errorf("classes %q", got)
	}
}

func TestEmbedErrors(t *testing.T) {
	ctx := context.Background()
	e := randomEncoder(t)
	if _, err := e.Embed(ctx, []*imageio.RGB{{W: 4, H: 4}}); err == nil || !strings.Contains(err.Error(), "image 0") {
		t.Errorf("broken image: error %v", err)
	}
	if _, err := NewReference(ctx, e, noise(1, 3, 16), noise(2, 10, 16), metrics.DefaultKID()); err == nil || !strings.Contains(err.Error(), "more than 3") {
		t.Errorf("3 held-out images: error %v", err)
	}
	b, _ := choose.Open("ref")
	defer b.Close()
	g, err := model.Build("dcgan-g-stable", b, model.Options{Side: 16})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "g.safetensors")
	if err := g.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	g.Free()
	if _, err := Open(path, b); err == nil || !strings.Contains(err.Error(), "not an encoder") {
		t.Errorf("a generator's file: error %v", err)
	}
}
