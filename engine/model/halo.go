package model

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/metrics"
)

// Halo is how many input pixels of context, on each side of a region of an
// upscaler's input, fix its output over that region exactly: the reach of
// its receptive field, rounded up to SideMultiple so that a tile cut with
// this margin keeps every pooling grid where whole-image inference has it.
// engine/tile cuts large images with it; a smaller margin would let a tile's
// zero padding leak into the pixels it keeps.
//
// It is read off the layers, walking back from the output: a conv adds its
// padding reach (in its own pixels, times its stride), pixel shuffle, nearest
// upsampling and the bicubic steps divide by their factor (rounding up), the
// bicubic steps add their kernel's reach, and a residual takes the larger of
// its body and its skip. A network with a dense, flatten or reshape layer
// has no finite halo (every output pixel sees the whole input).
func (c Config) Halo() (int, error) {
	if c.Role != Upscaler {
		return 0, fmt.Errorf("model %s: only an upscaler has a halo (it maps image regions to image regions), this is a %s", c.Preset, c.Role)
	}
	steps, err := c.Plan()
	if err != nil {
		return 0, err
	}
	reach := 0 // in the pixels of the current layer's output, walking back
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i].Spec
		switch s.Op {
		case OpConv:
			stride := max(s.Stride, 1)
			reach = stride*reach + max(s.Pad, s.Kernel-1-s.Pad)
		case OpMaxPool:
			// With the region aligned to the pooling grid, a pooled pixel
			// sees exactly its own 2×2 block.
			reach *= 2
		case OpUpsample:
			reach = ceilDiv(reach, 2)
		case OpPixelShuffle:
			reach = ceilDiv(reach, s.Factor)
		case OpDense, OpFlatten, OpReshape:
			return 0, fmt.Errorf("model %s: layer %s (%s) makes every output pixel depend on the whole input, so it cannot run in tiles", c.Preset, s.Name, s.Op)
		}
	}
	if c.Residual && skipUpscales(steps) {
		reach = max(reach, bicubicReach(c.Scale)) // the skip is Bicubic ×Scale
	}
	if c.Input == InputBicubic {
		reach = ceilDiv(reach, c.Scale) + bicubicReach(c.Scale)
	}
	m := c.SideMultiple()
	return ceilDiv(reach, m) * m, nil
}

// bicubicReach is how far, in input pixels, MATLAB-bicubic ×r (the engine's
// layer.Bicubic, from metrics.BicubicContributions) reaches from the input
// pixel an output pixel lies in to the farthest tap it weights. It is taken
// from the resampler's own contributions, away from the mirrored borders,
// rather than from the kernel's nominal width.
func bicubicReach(r int) int {
	const n = 16 // long enough that the middle samples see no border
	taps, index, weights := metrics.BicubicContributions(n, n*r, float64(r))
	reach := 0
	for o := 4 * r; o < (n-4)*r; o++ {
		for k := range taps {
			if weights[o*taps+k] != 0 {
				reach = max(reach, abs(index[o*taps+k]-o/r))
			}
		}
	}
	return reach
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}
