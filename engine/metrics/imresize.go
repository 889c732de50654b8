// Package metrics computes the two quality numbers hirez is judged by, exactly as the
// literature defines them (docs/metrics.md): PSNR and SSIM on the BT.601 luma of
// super-resolved images against a MATLAB-style bicubic pipeline, and the Sliced
// Wasserstein Distance of ProGAN for generated images. It needs no pretrained
// network and no engine backend: it works on 8-bit images from imageio.
package metrics

import (
	"fmt"
	"math"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// cubic is Keys' cubic convolution kernel with a = −0.5, as MATLAB's imresize.
func cubic(x float64) float64 {
	ax := math.Abs(x)
	ax2, ax3 := ax*ax, ax*ax*ax
	switch {
	case ax <= 1:
		return 1.5*ax3 - 2.5*ax2 + 1
	case ax <= 2:
		return -0.5*ax3 + 2.5*ax2 - 4*ax + 2
	}
	return 0
}

// contrib holds, for each output sample, the input indices (0-based) and weights
// that produce it, as MATLAB's imresize/contributions computes them.
type contrib struct {
	taps    int       // weights per output sample
	index   []int     // out×taps
	weights []float64 // out×taps
}

// contributions follows MATLAB imresize: when downscaling the kernel is stretched by
// 1/scale (antialiasing); output sample o (1-based) maps to input position
// u = o/scale + 0.5·(1 − 1/scale); taps that fall outside the image are mirrored
// symmetrically (…2 1 | 1 2 … n | n n−1…); weights are normalised to sum 1; tap
// columns whose weight is zero for every output sample are dropped.
func contributions(inLen, outLen int, scale float64) contrib {
	kernel := cubic
	width := 4.0
	if scale < 1 {
		kernel = func(x float64) float64 { return scale * cubic(scale*x) }
		width /= scale
	}
	p := int(math.Ceil(width)) + 2
	idx := make([]int, outLen*p)
	w := make([]float64, outLen*p)
	for o := 0; o < outLen; o++ {
		u := float64(o+1)/scale + 0.5*(1-1/scale)
		left := math.Floor(u - width/2)
		sum := 0.0
		for j := 0; j < p; j++ {
			pos := left + float64(j) // 1-based input index
			v := kernel(u - pos)
			w[o*p+j] = v
			sum += v
			idx[o*p+j] = symmetric(int(pos)-1, inLen)
		}
		for j := 0; j < p; j++ {
			w[o*p+j] /= sum
		}
	}
	// drop all-zero columns (MATLAB's "kill"); this changes no result, only work
	keep := make([]int, 0, p)
	for j := 0; j < p; j++ {
		for o := 0; o < outLen; o++ {
			if w[o*p+j] != 0 {
				keep = append(keep, j)
				break
			}
		}
	}
	c := contrib{taps: len(keep), index: make([]int, outLen*len(keep)), weights: make([]float64, outLen*len(keep))}
	for o := 0; o < outLen; o++ {
		for k, j := range keep {
			c.index[o*c.taps+k] = idx[o*p+j]
			c.weights[o*c.taps+k] = w[o*p+j]
		}
	}
	return c
}

// BicubicContributions exposes contributions for networks that bicubic-resize
// inside themselves (engine/layer's Bicubic), so the MATLAB kernel, mapping and
// border rule live in one place: for each of outLen samples it returns taps input
// indices (0-based, mirrored into [0, inLen)) and weights that sum to 1.
func BicubicContributions(inLen, outLen int, scale float64) (taps int, index []int, weights []float64) {
	c := contributions(inLen, outLen, scale)
	return c.taps, c.index, c.weights
}

// symmetric maps a 0-based index into [0, n) by mirroring with the edge sample
// repeated (MATLAB's aux = [1:n, n:-1:1]).
func symmetric(i, n int) int {
	period := 2 * n
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - 1 - i
	}
	return i
}

