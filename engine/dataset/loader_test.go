package dataset

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// writeImages writes n w×h PNGs whose pixels encode the image index (red = index,
// green = x, blue = y), and returns the folder.
func writeImages(t *testing.T, dir string, n, w, h int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		img := imageio.NewRGB(w, h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.Set(x, y, uint8(i*10), uint8(x*255/max(1, w-1)), uint8(y))
			}
		}
		if err := imageio.WritePNGFile(filepath.Join(dir, string(rune('a'+i/26))+string(rune('a'+i%26))+".png"), img); err != nil {
			t.Fatal(err)
		}
	}
}

// collect runs one epoch and returns its batches.
func collect(t *testing.T, l *Loader) []*Batch {
	t.Helper()
	var out []*Batch
	for {
		b, err := l.Next(context.Background())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestLoaderEpochsAndSkips(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, dir, 10, 8, 8)
	// a truncated PNG, a non-image with an image extension, a 1×1 image, and a
	// file that is not an image at all (ignored)
	good, _ := os.ReadFile(filepath.Join(dir, "aa.png"))
	os.WriteFile(filepath.Join(dir, "trunc.png"), good[:len(good)/2], 0o644)
	os.WriteFile(filepath.Join(dir, "text.jpg"), []byte("hello"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	writeImagesNamed(t, filepath.Join(dir, "tiny.png"), 1, 1)

	l, err := NewLoader(Options{Dir: dir, Size: 4, BatchSize: 4, Range: Range01, Shuffle: true, Seed: 7, FlipH: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e0 := collect(t, l)
	if len(e0) != 3 || e0[0].N != 4 || e0[2].N != 2 {
		t.Fatalf("epoch 0: %d batches (sizes %d…)", len(e0), e0[0].N)
	}
	b := e0[0]
	if b.XShape != [4]int{4, 3, 4, 4} || len(b.X) != 4*3*16 || b.Y != nil {
		t.Fatalf("batch shape %v, %d values", b.XShape, len(b.X))
	}
	for _, v := range b.X {
		if v < 0 || v > 1 {
			t.Fatalf("value %v outside [0, 1]", v)
		}
	}
	st := l.Stats()
	if st.Files != 13 || st.Corrupt != 2 || st.TooSmall != 1 || st.Batches != 3 || st.Samples != 10 {
		t.Errorf("stats %+v", st)
	}
	e1 := collect(t, l)
	if len(e1) != 3 || e1[0].Epoch != 1 {
		t.Fatalf("epoch 1: %d batches", len(e1))
	}
	if slices.Equal(files(e0), files(e1)) {
		t.Error("epochs 0 and 1 in the same order despite Shuffle")
	}
	if st := l.Stats(); st.Corrupt != 2 || st.TooSmall != 1 {
		t.Errorf("skips counted twice: %+v", st)
	}
	seen := map[string]int{}
	for _, f := range files(e0) {
		seen[f]++
	}
	if len(seen) != 10 {
		t.Errorf("epoch 0 saw %d distinct files, want 10", len(seen))
	}
}

func writeImagesNamed(t *testing.T, path string, w, h int) {
	t.Helper()
	if err := imageio.WritePNGFile(path, imageio.NewRGB(w, h)); err != nil {
		t.Fatal(err)
	}
}

func files(bs []*Batch) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Files...)
	}
	return out
}

func TestLoaderResumeIsExact(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, dir, 11, 6, 9) // non-square: centre crop to 6×6
	opt := Options{Dir: dir, Size: 3, BatchSize: 3, Shuffle: true, Seed: 42, FlipH: true, Prefetch: 1}
	ref, err := NewLoader(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var all []*Batch
	for e := 0; e < 2; e++ {
		all = append(all, collect(t, ref)...)
	}
	// Stop after 5 batches, save the state, resume in a fresh loader.
	a, _ := NewLoader(opt)
	for i := 0; i < 5; i++ {
		if _, err := a.Next(context.Background()); err == io.EOF {
			i--
		} else if err != nil {
			t.Fatal(err)
		}
	}
	st := a.State()
	a.Close()
	b, _ := NewLoader(Options{Dir: dir, Size: 3, BatchSize: 3, Shuffle: true, Seed: 999, FlipH: true})
	defer b.Close()
	if err := b.Restore(st); err != nil {
		t.Fatal(err)
	}
	var rest []*Batch
	for len(rest) < len(all)-5 {
		x, err := b.Next(context.Background())
		if err == io.EOF {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, x)
	}
	for i, x := range rest {
		want := all[5+i]
		if !slices.Equal(x.X, want.X) || !slices.Equal(x.Files, want.Files) || x.Epoch != want.Epoch {
			t.Fatalf("batch %d after resume differs", 5+i)
		}
	}
	// Signed range and the flip: some sample must be mirrored (green falls with x).
	flipped := false
	for _, x := range all {
		for s := 0; s < x.N; s++ {
			g := x.X[s*27+9 : s*27+18] // channel 1 of a 3×3 sample
			if g[0] > g[2] {
				flipped = true
			}
			if g[0] < -1 || g[2] > 1 {
				t.Fatalf("value outside [−1, 1]: %v", g)
			}
		}
	}
	if !flipped {
		t.Error("FlipH never flipped")
	}
	if err := b.Restore(State{Pos: 99}); err == nil {
		t.Error("impossible state accepted")
	}
}

func TestLoaderErrors(t *testing.T) {
	if _, err := NewLoader(Options{Dir: t.TempDir(), Size: 8, BatchSize: 2}); !errors.Is(err, ErrNoImages) {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := NewLoader(Options{Dir: filepath.Join(t.TempDir(), "nope"), Size: 8, BatchSize: 2}); err == nil {
		t.Error("missing dir accepted")
	}
	dir := t.TempDir()
	writeImagesNamed(t, filepath.Join(dir, "one.png"), 1, 1)
	os.WriteFile(filepath.Join(dir, "bad.webp"), []byte{1}, 0o644)
	l, err := NewLoader(Options{Dir: dir, Size: 8, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Next(context.Background()); !errors.Is(err, ErrNoImages) {
		t.Errorf("only a 1×1 and a corrupt file: %v", err)
	}
	if st := l.Stats(); st.TooSmall != 1 || st.Corrupt != 1 || len(st.Errors) != 2 {
		t.Errorf("stats %+v", st)
	}
	for _, o := range []Options{
		{Dir: dir, Size: 8},
		{Dir: dir, BatchSize: 2},
		{Dir: dir, BatchSize: 3, SR: &SROptions{Scale: 2, Patch: 8, PatchesPerImage: 2}},
		{Dir: dir, BatchSize: 2, SR: &SROptions{Scale: 3, Patch: 8}},
	} {
		if _, err := NewLoader(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	writeImages(t, dir, 2, 8, 8)
	l2, _ := NewLoader(Options{Dir: dir, Size: 8, BatchSize: 1})
	defer l2.Close()
	if _, err := l2.Next(ctx); err == nil {
		t.Error("cancelled context ignored")
	}
}

func TestSRPairs(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, dir, 3, 20, 17)
	l, err := NewLoader(Options{Dir: dir, BatchSize: 4, Range: Range01, Seed: 3,
		SR: &SROptions{Scale: 2, Patch: 8, PatchesPerImage: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bs := collect(t, l)
	if len(bs) != 2 || bs[0].N != 4 || bs[1].N != 2 {
		t.Fatalf("%d batches", len(bs))
	}
	b := bs[0]
	if b.XShape != [4]int{4, 3, 4, 4} || b.YShape != [4]int{4, 3, 8, 8} || len(b.Y) != 4*3*64 || len(b.X) != 4*3*16 {
		t.Fatalf("shapes %v %v", b.XShape, b.YShape)
	}
	// The image is constant in red (its index): LR and HR agree there exactly.
	for s := 0; s < b.N; s++ {
		if b.X[s*48] != b.Y[s*192] {
			t.Errorf("sample %d: LR red %v, HR red %v", s, b.X[s*48], b.Y[s*192])
		}
	}
	if b.Files[0] != b.Files[1] {
		t.Error("patches of one image not adjacent")
	}
}

func TestBoxAndBicubicResize(t *testing.T) {
	img := imageio.NewRGB(4, 4)
	for i := range img.Pix {
		img.Pix[i] = uint8(i % 2 * 100)
	}
	out, err := squareResize(img, 2, Box)
	if err != nil {
		t.Fatal(err)
	}
	if out.W != 2 || out.Pix[0] != 50 {
		t.Errorf("box: %d×%d %v", out.W, out.H, out.Pix[:3])
	}
	out, err = squareResize(img, 3, Box) // not a multiple: bicubic
	if err != nil || out.W != 3 {
		t.Errorf("bicubic fallback: %v %v", out, err)
	}
}

func TestSplitKeys(t *testing.T) {
	thumbs := []rune{0x1F44D}
	thumbsDark := []rune{0x1F44D, 0x1F3FF}
	if GroupKey(thumbs) != "1f44d" || GroupKey(thumbsDark) != "1f44d" {
		t.Errorf("keys %q %q", GroupKey(thumbs), GroupKey(thumbsDark))
	}
	couple := []rune{0x1F9D1, 0x1F3FB, 0x200D, 0x2764, 0xFE0F, 0x200D, 0x1F9D1, 0x1F3FF}
	if GroupKey(couple) != "1f9d1-200d-2764-200d-1f9d1" {
		t.Errorf("couple key %q", GroupKey(couple))
	}
	if GroupKey([]rune{0x1F3FB}) != "1f3fb" {
		t.Error("bare modifier lost its key")
	}
	seq, err := ParseSequenceName("1f44d-1f3fb")
	if err != nil || !slices.Equal(seq, []rune{0x1F44D, 0x1F3FB}) || SequenceName(seq) != "1f44d-1f3fb" {
		t.Errorf("parse: %U %v", seq, err)
	}
	if _, err := ParseSequenceName("thumbs up"); err == nil {
		t.Error("bad name parsed")
	}
	// about 10 % of keys held out, stably
	held := 0
	for i := 0; i < 10000; i++ {
		if HeldOut(SequenceName([]rune{rune(0x1F000 + i)})) {
			held++
		}
	}
	if held < 900 || held > 1100 {
		t.Errorf("%d of 10000 held out", held)
	}
	if HeldOut("1f44d") != HeldOut(GroupKey(thumbsDark)) {
		t.Error("variants split apart")
	}
}

// TestRealData runs on the prepared folders when `make data` has been run.
func TestRealData(t *testing.T) {
	dir := filepath.Join("..", "..", "data", "noto128", "heldout")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("data/ not prepared (run make data)")
	}
	l, err := NewLoader(Options{Dir: dir, Size: 32, BatchSize: 64, Shuffle: true, Seed: 1, Resample: Box})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := l.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.N != 64 || l.Stats().Corrupt != 0 {
		t.Errorf("batch %d, stats %+v", b.N, l.Stats())
	}
}

// TestLoaderResumeAtEpochEnd resumes from the state taken right after an epoch's
// last batch (Pos = number of files, before the io.EOF): the resumed loader must
// end that epoch and go on with the next one exactly as an uninterrupted loader
// does, not fail with "fewer usable images than one batch".
func TestLoaderResumeAtEpochEnd(t *testing.T) {
	dir := t.TempDir()
	writeImages(t, dir, 9, 6, 6)
	for _, dropLast := range []bool{false, true} {
		opt := Options{Dir: dir, Size: 3, BatchSize: 3, Shuffle: true, Seed: 5, FlipH: true, DropLast: dropLast}
		ref, err := NewLoader(opt)
		if err != nil {
			t.Fatal(err)
		}
		e0 := collect(t, ref)
		e1 := collect(t, ref)
		ref.Close()

		a, _ := NewLoader(opt)
		for range e0 { // every batch of epoch 0, but not its io.EOF
			if _, err := a.Next(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		st := a.State()
		a.Close()
		if st.Epoch != 0 || st.Pos != 9 {
			t.Fatalf("state after epoch 0's last batch: %+v", st)
		}
		b, _ := NewLoader(opt)
		if err := b.Restore(st); err != nil {
			t.Fatal(err)
		}
		if x, err := b.Next(context.Background()); err != io.EOF {
			t.Fatalf("drop last %v: first Next after resuming at the epoch end = %v, %v; want io.EOF", dropLast, x, err)
		}
		got := collect(t, b)
		b.Close()
		if len(got) != len(e1) {
			t.Fatalf("drop last %v: epoch 1 after resume has %d batches, want %d", dropLast, len(got), len(e1))
		}
		for i := range got {
			if !slices.Equal(got[i].X, e1[i].X) || got[i].Epoch != 1 {
				t.Fatalf("drop last %v: epoch 1 batch %d differs after resume", dropLast, i)
			}
		}
	}
}
