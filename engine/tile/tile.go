// Package tile upscales an image in overlapping tiles, so that the memory an
// upscaler needs follows the tile size rather than the image: a network's
// activations are tens of channels of float32 per pixel (a 4000² photo through
// espcn-residual peaked at 18 GB whole). Each tile is run with a halo of
// context around it (model.Config.Halo, the network's receptive field) and
// only its core is kept, so the stitched image is the one whole-image
// inference gives, up to the float rounding of different kernel shapes.
// The CLI and the upscaler service both cut images here.
package tile

import (
	"context"
	"fmt"
	"image"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
)

// DefaultSide is the tile side, in input pixels, the CLI and the upscaler use
// unless told otherwise: espcn-residual's halo of 4 then adds ≈ 6 % to the
// compute, while its largest activation stays ≈ 17 MiB (64 channels × 264²
// float32); docs/performance.md has the measurements.
const DefaultSide = 256

// Tiler cuts images for one network; build it with New.
type Tiler struct {
	side  int // core side in input pixels; 0: never cut
	halo  int // input pixels of context on each side of a core
	align int // every cut lies on a multiple of this (the network's pooling grid)
	scale int
}

// New returns a Tiler for the upscaler cfg with cores of side input pixels
// (rounded up to the network's SideMultiple); side 0 means whole images.
func New(cfg model.Config, side int) (Tiler, error) {
	if err := CheckSide(side); err != nil {
		return Tiler{}, err
	}
	switch {
	case cfg.Role != model.Upscaler:
		return Tiler{}, fmt.Errorf("tile: model %s is a %s, not an upscaler", cfg.Preset, cfg.Role)
	case side == 0:
		return Tiler{scale: cfg.Scale}, nil
	}
	halo, err := cfg.Halo()
	if err != nil {
		return Tiler{}, fmt.Errorf("tile: %w", err)
	}
	align := cfg.SideMultiple()
	return Tiler{side: ceilTo(side, align), halo: halo, align: align, scale: cfg.Scale}, nil
}

// CheckSide reports a tile side no Tiler takes (flags check it at start-up).
func CheckSide(side int) error {
	if side < 0 {
		return fmt.Errorf("tile: side %d must not be negative (0 runs whole images)", side)
	}
	return nil
}

// Side is the core side in input pixels (0: whole images).
func (t Tiler) Side() int { return t.side }

// Halo is the context in input pixels each tile carries around its core.
func (t Tiler) Halo() int { return t.halo }

// A Tile is one cut of an image, in input pixels.
type Tile struct {
	// In is what the network runs on: Core with at least the halo on every
	// side that is not the image's border.
	In image.Rectangle
	// Core is the part of the input whose output this tile gives; the cores
	// of an image's tiles partition it.
	Core image.Rectangle
}

// Tiles cuts a w×h image: one tile when the image fits in one core, else a
// grid of cores of near-equal sides, each run on an input of one and the
// same size (a core and its halo, moved inside the image at the borders,
// where it sees more context than it needs). One size for every tile means
// the network keeps its buffers from tile to tile (it re-allocates them when
// the shape changes; that cost 1.4× at 1024² with clipped edge tiles) and a
// server batches the tiles together.
func (t Tiler) Tiles(w, h int) []Tile {
	xs, ys := t.spans(w), t.spans(h)
	lw, lh := t.inLen(xs, w), t.inLen(ys, h)
	out := make([]Tile, 0, len(xs)*len(ys))
	for _, y := range ys {
		for _, x := range xs {
			x0, y0 := t.inStart(x, lw, w), t.inStart(y, lh, h)
			out = append(out, Tile{In: image.Rect(x0, y0, x0+lw, y0+lh), Core: image.Rect(x.lo, y.lo, x.hi, y.hi)})
		}
	}
	return out
}

// MaxTile is the input size of every tile of a w×h image, what one tile's
// buffers cost; cut is false when the image runs whole (no tile buffers).
func (t Tiler) MaxTile(w, h int) (tw, th int, cut bool) {
	xs, ys := t.spans(w), t.spans(h)
	return t.inLen(xs, w), t.inLen(ys, h), len(xs) > 1 || len(ys) > 1
}

