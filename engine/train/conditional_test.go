package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// conditionalClasses are the groups writeLabelled gives its images.
var conditionalClasses = []string{"Even", "Odd"}

// writeLabelled writes n images as writeImages does into root/train and a
// labels.tsv in root that puts even images in group "Even" and odd ones in
// "Odd", and returns root/train (a Loader's folder, as data/noto128/train).
func writeLabelled(t testing.TB, n, size int) string {
	t.Helper()
	root := t.TempDir()
	train := filepath.Join(root, "train")
	if err := os.Rename(writeImages(t, n, size), train); err != nil {
		t.Fatal(err)
	}
	labels := map[string]dataset.Label{}
	for i := range n {
		seq := fmt.Sprintf("img%03d", i)
		labels["train/"+seq+".png"] = dataset.Label{Sequence: seq, Group: conditionalClasses[i%2], Subgroup: "test", Name: seq}
	}
	if err := dataset.WriteLabels(root, labels); err != nil {
		t.Fatal(err)
	}
	return train
}

// conditionalRunner is the small-data recipe made class-conditional: G takes a
// one-hot, D is a narrow dcgan-d-sn with a projection head.
func conditionalRunner(ctx context.Context, o Options) (Result, error) {
	r := SmallDataRecipe()
	r.Batch = 4
	return GAN(ctx, GANConfig{Side: 8, Recipe: r, Classes: conditionalClasses,
		GeneratorConfig: narrow("dcgan-g-stable"), DiscriminatorConfig: narrow("dcgan-d-sn")}, o)
}

// TestProjection checks the projection head against its definition on the
// host: logit_n = out[n,0] + out[n,1+y_n], and the gradient dlogit_n lands on
// exactly those two outputs.
func TestProjection(t *testing.T) {
	b, err := choose.Open("ref")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n, classes = 5, 3
	p, err := newProjection(b, classes)
	if err != nil {
		t.Fatal(err)
	}
	defer p.free()
	rng := rand.New(rand.NewPCG(1, 2))
	host := make([]float32, n*(1+classes))
	for i := range host {
		host[i] = float32(rng.NormFloat64())
	}
	ys := []int{0, 2, 1, 2, 0}
	if err := p.setClasses(ys); err != nil {
		t.Fatal(err)
	}
	out, err := tensor.FromHost(b, host, n, 1+classes)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	logit, err := p.forward(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := logit.Host()
	if err != nil {
		t.Fatal(err)
	}
	if !logit.HasShape(n, 1) {
		t.Fatalf("logits %v, want [%d 1]", logit.Shape(), n)
	}
	for i, y := range ys {
		if want := host[i*(1+classes)] + host[i*(1+classes)+1+y]; got[i] != want {
			t.Errorf("logit %d = %v, want %v", i, got[i], want)
		}
	}
	dl := []float32{1, -2, 0.5, 3, -1}
	dlogit, err := tensor.FromHost(b, dl, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer dlogit.Free()
	dout, err := p.backward(dlogit)
	if err != nil {
		t.Fatal(err)
	}
	g, err := dout.Host()
	if err != nil {
		t.Fatal(err)
	}
	for i, y := range ys {
		for j := range 1 + classes {
			want := float32(0)
			if j == 0 || j == 1+y {
				want = dl[i]
			}
			if g[i*(1+classes)+j] != want {
				t.Errorf("dout[%d,%d] = %v, want %v", i, j, g[i*(1+classes)+j], want)
			}
		}
	}
	if err := p.setClasses([]int{3}); err == nil {
		t.Error("class 3 of 3 accepted")
	}
	var none *projection
	if y, err := none.forward(out); err != nil || y != out {
		t.Error("nil projection does not pass outputs through")
	}
}

// TestConditionalGAN trains a few real steps class-conditionally and checks
// what a server relies on: the published generator is conditional over the
// classes, its metadata lists them in class order (model.Labels), and the
// class changes the image drawn from one latent.
func TestConditionalGAN(t *testing.T) {
	data := writeLabelled(t, 12, 8)
	o := refOptions(t, data, t.TempDir())
	o.Steps = 4
	res, err := conditionalRunner(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	g, meta, err := model.Open(res.Weights, o.Backend)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	cfg := g.Config()
	if cfg.Classes != 2 || !slices.Equal(model.Labels(meta), conditionalClasses) {
		t.Fatalf("published generator: %d classes, labels %q; want 2, %q", cfg.Classes, model.Labels(meta), conditionalClasses)
	}
	if err := model.CheckClasses(cfg, model.Labels(meta)); err != nil {
		t.Fatal(err)
	}
	z := model.Latent(3, cfg.Latent)
	imgs, err := g.GenerateLatents(context.Background(), [][]float32{z, z}, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(imgs[0].Pix) == string(imgs[1].Pix) {
		t.Error("classes 0 and 1 draw the same image from one latent")
	}
}

func TestConditionalGANBadOptions(t *testing.T) {
	data := writeLabelled(t, 8, 8)
	run := func(classes, groups []string) error {
		o := refOptions(t, data, "")
		o.Steps, o.Groups = 1, groups
		r := SmallDataRecipe()
		r.Batch = 4
		_, err := GAN(context.Background(), GANConfig{Side: 8, Recipe: r, Classes: classes,
			GeneratorConfig: narrow("dcgan-g-stable"), DiscriminatorConfig: narrow("dcgan-d-sn")}, o)
		return err
	}
	for _, tc := range []struct {
		name            string
		classes, groups []string
	}{
		{"one class", []string{"Even"}, nil},
		{"twice", []string{"Even", "Even"}, nil},
		{"comma", []string{"Even", "A, B"}, nil},
		{"groups differ", conditionalClasses, []string{"Even"}},
	} {
		if err := run(tc.classes, tc.groups); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%s: %v, want ErrBadOptions", tc.name, err)
		}
	}
	if err := run([]string{"Even", "Missing"}, nil); err == nil {
		t.Error("a class without images was accepted")
	}
}

func TestClassPlan(t *testing.T) {
	count := func(cl []int, k int) int {
		n := 0
		for _, c := range cl {
			if c == k {
				n++
			}
		}
		return n
	}
	if got := stratified([]int{30, 10}, 8); count(got, 0) != 6 || count(got, 1) != 2 {
		t.Errorf("stratified(30:10, 8) = %v, want six 0s and two 1s", got)
	}
	if got := stratified([]int{1, 1000}, 3); count(got, 0) != 0 || count(got, 1) != 3 {
		t.Errorf("stratified(1:1000, 3) = %v", got)
	}
	// 9 images: 5 even, 4 odd.
	data := writeLabelled(t, 9, 8)
	plan, err := ClassPlan(data, conditionalClasses, 18)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 18 || count(plan, 0) != 10 || count(plan, 1) != 8 {
		t.Errorf("ClassPlan over 5 even and 4 odd images, 18 draws: %v", plan)
	}
	if _, err := ClassPlan(data, []string{"Even", "Missing"}, 4); err == nil {
		t.Error("a class without images was accepted")
	}
}
