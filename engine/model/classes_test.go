package model

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
)

func TestWithClasses(t *testing.T) {
	g, err := ConfigFor("dcgan-g-stable", 16)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := g.WithClasses(3)
	if err != nil {
		t.Fatal(err)
	}
	if got := gc.InputShape(); !slices.Equal(got, []int{g.Latent + 3}) {
		t.Errorf("conditional generator input %v, want [%d]", got, g.Latent+3)
	}
	d, err := ConfigFor("dcgan-d-sn", 16)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := d.WithClasses(3)
	if err != nil {
		t.Fatal(err)
	}
	if got := dc.OutputShape(); !slices.Equal(got, []int{4}) {
		t.Errorf("conditional discriminator output %v, want [4]", got)
	}
	if d.Layers[len(d.Layers)-1].Out != 1 {
		t.Error("WithClasses changed the config it was called on")
	}
	// The config survives the weights file's metadata.
	back, err := ParseConfig(dc.JSON())
	if err != nil || back.Classes != 3 {
		t.Errorf("round trip: %d classes, %v", back.Classes, err)
	}
	un, err := dc.WithClasses(0)
	if err != nil || !slices.Equal(un.OutputShape(), []int{1}) {
		t.Errorf("WithClasses(0): output %v, %v", un.OutputShape(), err)
	}
	for _, tc := range []struct {
		preset string
		n      int
		want   string
	}{
		{"dcgan-g-stable", -1, "classes"},
		{"dcgan-g-stable", MaxClasses + 1, "classes"},
		{"espcn-x2", 2, "cannot be class-conditional"},
		{"emoji-features", 2, "cannot be class-conditional"},
	} {
		c, err := ConfigFor(tc.preset, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WithClasses(tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %d classes: %v, want an error about %q", tc.preset, tc.n, err, tc.want)
		}
	}
	// A config file that claims classes for an upscaler is refused on parse.
	up, _ := ConfigFor("espcn-x2", 0)
	up.Classes = 2
	if _, err := ParseConfig(up.JSON()); err == nil {
		t.Error("an upscaler with classes parsed")
	}
}

func TestConditionalGenerate(t *testing.T) {
	cfg, err := ConfigFor("dcgan-g-stable", 16)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = cfg.WithClasses(3); err != nil {
		t.Fatal(err)
	}
	n, err := BuildConfig(cfg, ref.New(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	ctx := context.Background()
	z := Latent(7, cfg.Latent)
	imgs, err := n.GenerateLatents(ctx, [][]float32{z, z, z, z}, []int{0, 1, 2, NoClass})
	if err != nil {
		t.Fatal(err)
	}
	if string(imgs[0].Pix) == string(imgs[1].Pix) || string(imgs[1].Pix) == string(imgs[2].Pix) {
		t.Error("the class does not change the image")
	}
	// NoClass is ClassOf the latent, as Generate (seeds) draws it.
	if k := ClassOf(z, 3); string(imgs[3].Pix) != string(imgs[k].Pix) {
		t.Errorf("NoClass did not draw ClassOf(z) = %d", k)
	}
	bySeed, err := n.Generate(ctx, []uint64{7})
	if err != nil || string(bySeed[0].Pix) != string(imgs[3].Pix) {
		t.Errorf("Generate(seed 7) differs from its latent with NoClass: %v", err)
	}
	for _, bad := range [][]int{{3}, {-2}, {0, 1}} {
		if _, err := n.GenerateLatents(ctx, [][]float32{z}, bad); err == nil {
			t.Errorf("classes %v accepted", bad)
		}
	}
	plain, err := Build("dcgan-g-stable", ref.New(), Options{Side: 16, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Free()
	if _, err := plain.GenerateLatents(ctx, [][]float32{z}, []int{0}); err == nil {
		t.Error("an unconditional generator took a class")
	}
	if _, err := plain.GenerateLatents(ctx, [][]float32{z}, []int{NoClass}); err != nil {
		t.Errorf("an unconditional generator refused NoClass: %v", err)
	}
}

func TestClassOfSpreads(t *testing.T) {
	counts := make([]int, 9)
	for s := range uint64(900) {
		counts[ClassOf(Latent(s, 100), 9)]++
	}
	for k, c := range counts {
		// 100 expected per class; a hash that ignored most bits would pile up.
		if c < 60 || c > 140 {
			t.Errorf("class %d drawn %d times of 900 (counts %v)", k, c, counts)
		}
	}
}

func TestClassFor(t *testing.T) {
	labels := []string{"A", "B", "C"}
	z := Latent(1, 8)
	if k, l := ClassFor(0, []string{"A"}, "A", z); k != NoClass || l != "A" {
		t.Errorf("unconditional: %d %q", k, l)
	}
	if k, l := ClassFor(3, labels, "B", z); k != 1 || l != "B" {
		t.Errorf("label B: %d %q", k, l)
	}
	k, l := ClassFor(3, labels, "", z)
	if k != ClassOf(z, 3) || l != labels[k] {
		t.Errorf("no label: %d %q, want ClassOf %d", k, l, ClassOf(z, 3))
	}
	cfg := Config{Preset: "g", Classes: 3}
	if err := CheckClasses(cfg, labels); err != nil {
		t.Error(err)
	}
	if err := CheckClasses(cfg, labels[:2]); err == nil || !strings.Contains(err.Error(), MetaTrainGroups) {
		t.Errorf("2 labels for 3 classes: %v", err)
	}
}
