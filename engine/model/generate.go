package model

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// latentStream is PCG's second seed word for latents, so a latent and a weight
// initialisation drawn from the same number never share a stream.
const latentStream = 0x6869_7265_7a5f_7a30 // "hirez_z0"

// Latent returns the latent vector for seed: dim standard normal values from
// Box-Muller on math/rand/v2's PCG(seed, latentStream). Both are fixed
// algorithms (PCG's output is guaranteed stable by the Go 1 promise and
// Box-Muller is written out here, not left to NormFloat64, whose algorithm is
// not promised), so a seed names the same latent on every machine and Go
// version up to the last bit of math.Log/Sincos, which are deterministic for
// a given GOARCH.
func Latent(seed uint64, dim int) []float32 {
	r := rand.NewPCG(seed, latentStream)
	z := make([]float32, dim)
	for i := 0; i < dim; i += 2 {
		// u1 ∈ (0, 1] so the log is finite; u2 ∈ [0, 1).
		u1 := float64(r.Uint64()>>11+1) / (1 << 53)
		u2 := float64(r.Uint64()>>11) / (1 << 53)
		rad := math.Sqrt(-2 * math.Log(u1))
		s, c := math.Sincos(2 * math.Pi * u2)
		z[i] = float32(rad * c)
		if i+1 < dim {
			z[i+1] = float32(rad * s)
		}
	}
	return z
}

// NoClass is the class of an unconditional generator's samples, and of a
// request that leaves the class to ClassOf.
const NoClass = -1

// ClassOf is the class a class-conditional generator draws when a request
// names none: a hash of the latent's bits (FNV-1a) modulo classes, so each
// seed or latent names one class, uniformly over many, reproducibly from the
// image's provenance.
func ClassOf(z []float32, classes int) int {
	h := fnv.New64a()
	var b [4]byte
	for _, v := range z {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	return int(h.Sum64() % uint64(classes))
}

// Generate makes one image per seed with a generator network: the latent is
// Latent(seed, Latent), the output maps from [−1, 1] to bytes by
// imageio.FromCHWSigned; a class-conditional generator draws ClassOf each
// latent. Same seed + same weights ⇒ same bytes on one backend; across
// backends a value within rounding of a .5 boundary can differ by one level
// (rare).
func (n *Network) Generate(ctx context.Context, seeds []uint64) ([]*imageio.RGB, error) {
	z := make([][]float32, len(seeds))
	for i, s := range seeds {
		z[i] = Latent(s, n.cfg.Latent)
	}
	return n.GenerateLatents(ctx, z, nil)
}

// GenerateLatents makes one image per explicit latent vector. classes is nil,
// or one class per latent: NoClass, or for a class-conditional generator a
// class in [0, Classes). A conditional generator's NoClass is ClassOf the
// latent; an unconditional one takes no class.
func (n *Network) GenerateLatents(ctx context.Context, latents [][]float32, classes []int) ([]*imageio.RGB, error) {
	if n.cfg.Role != Generator {
		return nil, fmt.Errorf("model %s: generate: the network is a %s, not a generator", n.cfg.Preset, n.cfg.Role)
	}
	if len(latents) == 0 {
		return nil, nil
	}
	if classes != nil && len(classes) != len(latents) {
		return nil, fmt.Errorf("model %s: generate: %d classes for %d latents", n.cfg.Preset, len(classes), len(latents))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, k := n.cfg.Latent, n.cfg.Classes
	host := make([]float32, 0, len(latents)*(d+k))
	for i, z := range latents {
		if len(z) != d {
			return nil, fmt.Errorf("model %s: generate: latent %d has %d values, want %d", n.cfg.Preset, i, len(z), d)
		}
		for _, v := range z {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("model %s: generate: latent %d is not finite", n.cfg.Preset, i)
			}
		}
		class := NoClass
		if classes != nil {
			class = classes[i]
		}
		var err error
		if host, err = n.cfg.AppendInput(host, z, class); err != nil {
			return nil, fmt.Errorf("model %s: generate: latent %d: %w", n.cfg.Preset, i, err)
		}
	}
	out, err := n.run(host, n.InputShape(len(latents)))
	if err != nil {
		return nil, err
	}
	side := n.cfg.Side
	return toImages(out, len(latents), side, side, n.cfg.Range)
}

// AppendInput appends a generator's input for latent z and class to dst: z,
// then for a class-conditional generator the one-hot of class (ClassOf z for
// NoClass). This is the one place the conditional input is laid out; training
// builds its batches with it too.
func (c Config) AppendInput(dst, z []float32, class int) ([]float32, error) {
	dst = append(dst, z...)
	switch {
	case c.Classes == 0 && class == NoClass:
		return dst, nil
	case c.Classes == 0:
		return nil, fmt.Errorf("class %d given to a generator without classes", class)
	case class == NoClass:
		class = ClassOf(z, c.Classes)
	case class < 0 || class >= c.Classes:
		return nil, fmt.Errorf("class %d out of range [0, %d)", class, c.Classes)
	}
	for j := range c.Classes {
		v := float32(0)
		if j == class {
			v = 1
		}
		dst = append(dst, v)
	}
	return dst, nil
}

// Upscale runs an upscaler on images (any sizes the network can run at; images
// of equal size are batched together, in order) and returns one image per input
// at Scale× the size: pixels map in and out by the config's Range (srcnn-study:
// v/255 in, clamp to [0, 1], ×255, round out).
func (n *Network) Upscale(ctx context.Context, images []*imageio.RGB) ([]*imageio.RGB, error) {
	if n.cfg.Role != Upscaler {
		return nil, fmt.Errorf("model %s: upscale: the network is a %s, not an upscaler", n.cfg.Preset, n.cfg.Role)
	}
	if n.cfg.Border == BorderSymmetric {
		return n.upscaleSymmetric(ctx, images)
	}
	return n.upscale(ctx, images)
}

// upscale runs the layers on the images as they are (their zero padding at
// the edges).
func (n *Network) upscale(ctx context.Context, images []*imageio.RGB) ([]*imageio.RGB, error) {
	out := make([]*imageio.RGB, len(images))
	for start := 0; start < len(images); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := images[start].Validate(); err != nil {
			return nil, fmt.Errorf("model %s: upscale: image %d: %w", n.cfg.Preset, start, err)
		}
		w, h := images[start].W, images[start].H
		end := start + 1
		for end < len(images) && images[end] != nil && images[end].W == w && images[end].H == h && images[end].Validate() == nil {
			end++
		}
		host := make([]float32, 0, (end-start)*w*h*3)
		for _, img := range images[start:end] {
			if n.cfg.Range == Unit {
				host = imageio.AppendCHW01(host, img)
			} else {
				host = imageio.AppendCHWSigned(host, img)
			}
		}
		y, err := n.run(host, []int{end - start, 3, h, w})
		if err != nil {
			return nil, err
		}
		s := n.cfg.Scale
		imgs, err := toImages(y, end-start, s*w, s*h, n.cfg.Range)
		if err != nil {
			return nil, err
		}
		copy(out[start:end], imgs)
		start = end
	}
	return out, nil
}