type span struct{ lo, hi int }

// spans splits [0, n) into cores of at most side (aligned), of equal length
// but the last.
func (t Tiler) spans(n int) []span {
	if t.side == 0 || n <= t.side {
		return []span{{0, n}}
	}
	count := ceilDiv(n, t.side)
	core := ceilTo(ceilDiv(n, count), t.align)
	out := make([]span, 0, count)
	for lo := 0; lo < n; lo += core {
		out = append(out, span{lo, min(n, lo+core)})
	}
	return out
}

// inLen is the input length of every tile over cores cut from [0, n): the
// first (longest) core and a halo on both sides, or all of [0, n).
func (t Tiler) inLen(cores []span, n int) int {
	if len(cores) == 1 {
		return n
	}
	return min(n, cores[0].hi-cores[0].lo+2*t.halo)
}

// inStart places a tile's input of length l: the halo before the core,
// moved inside [0, n). Both ends keep at least the halo around the core or
// meet the border: l holds the longest core and two halos. Every term is a
// multiple of the alignment, so the start is too.
func (t Tiler) inStart(core span, l, n int) int {
	return max(0, min(core.lo-t.halo, n-l))
}

// RunFunc upscales one image (a tile) by the network's scale.
type RunFunc func(ctx context.Context, img *imageio.RGB) (*imageio.RGB, error)

// Net runs each tile through net.Upscale, one at a time: the CLI's RunFunc (a
// server submits tiles to its batcher instead).
func Net(net *model.Network) RunFunc {
	return func(ctx context.Context, img *imageio.RGB) (*imageio.RGB, error) {
		out, err := net.Upscale(ctx, []*imageio.RGB{img})
		if err != nil {
			return nil, err
		}
		return out[0], nil
	}
}

// Upscale upscales img with run, tile by tile (one at a time, so one tile's
// buffers are alive at once), and stitches the cores' outputs. An image that
// fits in one tile goes to run whole.
func (t Tiler) Upscale(ctx context.Context, img *imageio.RGB, run RunFunc) (*imageio.RGB, error) {
	if err := img.Validate(); err != nil {
		return nil, fmt.Errorf("tile: %w", err)
	}
	tiles := t.Tiles(img.W, img.H)
	if len(tiles) == 1 {
		out, err := run(ctx, img)
		if err != nil {
			return nil, err
		}
		return out, t.checkOut(out, image.Rect(0, 0, img.W, img.H))
	}
	s := t.scale
	out := imageio.NewRGB(s*img.W, s*img.H)
	for _, tl := range tiles {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in, err := img.Crop(tl.In.Min.X, tl.In.Min.Y, tl.In.Dx(), tl.In.Dy())
		if err != nil {
			return nil, fmt.Errorf("tile: %w", err)
		}
		up, err := run(ctx, in)
		if err != nil {
			return nil, err
		}
		if err := t.checkOut(up, tl.In); err != nil {
			return nil, err
		}
		// Copy the core's rows: the output of Core, offset by the halo kept
		// on the tile's top-left.
		dx, dy := s*(tl.Core.Min.X-tl.In.Min.X), s*(tl.Core.Min.Y-tl.In.Min.Y)
		rowBytes := 3 * s * tl.Core.Dx()
		for y := range s * tl.Core.Dy() {
			src := ((dy+y)*up.W + dx) * 3
			dst := ((s*tl.Core.Min.Y+y)*out.W + s*tl.Core.Min.X) * 3
			copy(out.Pix[dst:dst+rowBytes], up.Pix[src:src+rowBytes])
		}
	}
	return out, nil
}

// checkOut checks that run gave back Scale× the input r.
func (t Tiler) checkOut(out *imageio.RGB, r image.Rectangle) error {
	if err := out.Validate(); err != nil {
		return fmt.Errorf("tile: upscaled tile: %w", err)
	}
	if out.W != t.scale*r.Dx() || out.H != t.scale*r.Dy() {
		return fmt.Errorf("tile: a %d×%d tile came back %d×%d, want ×%d", r.Dx(), r.Dy(), out.W, out.H, t.scale)
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func ceilTo(a, m int) int { return ceilDiv(a, m) * m }
