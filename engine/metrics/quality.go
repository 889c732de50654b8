package metrics

import (
	"fmt"
	"math"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// Plane is one 8-bit channel, row-major.
type Plane struct {
	W, H int
	Pix  []uint8
}

// Y returns the BT.601 luma of img as MATLAB rgb2ycbcr computes it on uint8 input:
// Y = 16 + (65.481·R + 128.553·G + 24.966·B)/255 with R, G, B the 8-bit values
// (equivalently 16 + 65.481·r + … with r in [0, 1]), rounded half away from zero.
// A grey image (img.Gray) is its own luma and is returned unchanged.
func Y(img *imageio.RGB) (Plane, error) {
	if err := img.Validate(); err != nil {
		return Plane{}, err
	}
	p := Plane{W: img.W, H: img.H, Pix: make([]uint8, img.W*img.H)}
	if img.Gray {
		for i := range p.Pix {
			p.Pix[i] = img.Pix[i*3]
		}
		return p, nil
	}
	// MATLAB scales the coefficients first (T/255, in double) and then combines;
	// doing the same keeps the rare exact .5 ties on the same side.
	c0, c1, c2 := 65.481, 128.553, 24.966
	c0, c1, c2 = c0/255, c1/255, c2/255
	for i := range p.Pix {
		r, g, b := float64(img.Pix[i*3]), float64(img.Pix[i*3+1]), float64(img.Pix[i*3+2])
		y := c0*r + c1*g + c2*b + 16
		p.Pix[i] = uint8(math.Floor(y + 0.5)) // y ∈ [16, 235]: no clamping needed
	}
	return p, nil
}

// Shave removes n pixels from every border.
func (p Plane) Shave(n int) (Plane, error) {
	if n < 0 || 2*n >= p.W || 2*n >= p.H {
		return Plane{}, fmt.Errorf("metrics: cannot shave %d px from a %d×%d image", n, p.W, p.H)
	}
	w, h := p.W-2*n, p.H-2*n
	out := Plane{W: w, H: h, Pix: make([]uint8, w*h)}
	for y := 0; y < h; y++ {
		copy(out.Pix[y*w:(y+1)*w], p.Pix[(y+n)*p.W+n:])
	}
	return out, nil
}

// Quality is the SR verdict on one image: PSNR in dB and SSIM, on the luma with the
// border shaved.
type Quality struct {
	PSNR, SSIM float64
}

// Compare computes PSNR and SSIM between a high-resolution reference and a
// super-resolved image of the same size, on Y with `shave` pixels (the scale) cut
// from every border (docs/metrics.md).
func Compare(hr, sr *imageio.RGB, shave int) (Quality, error) {
	a, b, err := shavedY(hr, sr, shave)
	if err != nil {
		return Quality{}, err
	}
	s, err := SSIMPlane(a, b)
	if err != nil {
		return Quality{}, err
	}
	return Quality{PSNR: PSNRPlane(a, b), SSIM: s}, nil
}

// PSNR is Compare's PSNR alone.
func PSNR(hr, sr *imageio.RGB, shave int) (float64, error) {
	a, b, err := shavedY(hr, sr, shave)
	if err != nil {
		return 0, err
	}
	return PSNRPlane(a, b), nil
}

// SSIM is Compare's SSIM alone.
func SSIM(hr, sr *imageio.RGB, shave int) (float64, error) {
	a, b, err := shavedY(hr, sr, shave)
	if err != nil {
		return 0, err
	}
	return SSIMPlane(a, b)
}

func shavedY(hr, sr *imageio.RGB, shave int) (Plane, Plane, error) {
	if err := hr.Validate(); err != nil {
		return Plane{}, Plane{}, fmt.Errorf("hr: %w", err)
	}
	if err := sr.Validate(); err != nil {
		return Plane{}, Plane{}, fmt.Errorf("sr: %w", err)
	}
	if hr.W != sr.W || hr.H != sr.H {
		return Plane{}, Plane{}, fmt.Errorf("metrics: size mismatch %d×%d vs %d×%d", hr.W, hr.H, sr.W, sr.H)
	}
	ya, _ := Y(hr)
	yb, _ := Y(sr)
	a, err := ya.Shave(shave)
	if err != nil {
		return Plane{}, Plane{}, err
	}
	b, _ := yb.Shave(shave)
	return a, b, nil
}

// PSNRPlane is 10·log10(255²/MSE) between two planes of one size; +Inf when equal.
func PSNRPlane(a, b Plane) float64 {
	var se float64
	for i, v := range a.Pix {
		d := float64(v) - float64(b.Pix[i])
		se += d * d
	}
	if se == 0 {
		return math.Inf(1)
	}
	mse := se / float64(len(a.Pix))
	return 10 * math.Log10(255*255/mse)
}

// SSIM constants: an 11×11 Gaussian window with σ = 1.5 (radius ⌊3.5σ + 0.5⌋ = 5, as
// scikit-image's gaussian_weights and MATLAB's fspecial('gaussian', 11, 1.5)),
// K1 = 0.01, K2 = 0.03, L = 255, population covariances.
const (
	ssimSigma  = 1.5
	ssimRadius = 5
)

// SSIMPlane is the mean structural similarity of two planes of one size over the
// valid area (where the whole window fits), as in Wang et al. 2004.
func SSIMPlane(a, b Plane) (float64, error) {
	if a.W != b.W || a.H != b.H {
		return 0, fmt.Errorf("metrics: SSIM size mismatch %d×%d vs %d×%d", a.W, a.H, b.W, b.H)
	}
	const win = 2*ssimRadius + 1
	if a.W < win || a.H < win {
		return 0, fmt.Errorf("metrics: SSIM needs at least %d×%d, got %d×%d", win, win, a.W, a.H)
	}
	var k [win]float64
	var ks float64
	for i := range k {
		x := float64(i - ssimRadius)
		k[i] = math.Exp(-0.5 * x * x / (ssimSigma * ssimSigma))
		ks += k[i]
	}
	for i := range k {
		k[i] /= ks
	}
	w, h := a.W, a.H
	n := w * h
	x, y := make([]float64, n), make([]float64, n)
	for i := range a.Pix {
		x[i], y[i] = float64(a.Pix[i]), float64(b.Pix[i])
	}
	xx, yy, xy := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range x {
		xx[i], yy[i], xy[i] = x[i]*x[i], y[i]*y[i], x[i]*y[i]
	}
	ow, oh := w-win+1, h-win+1
	filter := func(src []float64) []float64 {
		// horizontal valid pass: h × ow, then vertical valid pass: oh × ow
		tmp := make([]float64, h*ow)
		for r := 0; r < h; r++ {
			row := src[r*w:]
			for c := 0; c < ow; c++ {
				var s float64
				for t := 0; t < win; t++ {
					s += k[t] * row[c+t]
				}
				tmp[r*ow+c] = s
			}
		}
		out := make([]float64, oh*ow)
		for r := 0; r < oh; r++ {
			for c := 0; c < ow; c++ {
				var s float64
				for t := 0; t < win; t++ {
					s += k[t] * tmp[(r+t)*ow+c]
				}
				out[r*ow+c] = s
			}
		}
		return out
	}
	ux, uy := filter(x), filter(y)
	uxx, uyy, uxy := filter(xx), filter(yy), filter(xy)
	const c1, c2 = (0.01 * 255) * (0.01 * 255), (0.03 * 255) * (0.03 * 255)
	var sum float64
	for i := range ux {
		vx := uxx[i] - ux[i]*ux[i]
		vy := uyy[i] - uy[i]*uy[i]
		vxy := uxy[i] - ux[i]*uy[i]
		num := (2*ux[i]*uy[i] + c1) * (2*vxy + c2)
		den := (ux[i]*ux[i] + uy[i]*uy[i] + c1) * (vx + vy + c2)
		sum += num / den
	}
	return sum / float64(len(ux)), nil
}

// BicubicBaseline runs the classic SR baseline on one HR image: modcrop to the
// scale, downscale by 1/scale and upscale by scale with MATLAB bicubic, then Compare
// with the border of `scale` pixels shaved. It also returns the LR image.
func BicubicBaseline(hr *imageio.RGB, scale int) (Quality, *imageio.RGB, error) {
	hr, err := Modcrop(hr, scale)
	if err != nil {
		return Quality{}, nil, err
	}
	lr, err := Imresize(hr, 1/float64(scale))
	if err != nil {
		return Quality{}, nil, err
	}
	sr, err := Imresize(lr, float64(scale))
	if err != nil {
		return Quality{}, nil, err
	}
	q, err := Compare(hr, sr, scale)
	return q, lr, err
}
