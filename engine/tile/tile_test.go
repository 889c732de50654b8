package tile

import (
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
)

// bundled is a real, trained upscaler: its weights are not the symmetric
// random ones a fresh preset has, so a misplaced halo shows in its output.
const bundled = "../../models/espcn-residual-x2-emoji.safetensors"

func openBackend(t *testing.T) backend.Backend {
	t.Helper()
	b, err := choose.Open("") // the fastest built in: what the CLI and the service run
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// picture is a deterministic image with edges, gradients and noise, so every
// pixel of a tile's halo matters to the network.
func picture(w, h int, seed uint64) *imageio.RGB {
	r := rand.New(rand.NewPCG(seed, 0))
	img := imageio.NewRGB(w, h)
	for y := range h {
		for x := range w {
			base := uint8((x*7 + y*13) % 256)
			if (x/5+y/3)%2 == 0 {
				base = 255 - base
			}
			img.Set(x, y, base, uint8(r.IntN(256)), uint8((x*y)%256))
		}
	}
	return img
}

// maxDiff is the largest per-byte difference of two equal-size images.
func maxDiff(t *testing.T, got, want *imageio.RGB) int {
	t.Helper()
	if got.W != want.W || got.H != want.H {
		t.Fatalf("got %d×%d, want %d×%d", got.W, got.H, want.W, want.H)
	}
	d := 0
	for i := range got.Pix {
		d = max(d, absInt(int(got.Pix[i])-int(want.Pix[i])))
	}
	return d
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// The engine's parity tolerance is 1e-4 relative (engine/model parity_test.go)
// on outputs in [0, 1] or [−1, 1]: ≤ 0.03 of a level after ×255, so bytes
// may differ by one level where a value sits at a rounding boundary, never more.
const maxLevels = 1

// TestTiledMatchesWhole runs real networks whole and in tiles on awkward sizes
// (cores that divide nothing, images smaller than a tile, 1×N strips) and
// compares bytes. The tile sides are small so that every image is cut into
// several tiles and the test stays fast.
func TestTiledMatchesWhole(t *testing.T) {
	b := openBackend(t)
	type size struct{ w, h int }
	sizes := []size{{37, 23}, {23, 37}, {1, 50}, {50, 1}, {7, 5}, {16, 16}, {17, 16}, {33, 49}}
	pooled := []size{{44, 20}, {4, 36}, {36, 4}, {8, 8}, {28, 52}} // sides must be multiples of 4
	nets := []struct {
		name  string
		build func() (*model.Network, error)
		sizes []size
		heavy bool // minutes in the reference backend's plain loops
	}{
		{"bundled espcn-residual-x2-emoji", func() (*model.Network, error) {
			n, _, err := model.Open(bundled, b)
			return n, err
		}, sizes, false},
		{"espcn-x2", preset(b, "espcn-x2"), sizes, false},
		{"srcnn-classic", preset(b, "srcnn-classic"), sizes, false},
		{"srcnn-residual", preset(b, "srcnn-residual"), sizes, true},
		{"upsampler-stable", preset(b, "upsampler-stable"), pooled, true},
	}
	for _, nt := range nets {
		t.Run(nt.name, func(t *testing.T) {
			if nt.heavy && b.Name() == "ref" {
				t.Skip("minutes in the reference backend (a CGO_ENABLED=0 build); the cpu backend of make test runs it in a second")
			}
			net, err := nt.build()
			if err != nil {
				t.Fatal(err)
			}
			defer net.Free()
			cfg := net.Config()
			for _, side := range []int{5, 16} {
				tl, err := New(cfg, side)
				if err != nil {
					t.Fatal(err)
				}
				for i, sz := range nt.sizes {
					img := picture(sz.w, sz.h, uint64(i))
					whole, err := Net(net)(context.Background(), img)
					if err != nil {
						t.Fatal(err)
					}
					tiled, err := tl.Upscale(context.Background(), img, Net(net))
					if err != nil {
						t.Fatalf("side %d, %d×%d: %v", side, sz.w, sz.h, err)
					}
					if d := maxDiff(t, tiled, whole); d > maxLevels {
						t.Errorf("side %d (core %d, halo %d), %d×%d in %d tiles: bytes differ by up to %d levels from whole-image inference", side, tl.Side(), tl.Halo(), sz.w, sz.h, len(tl.Tiles(sz.w, sz.h)), d)
					}
				}
			}
		})
	}
}

func preset(b backend.Backend, name string) func() (*model.Network, error) {
	return func() (*model.Network, error) { return model.Build(name, b, model.Options{Seed: 3}) }
}

// TestHaloIsNeeded shows the halo is not padded for safety: one pixel less
// and the tiles' zero padding shows in the stitched image. (Networks whose
// halo is rounded up to a pooling multiple are left out: there one less can
// still be enough.)
func TestHaloIsNeeded(t *testing.T) {
	b := openBackend(t)
	net, _, err := model.Open(bundled, b)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	tl, err := New(net.Config(), 16)
	if err != nil {
		t.Fatal(err)
	}
	img := picture(40, 40, 9)
	whole, err := Net(net)(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	tl.halo--
	tiled, err := tl.Upscale(context.Background(), img, Net(net))
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, tiled, whole); d <= maxLevels {
		t.Errorf("halo %d (one less than the network's) still matches whole-image inference (max diff %d): the halo is larger than the receptive field", tl.halo, d)
	}
}

// TestTilesPartition checks the cut itself on many shapes: cores partition
// the image on the alignment grid, each input lies in the image, on the grid,
// holds its core and the halo (clipped to the image), all inputs have one
// size, and an image that fits in a core is one tile.
func TestTilesPartition(t *testing.T) {
	for _, tt := range []struct{ side, halo, align int }{{256, 4, 1}, {5, 4, 1}, {16, 12, 4}, {7, 3, 1}, {1, 2, 1}} {
		tl := Tiler{side: ceilTo(tt.side, tt.align), halo: tt.halo, align: tt.align, scale: 2}
		for _, w := range []int{1, 4, 5, 6, 16, 17, 255, 256, 257, 513, 1000} {
			for _, h := range []int{1, 4, 8, 9, 40} {
				if w%tt.align != 0 || h%tt.align != 0 {
					continue
				}
				name := fmt.Sprintf("side %d halo %d align %d, %d×%d", tt.side, tt.halo, tt.align, w, h)
				tiles := tl.Tiles(w, h)
				seen := make([]int, w*h)
				bounds := image.Rect(0, 0, w, h)
				for _, c := range tiles {
					if c.Core.Min.X%tt.align != 0 || c.Core.Min.Y%tt.align != 0 || c.Core.Dx() > tl.side || c.Core.Dy() > tl.side {
						t.Fatalf("%s: core %v off the grid or over the side", name, c.Core)
					}
					if c.In.Min.X%tt.align != 0 || c.In.Min.Y%tt.align != 0 || !c.In.In(bounds) || !c.Core.Inset(-tt.halo).Intersect(bounds).In(c.In) {
						t.Fatalf("%s: core %v has input %v: off the grid, outside the image or without the halo", name, c.Core, c.In)
					}
					if c.In.Size() != tiles[0].In.Size() {
						t.Fatalf("%s: inputs %v and %v differ in size", name, c.In, tiles[0].In)
					}
					for y := c.Core.Min.Y; y < c.Core.Max.Y; y++ {
						for x := c.Core.Min.X; x < c.Core.Max.X; x++ {
							seen[y*w+x]++
						}
					}
				}
				for i, n := range seen {
					if n != 1 {
						t.Fatalf("%s: pixel (%d,%d) is in %d cores", name, i%w, i/w, n)
					}
				}
				if fits := w <= tl.side && h <= tl.side; fits != (len(tiles) == 1) {
					t.Fatalf("%s: %d tiles", name, len(tiles))
				}
				if tw, th, cut := tl.MaxTile(w, h); tw != tiles[0].In.Dx() || th != tiles[0].In.Dy() || cut != (len(tiles) > 1) {
					t.Fatalf("%s: MaxTile = %d×%d, %v; the %d tiles are %v", name, tw, th, cut, len(tiles), tiles[0].In.Size())
				}
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	espcn, err := model.ConfigFor("espcn-residual", 0)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := model.ConfigFor("emoji-features", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cfg  model.Config
		side int
		msg  string
	}{
		{espcn, -1, "must not be negative"},
		{enc, 16, "not an upscaler"},
	} {
		if _, err := New(tt.cfg, tt.side); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("New(%s, %d) = %v, want %q", tt.cfg.Preset, tt.side, err, tt.msg)
		}
	}
	tl, err := New(espcn, 8)
	if err != nil {
		t.Fatal(err)
	}
	wrongSize := func(context.Context, *imageio.RGB) (*imageio.RGB, error) { return imageio.NewRGB(3, 3), nil }
	failing := func(context.Context, *imageio.RGB) (*imageio.RGB, error) { return nil, fmt.Errorf("boom") }
	for _, tt := range []struct {
		img *imageio.RGB
		run RunFunc
		msg string
	}{
		{nil, wrongSize, "nil image"},
		{&imageio.RGB{W: 4, H: 4, Pix: make([]byte, 5)}, wrongSize, "has 5 bytes"},
		{picture(20, 20, 1), wrongSize, "came back 3×3"},
		{picture(4, 4, 1), wrongSize, "came back 3×3"}, // whole, one tile
		{picture(20, 20, 1), failing, "boom"},
	} {
		if _, err := tl.Upscale(context.Background(), tt.img, tt.run); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Upscale: %v, want %q", err, tt.msg)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tl.Upscale(ctx, picture(20, 20, 1), wrongSize); err != context.Canceled {
		t.Errorf("Upscale after cancel: %v", err)
	}
}