// upscaleSymmetric is Upscale for Border "symmetric": each image is extended
// by the network's halo with its mirror, upscaled, and cropped back, so no
// output pixel's receptive field reaches the layers' zero padding.
func (n *Network) upscaleSymmetric(ctx context.Context, images []*imageio.RGB) ([]*imageio.RGB, error) {
	halo, err := n.cfg.Halo()
	if err != nil {
		return nil, err
	}
	padded := make([]*imageio.RGB, len(images))
	for i, img := range images {
		if err := img.Validate(); err != nil {
			return nil, fmt.Errorf("model %s: upscale: image %d: %w", n.cfg.Preset, i, err)
		}
		padded[i] = img.PadSymmetric(halo)
	}
	up, err := n.upscale(ctx, padded)
	if err != nil {
		return nil, err
	}
	s := n.cfg.Scale
	for i, img := range images {
		if up[i], err = up[i].Crop(s*halo, s*halo, s*img.W, s*img.H); err != nil {
			return nil, err
		}
	}
	return up, nil
}

// run uploads host as shape, runs an inference forward and downloads the output.
func (n *Network) run(host []float32, shape []int) ([]float32, error) {
	if n.cfg.Channels != 3 && n.cfg.Role != Generator {
		return nil, fmt.Errorf("model %s: images need 3 channels, the network has %d", n.cfg.Preset, n.cfg.Channels)
	}
	x, err := tensor.FromHost(n.b, host, shape...)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", n.cfg.Preset, err)
	}
	defer x.Free()
	y, err := n.Forward(x, layer.Infer)
	if err != nil {
		return nil, err
	}
	out, err := y.Host()
	if err != nil {
		return nil, fmt.Errorf("model %s: download output: %w", n.cfg.Preset, err)
	}
	return out, nil
}

func toImages(chw []float32, count, w, h int, r Range) ([]*imageio.RGB, error) {
	per := 3 * w * h
	if len(chw) != count*per {
		return nil, fmt.Errorf("model: output has %d values, want %d images of 3×%d×%d", len(chw), count, h, w)
	}
	out := make([]*imageio.RGB, count)
	for i := range out {
		var err error
		if r == Unit {
			out[i], err = imageio.FromCHW01(chw[i*per:(i+1)*per], w, h)
		} else {
			out[i], err = imageio.FromCHWSigned(chw[i*per:(i+1)*per], w, h)
		}
		if err != nil {
			return nil, fmt.Errorf("model: output image %d: %w", i, err)
		}
	}
	return out, nil
}

// Encode runs an encoder on images of exactly Side×Side (resizing is the
// caller's choice: engine/features brings any image to Side) and returns one
// feature vector per image, in batches of at most 64.
func (n *Network) Encode(ctx context.Context, images []*imageio.RGB) ([][]float32, error) {
	if n.cfg.Role != Encoder {
		return nil, fmt.Errorf("model %s: encode: the network is a %s, not an encoder", n.cfg.Preset, n.cfg.Role)
	}
	const batch = 64
	s, dim := n.cfg.Side, n.cfg.Features
	out := make([][]float32, 0, len(images))
	for start := 0; start < len(images); start += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(len(images), start+batch)
		host := make([]float32, 0, (end-start)*3*s*s)
		for i, img := range images[start:end] {
			if err := img.Validate(); err != nil {
				return nil, fmt.Errorf("model %s: encode: image %d: %w", n.cfg.Preset, start+i, err)
			}
			if img.W != s || img.H != s {
				return nil, fmt.Errorf("model %s: encode: image %d is %d×%d, the encoder takes %d×%d", n.cfg.Preset, start+i, img.W, img.H, s, s)
			}
			if n.cfg.Range == Unit {
				host = imageio.AppendCHW01(host, img)
			} else {
				host = imageio.AppendCHWSigned(host, img)
			}
		}
		y, err := n.run(host, []int{end - start, 3, s, s})
		if err != nil {
			return nil, err
		}
		for i := range end - start {
			out = append(out, y[i*dim:(i+1)*dim:(i+1)*dim])
		}
	}
	return out, nil
}
