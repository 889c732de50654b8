package metrics

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// fixtures mirrors testdata/metrics_fixtures.json, written by
// scripts/fixtures/metrics_fixtures.py (numpy/scipy/skimage reference).
type fixtures struct {
	Imresize []struct {
		Input, Output string
		Scale         float64
		W, H          int
	}
	Quality []struct {
		Input      string
		Scale      int
		PSNR, SSIM float64
	}
	Pair struct {
		A, B       string
		Shave      int
		PSNR, SSIM float64
	}
	Photos []struct {
		Name       string
		Scale      int
		PSNR, SSIM float64
	}
	SWD struct {
		PatchSize       int `json:"patch_size"`
		PatchesPerImage int `json:"patches_per_image"`
		PyramidA0       []struct {
			W, H int
			Data []float64
		} `json:"pyramid_a0"`
		Levels []struct {
			Centres map[string][][][2]int
			Repeats []struct {
				Dirs []float32
				SW   float64
			}
			SWD float64 `json:"swd_x1e3"`
		}
	}
}

func loadFixtures(t testing.TB) *fixtures {
	t.Helper()
	b, err := os.ReadFile("testdata/metrics_fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixtures
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func load(t testing.TB, name string) *imageio.RGB {
	t.Helper()
	img, err := imageio.DecodeFile(filepath.Join("testdata", name), imageio.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImresizeMatchesReference(t *testing.T) {
	f := loadFixtures(t)
	if len(f.Imresize) == 0 {
		t.Fatal("no imresize fixtures")
	}
	var total, off1 int
	for _, c := range f.Imresize {
		in := load(t, c.Input)
		want := load(t, c.Output)
		var got *imageio.RGB
		var err error
		if c.Scale != 0 {
			got, err = Imresize(in, c.Scale)
		} else {
			got, err = ImresizeTo(in, c.W, c.H)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Output, err)
		}
		if got.W != want.W || got.H != want.H {
			t.Fatalf("%s: got %d×%d, want %d×%d", c.Output, got.W, got.H, want.W, want.H)
		}
		if got.Gray != in.Gray {
			t.Errorf("%s: Gray flag lost", c.Output)
		}
		for i := range got.Pix {
			d := int(got.Pix[i]) - int(want.Pix[i])
			switch {
			case d == 0:
			case d == 1 || d == -1:
				off1++
			default:
				t.Fatalf("%s: byte %d = %d, want %d", c.Output, i, got.Pix[i], want.Pix[i])
			}
		}
		total += len(got.Pix)
	}
	t.Logf("%d cases, %d values, %d off by one", len(f.Imresize), total, off1)
	if float64(off1) > 0.001*float64(total) {
		t.Errorf("%d of %d values off by one (> 0.1%%)", off1, total)
	}
}

func TestBicubicBaselineMatchesReference(t *testing.T) {
	f := loadFixtures(t)
	var maxP, maxS float64
	defer func() { t.Logf("max |ΔPSNR| %.2g dB, max |ΔSSIM| %.2g", maxP, maxS) }()
	for _, c := range f.Quality {
		q, lr, err := BicubicBaseline(load(t, c.Input), c.Scale)
		if err != nil {
			t.Fatal(err)
		}
		maxP, maxS = max(maxP, math.Abs(q.PSNR-c.PSNR)), max(maxS, math.Abs(q.SSIM-c.SSIM))
		if math.Abs(q.PSNR-c.PSNR) > 0.01 || math.Abs(q.SSIM-c.SSIM) > 1e-4 {
			t.Errorf("%s ×%d: PSNR %.4f SSIM %.5f, want %.4f %.5f", c.Input, c.Scale, q.PSNR, q.SSIM, c.PSNR, c.SSIM)
		}
		if lr.W == 0 {
			t.Error("no LR image")
		}
	}
	p := f.Pair
	q, err := Compare(load(t, p.A), load(t, p.B), p.Shave)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(q.PSNR-p.PSNR) > 1e-6 || math.Abs(q.SSIM-p.SSIM) > 1e-9 {
		t.Errorf("pair: PSNR %.8f SSIM %.10f, want %.8f %.10f", q.PSNR, q.SSIM, p.PSNR, p.SSIM)
	}
}

// TestBicubicPhotos checks the whole skimage photos when `make data` has put them in
// data/photos; the numbers are the documented baseline (docs/metrics.md).
func TestBicubicPhotos(t *testing.T) {
	dir := filepath.Join("..", "..", "data", "photos")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("data/photos not present (run make data)")
	}
	f := loadFixtures(t)
	for _, c := range f.Photos {
		if raceEnabled && c.Scale != 2 {
			continue // ×3 and ×4 only without -race: they add ~20 s under it
		}
		img, err := imageio.DecodeFile(filepath.Join(dir, c.Name+".png"), imageio.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := BicubicBaseline(img, c.Scale)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-10s ×%d: %.2f dB SSIM %.4f", c.Name, c.Scale, q.PSNR, q.SSIM)
		if math.Abs(q.PSNR-c.PSNR) > 0.01 || math.Abs(q.SSIM-c.SSIM) > 1e-4 {
			t.Errorf("%s ×%d: PSNR %.4f SSIM %.5f, want %.4f %.5f", c.Name, c.Scale, q.PSNR, q.SSIM, c.PSNR, c.SSIM)
		}
	}
}

func TestQualityBasics(t *testing.T) {
	img := imageio.NewRGB(20, 20)
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 13)
	}
	q, err := Compare(img, img, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(q.PSNR, 1) || math.Abs(q.SSIM-1) > 1e-12 {
		t.Errorf("identical: %+v", q)
	}
	// The border is shaved: damage confined to it changes nothing.
	other := img.Clone()
	other.Set(0, 0, 0, 0, 0)
	other.Set(19, 19, 255, 255, 255)
	if p, _ := PSNR(img, other, 1); !math.IsInf(p, 1) {
		t.Errorf("border damage counted: %v", p)
	}
	if _, err := Compare(img, imageio.NewRGB(20, 19), 2); err == nil {
		t.Error("size mismatch accepted")
	}
	if _, err := SSIM(img, img, 5); err == nil {
		t.Error("10×10 left after shaving accepted for an 11×11 window")
	}
	if _, err := Compare(img, img, 10); err == nil {
		t.Error("shave of the whole image accepted")
	}
	// Y: white → 235, black → 16 (studio swing); a grey image is its own Y.
	wb := imageio.NewRGB(2, 1)
	wb.Set(0, 0, 255, 255, 255)
	y, _ := Y(wb)
	if y.Pix[0] != 235 || y.Pix[1] != 16 {
		t.Errorf("Y = %v", y.Pix)
	}
	wb.Gray = true
	y, _ = Y(wb)
	if y.Pix[0] != 255 || y.Pix[1] != 0 {
		t.Errorf("grey Y = %v", y.Pix)
	}
}

func TestImresizeEdgeCases(t *testing.T) {
	img := imageio.NewRGB(7, 5)
	for i := range img.Pix {
		img.Pix[i] = 77
	}
	for _, s := range []float64{0.5, 1, 2, 3, 0.3} {
		out, err := Imresize(img, s)
		if err != nil {
			t.Fatal(err)
		}
		if out.W != int(math.Ceil(7*s)) || out.H != int(math.Ceil(5*s)) {
			t.Errorf("scale %v: %d×%d", s, out.W, out.H)
		}
		for _, v := range out.Pix {
			if v != 77 {
				t.Fatalf("scale %v: constant image changed to %d", s, v)
			}
		}
	}
	for _, s := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := Imresize(img, s); err == nil {
			t.Errorf("scale %v accepted", s)
		}
	}
	if _, err := Imresize(&imageio.RGB{}, 2); err == nil {
		t.Error("empty image accepted")
	}
	if _, err := Modcrop(imageio.NewRGB(3, 9), 4); err == nil {
		t.Error("modcrop to nothing accepted")
	}
	m, _ := Modcrop(imageio.NewRGB(10, 9), 4)
	if m.W != 8 || m.H != 8 {
		t.Errorf("modcrop %d×%d", m.W, m.H)
	}
}

func TestPyramidMatchesReference(t *testing.T) {
	f := loadFixtures(t)
	levels, err := LaplacianPyramid(load(t, "swd_a0.png"), 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) != len(f.SWD.PyramidA0) {
		t.Fatalf("%d levels, want %d", len(levels), len(f.SWD.PyramidA0))
	}
	var maxD float64
	defer func() { t.Logf("max pyramid difference %.2g", maxD) }()
	for k, want := range f.SWD.PyramidA0 {
		got := levels[k]
		if got.W != want.W || got.H != want.H {
			t.Fatalf("level %d: %d×%d, want %d×%d", k, got.W, got.H, want.W, want.H)
		}
		for i, v := range want.Data {
			maxD = max(maxD, math.Abs(got.Data[i]-v))
			if math.Abs(got.Data[i]-v) > 1e-4 {
				t.Fatalf("level %d value %d: %v, want %v", k, i, got.Data[i], v)
			}
		}
	}
	// A constant image has zero detail levels and a constant top.
	c := imageio.NewRGB(64, 64)
	for i := range c.Pix {
		c.Pix[i] = 100
	}
	levels, _ = LaplacianPyramid(c, 16)
	if len(levels) != 3 {
		t.Fatalf("64 px → %d levels, want 3 (64, 32, 16)", len(levels))
	}
	for _, v := range levels[0].Data {
		if math.Abs(v) > 1e-9 {
			t.Fatalf("constant image detail %v", v)
		}
	}
	if lv, err := LaplacianPyramid(imageio.NewRGB(40, 40), 16); err != nil || len(lv) != 2 {
		t.Errorf("40 px: %d levels, %v; want 40 and 20", len(lv), err)
	}
	for _, side := range []int{33, 15} {
		if _, err := LaplacianPyramid(imageio.NewRGB(side, side), 16); err == nil {
			t.Errorf("%d px accepted", side)
		}
	}
}

// TestSWDMatchesReference feeds the reference's patch centres and directions through
// the Go pipeline (patches, per-channel normalisation, sliced Wasserstein).
func TestSWDMatchesReference(t *testing.T) {
	f := loadFixtures(t)
	s := f.SWD
	const n = 4
	pyr := map[string][][]Level{}
	for _, set := range []string{"a", "b"} {
		for i := 0; i < n; i++ {
			lv, err := LaplacianPyramid(load(t, "swd_"+set+string(rune('0'+i))+".png"), 16)
			if err != nil {
				t.Fatal(err)
			}
			pyr[set] = append(pyr[set], lv)
		}
	}
	dim := 3 * s.PatchSize * s.PatchSize
	for k, lvl := range s.Levels {
		desc := map[string][]float32{}
		for _, set := range []string{"a", "b"} {
			d := make([]float32, n*s.PatchesPerImage*dim)
			for i := 0; i < n; i++ {
				patchesAt(d[i*s.PatchesPerImage*dim:(i+1)*s.PatchesPerImage*dim], pyr[set][i][k], lvl.Centres[set][i], s.PatchSize)
			}
			NormalizeDescriptors(d, dim)
			desc[set] = d
		}
		var sum float64
		for r, rep := range lvl.Repeats {
			got, err := SlicedWasserstein(context.Background(), desc["a"], desc["b"], dim, rep.Dirs)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("level %d repeat %d: relative difference %.2g", k, r, math.Abs(got-rep.SW)/rep.SW)
			if math.Abs(got-rep.SW) > 1e-4*rep.SW {
				t.Errorf("level %d repeat %d: %.7f, want %.7f", k, r, got, rep.SW)
			}
			sum += got
		}
		got := 1e3 * sum / float64(len(lvl.Repeats))
		t.Logf("level %d: SWD×1e3 %.4f (reference %.4f)", k, got, lvl.SWD)
	}
}

// smoothSet makes n smooth, noisy test images. cast > 0 gives every image a colour
// cast of ±cast (red up and blue down, or the reverse, alternating): a change in the
// colour distribution that SWD's per-set normalisation cannot remove.
func smoothSet(n, side int, seed uint64, cast int) []*imageio.RGB {
	out := make([]*imageio.RGB, n)
	s := seed
	next := func() int { s = s*6364136223846793005 + 1442695040888963407; return int(s>>33) % 41 }
	for i := range out {
		img := imageio.NewRGB(side, side)
		for y := 0; y < side; y++ {
			for x := 0; x < side; x++ {
				for c := 0; c < 3; c++ {
					v := 120 + 40*math.Sin(float64(x*(c+1)+y*(i%5+1))/7) + float64(next()-20)
					if c != 1 {
						v += float64(cast * (1 - 2*((i+c/2)%2)))
					}
					img.Pix[(y*side+x)*3+c] = uint8(max(0, min(255, v)))
				}
			}
		}
		out[i] = img
	}
	return out
}

func TestSWDProperties(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultSWD()
	cfg.PatchesPerImage = 16
	cfg.DirRepeats = 2
	cfg.DirsPerRepeat = 16
	a := smoothSet(16, 32, 1, 0)
	same, err := SWD(ctx, a, a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Same images but different patch samples (set ids differ): small, not zero.
	b := smoothSet(16, 32, 2, 0)
	floor, err := SWD(ctx, a, b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	shifted, err := SWD(ctx, a, smoothSet(16, 32, 2, 60), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("same %v | other sample %v | colour-shifted %v", same, floor, shifted)
	if len(same.PerLevel) != 2 || same.Resolutions[0] != 32 || same.Resolutions[1] != 16 {
		t.Fatalf("levels %v", same.Resolutions)
	}
	if shifted.Mean <= 2*floor.Mean || shifted.Mean <= 2*same.Mean {
		t.Errorf("a colour shift is not clearly worse: %v vs %v", shifted.Mean, floor.Mean)
	}
	again, _ := SWD(ctx, a, b, cfg)
	if again.Mean != floor.Mean {
		t.Errorf("not deterministic: %v vs %v", again.Mean, floor.Mean)
	}
	// Identical descriptor sets are at distance exactly 0.
	d, err := ExtractDescriptors(ctx, len(a), SliceSource(a), 7, cfg)
	if err != nil {
		t.Fatal(err)
	}
	zero, err := Distance(ctx, d, d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if zero.Mean != 0 {
		t.Errorf("identical descriptors: %v", zero)
	}
	fl, err := SWDFloor(ctx, append(smoothSet(16, 32, 3, 0), b...), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fl.Mean >= shifted.Mean {
		t.Errorf("floor %v not below the shifted set %v", fl.Mean, shifted.Mean)
	}
	if _, err := SWD(ctx, a, a[:3], cfg); err == nil {
		t.Error("unequal counts accepted")
	}
	if _, err := SWD(ctx, []*imageio.RGB{imageio.NewRGB(8, 8)}, []*imageio.RGB{imageio.NewRGB(8, 8)}, cfg); err == nil {
		t.Error("8 px images accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := SWD(cctx, a, b, cfg); err == nil {
		t.Error("cancelled context ignored")
	}
}

func BenchmarkSWD(b *testing.B) {
	ctx := context.Background()
	x := smoothSet(256, 64, 1, 0)
	y := smoothSet(256, 64, 2, 30)
	cfg := DefaultSWD()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SWD(ctx, x, y, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkImresizeDown2(b *testing.B) {
	img := smoothSet(1, 512, 1, 0)[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Imresize(img, 0.5); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSortFloat32(t *testing.T) {
	v := []float32{3, -1, 0, -0.5, 2.5, float32(math.Inf(-1)), 1e-30, -1e30, 7, 7, -7, float32(math.Inf(1))}
	for i := 0; i < 1000; i++ {
		v = append(v, float32(math.Sin(float64(i)*12.9898)*437.5))
	}
	want := slices.Clone(v)
	slices.Sort(want)
	sortFloat32(v, make([]uint32, len(v)), make([]uint32, len(v)))
	if !slices.Equal(v, want) {
		t.Fatal("radix sort disagrees with slices.Sort")
	}
}
