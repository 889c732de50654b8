package model

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/tensor"
)

var update = flag.Bool("update", false, "rewrite the counts table in docs/models.md")

func TestPresetsPlanAtEverySide(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Presets() {
		if seen[p.Name] || p.Reading == "" || len(p.Sides) == 0 {
			t.Errorf("preset %q: duplicate or undocumented", p.Name)
		}
		seen[p.Name] = true
		for _, s := range p.Sides {
			c, err := p.Config(s)
			if err != nil {
				t.Errorf("%s at %d: %v", p.Name, s, err)
				continue
			}
			// The config survives the trip through weights-file metadata.
			back, err := ParseConfig(c.JSON())
			if err != nil || back.JSON() != c.JSON() {
				t.Errorf("%s: config JSON round trip: %v", p.Name, err)
			}
		}
		if q, ok := Lookup(p.Name); !ok || q.Name != p.Name {
			t.Errorf("Lookup(%q) failed", p.Name)
		}
	}
}

// The study's reading, checked on the plans rather than trusted to the table.
func TestStudyReadings(t *testing.T) {
	names := func(preset string, side int) map[string][]int {
		c, err := ConfigFor(preset, side)
		if err != nil {
			t.Fatal(err)
		}
		steps, _ := c.Plan()
		m := map[string][]int{}
		for _, st := range steps {
			for _, p := range st.Params {
				m[p.Name] = p.Shape
			}
		}
		return m
	}
	g := names("dcgan-g-study", 64)
	if fmt.Sprint(g["fc.weight"]) != fmt.Sprint([]int{256 * 8 * 8, 100}) {
		t.Errorf("G fc maps 100 → %v, want 256·(h/8)²", g["fc.weight"])
	}
	s := names("srcnn-study", 32)
	for name, want := range map[string][]int{
		"conv1.weight": {256, 3, 9, 9}, "conv1.bias": {256},
		"conv2.weight": {128, 256, 3, 3}, "conv2.bias": {128},
		"conv3.weight": {3, 128, 5, 5}, "conv3.bias": {3},
	} {
		if fmt.Sprint(s[name]) != fmt.Sprint(want) {
			t.Errorf("srcnn-study %s = %v, want %v", name, s[name], want)
		}
	}
	if len(s) != 6 {
		t.Errorf("srcnn-study has %d tensors, want 6", len(s))
	}
	_, _, flops := mustCounts(t, "srcnn-study", 128)
	if math.Abs(flops/1e9-48.07) > 0.01 {
		t.Errorf("srcnn-study at 128→256: %.2f GFLOP, docs/models.md says ≈ 48", flops/1e9)
	}
}

func mustCounts(t *testing.T, preset string, side int) (int64, int64, float64) {
	c, err := ConfigFor(preset, side)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	return Counts(steps)
}