// Imresize resizes like MATLAB imresize(img, scale, 'bicubic') on a uint8 image: the
// output side is ⌈scale·side⌉, the kernel uses scale itself, the dimension with the
// smaller scale is resized first (rows first on a tie), and each pass rounds to
// uint8 (half away from zero, saturating) as MATLAB's uint8 path does.
func Imresize(img *imageio.RGB, scale float64) (*imageio.RGB, error) {
	if !(scale > 0) || math.IsInf(scale, 0) {
		return nil, fmt.Errorf("metrics: imresize scale %v", scale)
	}
	if err := img.Validate(); err != nil {
		return nil, err
	}
	w := int(math.Ceil(scale * float64(img.W)))
	h := int(math.Ceil(scale * float64(img.H)))
	return resize(img, w, h, scale, scale)
}

// ImresizeTo resizes like MATLAB imresize(img, [h w], 'bicubic'): the scale of each
// dimension is out/in.
func ImresizeTo(img *imageio.RGB, w, h int) (*imageio.RGB, error) {
	if err := img.Validate(); err != nil {
		return nil, err
	}
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("metrics: imresize to %d×%d", w, h)
	}
	return resize(img, w, h, float64(w)/float64(img.W), float64(h)/float64(img.H))
}

func resize(img *imageio.RGB, w, h int, sx, sy float64) (*imageio.RGB, error) {
	if w <= 0 || h <= 0 || w > 1<<16 || h > 1<<16 {
		return nil, fmt.Errorf("metrics: imresize output %d×%d", w, h)
	}
	cur := img
	if sy <= sx {
		cur = resizeRows(cur, h, sy)
		cur = resizeCols(cur, w, sx)
	} else {
		cur = resizeCols(cur, w, sx)
		cur = resizeRows(cur, h, sy)
	}
	cur.Gray = img.Gray
	return cur, nil
}

func toUint8(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// resizeRows resizes along y (MATLAB dimension 1).
func resizeRows(src *imageio.RGB, outH int, scale float64) *imageio.RGB {
	if outH == src.H && scale == 1 {
		return src.Clone()
	}
	c := contributions(src.H, outH, scale)
	out := imageio.NewRGB(src.W, outH)
	stride := src.W * 3
	acc := make([]float64, stride)
	for o := 0; o < outH; o++ {
		clear(acc)
		for k := 0; k < c.taps; k++ {
			wt := c.weights[o*c.taps+k]
			row := src.Pix[c.index[o*c.taps+k]*stride:][:stride]
			for i, v := range row {
				acc[i] += wt * float64(v)
			}
		}
		dst := out.Pix[o*stride:][:stride]
		for i, v := range acc {
			dst[i] = toUint8(v)
		}
	}
	return out
}

// resizeCols resizes along x (MATLAB dimension 2).
func resizeCols(src *imageio.RGB, outW int, scale float64) *imageio.RGB {
	if outW == src.W && scale == 1 {
		return src.Clone()
	}
	c := contributions(src.W, outW, scale)
	out := imageio.NewRGB(outW, src.H)
	for y := 0; y < src.H; y++ {
		row := src.Pix[y*src.W*3:][:src.W*3]
		dst := out.Pix[y*outW*3:][:outW*3]
		for o := 0; o < outW; o++ {
			var r, g, b float64
			for k := 0; k < c.taps; k++ {
				wt := c.weights[o*c.taps+k]
				i := c.index[o*c.taps+k] * 3
				r += wt * float64(row[i])
				g += wt * float64(row[i+1])
				b += wt * float64(row[i+2])
			}
			dst[o*3], dst[o*3+1], dst[o*3+2] = toUint8(r), toUint8(g), toUint8(b)
		}
	}
	return out
}

// Modcrop cuts width and height down to multiples of scale, keeping the top-left
// corner (MATLAB modcrop).
func Modcrop(img *imageio.RGB, scale int) (*imageio.RGB, error) {
	if scale < 1 {
		return nil, fmt.Errorf("metrics: modcrop scale %d", scale)
	}
	if err := img.Validate(); err != nil {
		return nil, err
	}
	w, h := img.W-img.W%scale, img.H-img.H%scale
	if w == 0 || h == 0 {
		return nil, fmt.Errorf("metrics: %d×%d image is smaller than scale %d", img.W, img.H, scale)
	}
	return img.Crop(0, 0, w, h)
}
