package features

import (
	"math"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// Degradation is a named, deterministic way of spoiling real images, used to
// check that a feature-space score worsens the way a viewer's judgement does.
type Degradation struct {
	Name  string
	Apply func(m *imageio.RGB, seed uint64) *imageio.RGB
}

// Degradations are the metric's validation ladder, mildest first; "blobs" is
// what an undertrained generator draws: the palette and the rough layout of an
// emoji with nothing recognisable in it.
func Degradations() []Degradation {
	return []Degradation{
		{"blur σ = side/64", func(m *imageio.RGB, _ uint64) *imageio.RGB { return GaussianBlur(m, float64(m.W)/64) }},
		{"blur σ = side/32", func(m *imageio.RGB, _ uint64) *imageio.RGB { return GaussianBlur(m, float64(m.W)/32) }},
		{"colour channels rotated (R→G→B→R)", func(m *imageio.RGB, _ uint64) *imageio.RGB { return rotateChannels(m) }},
		{"Gaussian noise σ = 32 levels", func(m *imageio.RGB, s uint64) *imageio.RGB { return addNoise(m, 32, s) }},
		{"blobs (blur σ = side/10)", func(m *imageio.RGB, _ uint64) *imageio.RGB { return GaussianBlur(m, float64(m.W)/10) }},
		{"uniform noise images", func(m *imageio.RGB, s uint64) *imageio.RGB { return uniformNoise(m.W, m.H, s) }},
	}
}

// GaussianBlur blurs with a separable Gaussian of standard deviation sigma
// pixels (kernel radius 3σ, mirrored borders).
func GaussianBlur(m *imageio.RGB, sigma float64) *imageio.RGB {
	r := max(1, int(math.Ceil(3*sigma)))
	k := make([]float64, 2*r+1)
	var sum float64
	for i := range k {
		x := float64(i - r)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	mirror := func(i, n int) int {
		for i < 0 || i >= n {
			if i < 0 {
				i = -i - 1
			} else {
				i = 2*n - i - 1
			}
		}
		return i
	}
	tmp := make([]float64, len(m.Pix))
	for y := range m.H {
		for x := range m.W {
			for c := range 3 {
				var v float64
				for i, w := range k {
					v += w * float64(m.Pix[(y*m.W+mirror(x+i-r, m.W))*3+c])
				}
				tmp[(y*m.W+x)*3+c] = v
			}
		}
	}
	out := imageio.NewRGB(m.W, m.H)
	for y := range m.H {
		for x := range m.W {
			for c := range 3 {
				var v float64
				for i, w := range k {
					v += w * tmp[(mirror(y+i-r, m.H)*m.W+x)*3+c]
				}
				out.Pix[(y*m.W+x)*3+c] = clampByte(v)
			}
		}
	}
	return out
}

func rotateChannels(m *imageio.RGB) *imageio.RGB {
	out := imageio.NewRGB(m.W, m.H)
	for p := 0; p < len(m.Pix); p += 3 {
		out.Pix[p], out.Pix[p+1], out.Pix[p+2] = m.Pix[p+2], m.Pix[p], m.Pix[p+1]
	}
	return out
}

func addNoise(m *imageio.RGB, sigma float64, seed uint64) *imageio.RGB {
	rng := rand.New(rand.NewPCG(seed, 0x6e6f697365)) // "noise"
	out := imageio.NewRGB(m.W, m.H)
	for p, v := range m.Pix {
		out.Pix[p] = clampByte(float64(v) + sigma*rng.NormFloat64())
	}
	return out
}

func uniformNoise(w, h int, seed uint64) *imageio.RGB {
	rng := rand.New(rand.NewPCG(seed, 0x756e69)) // "uni"
	out := imageio.NewRGB(w, h)
	for p := range out.Pix {
		out.Pix[p] = uint8(rng.IntN(256))
	}
	return out
}

func clampByte(v float64) uint8 {
	return uint8(math.Round(min(255, max(0, v))))
}
