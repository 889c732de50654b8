package imageio

import (
	"fmt"
	"math"
)

// The conversions name their float range: 01 is [0, 1] (v/255), Signed is [−1, 1]
// (v/127.5 − 1, the DCGAN tanh range). The way back clamps to the range, scales to
// [0, 255] and rounds half away from zero (math.Round), which is the SRCNN contract
// "clamped to [0, 1], ×255, rounded". NaN is an error, never a silent 0.

// ToCHW01 returns the image as float32 CHW (3×H×W) in [0, 1].
func ToCHW01(img *RGB) ([]float32, error) {
	return toCHW(img, 1.0/255, 0)
}

// ToCHWSigned returns the image as float32 CHW (3×H×W) in [−1, 1].
func ToCHWSigned(img *RGB) ([]float32, error) {
	return toCHW(img, 1.0/127.5, -1)
}

// AppendCHW01 appends the image's CHW [0, 1] values to dst (for filling batches
// without an allocation per image).
func AppendCHW01(dst []float32, img *RGB) []float32 { return appendCHW(dst, img, 1.0/255, 0) }

// AppendCHWSigned appends the image's CHW [−1, 1] values to dst.
func AppendCHWSigned(dst []float32, img *RGB) []float32 {
	return appendCHW(dst, img, 1.0/127.5, -1)
}

func toCHW(img *RGB, scale, offset float32) ([]float32, error) {
	if err := img.Validate(); err != nil {
		return nil, err
	}
	return appendCHW(make([]float32, 0, len(img.Pix)), img, scale, offset), nil
}

func appendCHW(dst []float32, img *RGB, scale, offset float32) []float32 {
	n := img.W * img.H
	base := len(dst)
	dst = append(dst, make([]float32, 3*n)...)
	out := dst[base:]
	for i := 0; i < n; i++ {
		out[i] = float32(img.Pix[i*3])*scale + offset
		out[n+i] = float32(img.Pix[i*3+1])*scale + offset
		out[2*n+i] = float32(img.Pix[i*3+2])*scale + offset
	}
	return dst
}

// FromCHW01 converts float32 CHW (3×h×w) in [0, 1] to an image: clamp to [0, 1],
// ×255, round half away from zero.
func FromCHW01(chw []float32, w, h int) (*RGB, error) {
	return fromCHW(chw, w, h, 255, 0)
}

// FromCHWSigned converts float32 CHW (3×h×w) in [−1, 1] to an image: clamp to
// [−1, 1], map to [0, 255] by (v+1)·127.5, round half away from zero.
func FromCHWSigned(chw []float32, w, h int) (*RGB, error) {
	return fromCHW(chw, w, h, 127.5, 1)
}

func fromCHW(chw []float32, w, h int, scale, offset float64) (*RGB, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("imageio: empty image %d×%d", w, h)
	}
	n := w * h
	if len(chw) != 3*n {
		return nil, fmt.Errorf("imageio: CHW buffer has %d values, want 3×%d×%d = %d", len(chw), h, w, 3*n)
	}
	out := NewRGB(w, h)
	for c := 0; c < 3; c++ {
		for i, v := range chw[c*n : (c+1)*n] {
			f := float64(v)
			if math.IsNaN(f) {
				return nil, fmt.Errorf("imageio: NaN at channel %d pixel (%d,%d)", c, i%w, i/w)
			}
			f = math.Round((f + offset) * scale)
			out.Pix[i*3+c] = uint8(max(0, min(255, f)))
		}
	}
	return out, nil
}