func TestBuildRejects(t *testing.T) {
	b := ref.New()
	if _, err := Build("nope", b, Options{}); err == nil || !strings.Contains(err.Error(), "unknown preset") {
		t.Errorf("unknown preset: %v", err)
	}
	if _, err := Build("dcgan-g-study", b, Options{Side: 12}); err == nil {
		t.Error("side 12 is not divisible by 8, yet it built")
	}
	if _, err := Build("upsampler-study", b, Options{Side: 6}); err == nil {
		t.Error("upsampler at side 6 cannot pool twice, yet it built")
	}
	n, err := Build("dcgan-d-study", b, Options{Side: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	x, _ := tensor.New(b, 1, 3, 32, 32)
	defer x.Free()
	if _, err := n.Forward(x, 0); err == nil || !strings.Contains(err.Error(), "want [N [3 16 16]]") {
		t.Errorf("wrong input size: %v", err)
	}
	if _, err := n.Generate(context.Background(), []uint64{1}); err == nil {
		t.Error("a discriminator generated images")
	}
}

// TestForwardDoesNotAllocate: a network's steady-state inference allocates
// nothing (the layers keep their buffers; checkInput compares dims in place),
// for a fixed-size net and a fully convolutional one; and bad inputs are still
// refused with the shape in the message.
func TestForwardDoesNotAllocate(t *testing.T) {
	b := ref.New()
	for _, tc := range []struct {
		preset string
		side   int
		shape  []int
		bad    []int
		want   string
	}{
		{"dcgan-g-study", 16, []int{2, 100}, []int{2, 99}, "want [N [100]]"},
		{"espcn-x2", 8, []int{2, 3, 8, 8}, []int{2, 4, 8, 8}, "has 4 channels, want 3"},
	} {
		n, err := Build(tc.preset, b, Options{Side: tc.side})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Free()
		x, _ := tensor.New(b, tc.shape...)
		defer x.Free()
		if _, err := n.Forward(x, layer.Infer); err != nil {
			t.Fatal(err)
		}
		if allocs := testing.AllocsPerRun(10, func() { _, _ = n.Forward(x, layer.Infer) }); allocs != 0 {
			t.Errorf("%s: %.1f allocs per forward, want 0", tc.preset, allocs)
		}
		bad, _ := tensor.New(b, tc.bad...)
		defer bad.Free()
		if _, err := n.Forward(bad, layer.Infer); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: input %v: err = %v, want %q", tc.preset, tc.bad, err, tc.want)
		}
	}
}

func TestLatentIsPinned(t *testing.T) {
	// These values are a contract: a seed names an image forever. Change them only
	// with a new latent scheme and a note in docs/models.md.
	want := []float32{0.72268486, 0.56256133, 0.6470203, 2.1949425, 1.1067641}
	if got := Latent(42, 5); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Latent(42, 5) = %v, want %v", got, want)
	}
	z := Latent(7, 100000)
	var mean, sq float64
	for _, v := range z {
		mean += float64(v)
		sq += float64(v) * float64(v)
	}
	mean /= float64(len(z))
	std := math.Sqrt(sq/float64(len(z)) - mean*mean)
	if math.Abs(mean) > 0.02 || math.Abs(std-1) > 0.02 {
		t.Errorf("latent mean %.3f std %.3f, want N(0, 1)", mean, std)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	b := ref.New()
	n, err := Build("dcgan-g-study", b, Options{Side: 16, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	ctx := context.Background()
	a, err := n.Generate(ctx, []uint64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Generate(ctx, []uint64{2})
	if err != nil {
		t.Fatal(err)
	}
	if a[0].W != 16 || a[0].H != 16 {
		t.Fatalf("image %d×%d", a[0].W, a[0].H)
	}
	if string(a[1].Pix) != string(c[0].Pix) {
		t.Error("seed 2 alone and in a batch give different bytes")
	}
	if string(a[0].Pix) == string(a[1].Pix) {
		t.Error("seeds 1 and 2 give the same image")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.Generate(cctx, []uint64{1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := n.GenerateLatents(ctx, [][]float32{make([]float32, 99)}, nil); err == nil {
		t.Error("a 99-value latent was accepted")
	}
}

func TestUpscaleBatchesBySize(t *testing.T) {
	b := ref.New()
	n, err := Build("espcn-x2", b, Options{Side: 8, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Free()
	mk := func(w, h int, v uint8) *imageio.RGB {
		img := imageio.NewRGB(w, h)
		for i := range img.Pix {
			img.Pix[i] = v + uint8(i%7)
		}
		return img
	}
	in := []*imageio.RGB{mk(8, 8, 10), mk(8, 8, 100), mk(5, 3, 50), mk(8, 8, 10)}
	out, err := n.Upscale(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.W != 2*in[i].W || o.H != 2*in[i].H {
			t.Errorf("image %d: %d×%d from %d×%d", i, o.W, o.H, in[i].W, in[i].H)
		}
	}
	if string(out[0].Pix) != string(out[3].Pix) {
		t.Error("the same image upscaled differently in another batch")
	}
	if _, err := n.Upscale(context.Background(), []*imageio.RGB{{W: 2, H: 2}}); err == nil {
		t.Error("an image without pixels was accepted")
	}
}

// TestCountsTable keeps the table in docs/models.md equal to what the configs
// give; run with -update to rewrite it.
func TestCountsTable(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("| preset | side (in → out) | parameters | buffers | GFLOP / image |\n|---|---|---:|---:|---:|\n")
	for _, p := range Presets() {
		for _, s := range p.Sides {
			params, bufs, flops := mustCounts(t, p.Name, s)
			c, _ := ConfigFor(p.Name, s)
			io := fmt.Sprintf("%d² → %d²", s, c.OutputShape()[len(c.OutputShape())-1])
			switch c.Role {
			case Generator:
				io = fmt.Sprintf("z%d → %d²", c.Latent, s)
			case Discriminator:
				io = fmt.Sprintf("%d² → 1", s)
			case Encoder:
				io = fmt.Sprintf("%d² → %d", s, c.Features)
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %d | %.3f |\n", p.Name, io, group(params), bufs, flops/1e9)
		}
	}
	table := sb.String()
	const path = "../../docs/models.md"
	const begin, end = "<!-- counts:begin -->\n", "<!-- counts:end -->"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("%s has no counts markers", path)
	}
	cur := string(doc[i+len(begin) : j])
	if cur == table {
		return
	}
	if *update {
		out := string(doc[:i+len(begin)]) + table + string(doc[j:])
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date; run go test ./model -run TestCountsTable -update\n%s", path, table)
}

// group writes 1234567 as 1 234 567.
func group(v int64) string {
	s := fmt.Sprint(v)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// A residual upscaler with its last conv at zero is MATLAB bicubic (engine/metrics)
// to within one level (metrics rounds between its two passes, the network does
// not), borders included; its weights keep the layers' PyTorch names; and its
// config survives the weights file.
func TestResidualStartsAtBicubic(t *testing.T) {
	b := ref.New()
	defer b.Close()
	img := imageio.NewRGB(13, 10)
	for i := range img.Pix {
		img.Pix[i] = uint8(40 + (i*37)%170)
	}
	want, err := metrics.ImresizeTo(img, 26, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"srcnn-residual", "espcn-residual"} {
		n, err := Build(name, b, Options{Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range n.Params() {
			names = append(names, p.Name)
		}
		if got := strings.Join(names, " "); got != "conv1.weight conv1.bias conv2.weight conv2.bias conv3.weight conv3.bias" {
			t.Errorf("%s params %s", name, got)
		}
		out, err := n.Upscale(context.Background(), []*imageio.RGB{img})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0
		for i := range want.Pix {
			worst = max(worst, absInt(int(out[0].Pix[i])-int(want.Pix[i])))
		}
		if worst > 1 {
			t.Errorf("%s at init differs from bicubic by %d levels", name, worst)
		}
		path := t.TempDir() + "/m.safetensors"
		if err := n.Save(path, nil); err != nil {
			t.Fatal(err)
		}
		m, _, err := Open(path, b)
		if err != nil {
			t.Fatal(err)
		}
		if c := m.Config(); !c.Residual || c.JSON() != n.Config().JSON() {
			t.Errorf("%s: config after the file: %s", name, c.JSON())
		}
		m.Free()
		n.Free()
	}
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
