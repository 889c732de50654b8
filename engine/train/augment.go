package train

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// The DiffAugment policies (Zhao et al. 2020, "Differentiable Augmentation for
// Data-Efficient GAN Training"), the names Recipe.Augment lists.
const (
	// AugmentColor: per sample, brightness x + U(−0.5, 0.5), then saturation
	// (x − m)·U(0, 2) + m with m the mean over channels at each pixel, then
	// contrast (x − μ)·U(0.5, 1.5) + μ with μ the mean of the whole sample — the
	// reference implementation's three functions, in its order and ranges (it
	// works in [−1, 1] too, so they carry over unchanged).
	AugmentColor = "color"
	// AugmentTranslation: per sample, an integer shift in each of y and x drawn
	// from [−r, r], r = ⌊side/8 + ½⌋, filled with 0.
	AugmentTranslation = "translation"
	// AugmentCutout: per sample, one square of side ⌊side/2 + ½⌋ set to 0,
	// centred at an offset drawn as the reference does (so it may be clipped by
	// the border).
	AugmentCutout = "cutout"
)

// "0" is what the reference fills with in its [−1, 1] range, and so here: it is
// mid-grey, not black or the emoji's white ground. Real and fake images get the
// same fill, so it tells D nothing, and it keeps every op linear (translation
// and cutout are masks and shifts; only brightness adds a constant).

var augmentPolicies = []string{AugmentTranslation, AugmentCutout, AugmentColor}

// ParseAugment splits and checks a Recipe.Augment list ("" = none), as
// Recipe validation does; the error names an unknown or repeated policy. The
// ops run in the order listed, as in the reference (whose default is
// "color,translation,cutout").
func ParseAugment(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var ops []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		known := false
		for _, k := range augmentPolicies {
			known = known || p == k
		}
		switch {
		case !known:
			return nil, fmt.Errorf("%w: augment %q: unknown policy %q (want a comma-separated list of %s)", ErrBadOptions, s, p, strings.Join(augmentPolicies, ", "))
		case contains(ops, p):
			return nil, fmt.Errorf("%w: augment %q: %s listed twice", ErrBadOptions, s, p)
		}
		ops = append(ops, p)
	}
	return ops, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// augmenter is DiffAugment's T for one adversarial loop: Forward draws fresh
// per-sample parameters from the training loop's RNG and applies T; Backward
// applies Tᵀ, the exact transpose of what the last Forward did to each sample,
// so a gradient through D(T(G(z))) reaches G. Every op is linear in x but for
// brightness's constant, so Tᵀ is the transpose of T's linear part (the
// gradient of an affine map): the same shifts and masks in reverse, and for
// the colour ops, whose means are differentiated too (as autograd does in the
// reference, which does not detach them), the symmetric maps
// dx = s·dy + (1 − s)·mean_c(dy) and dx = k·dy + (1 − k)·mean(dy).
//
// It runs on the host: download, compute, upload, once per D forward and once
// more for the G step's backward. At batch 64 of 32² images that is 200 k
// values each way, noise next to the convolutions on the cpu backend; a CUDA
// backend would want device kernels.
type augmenter struct {
	b   backend.Backend
	ops []string

	n, c, h, w    int
	bright        []float64 // color: per-sample parameters of the last draw
	sat, contrast []float64
	ty, tx        []int // translation: output (i, j) reads input (i+ty, j+tx)
	cy, cx        []int // cutout: first row and column of the square (may be < 0)
	cutH, cutW    int   // cutout: the square's sides
	host, tmp     []float32
	out, dx       *tensor.Tensor
	forward       bool // Backward has a Forward to transpose
}

func newAugmenter(b backend.Backend, policy string) (*augmenter, error) {
	ops, err := ParseAugment(policy)
	if err != nil || len(ops) == 0 {
		return nil, err
	}
	return &augmenter{b: b, ops: ops}, nil
}

// draw picks the parameters for a batch of n samples of c×h×w from rng: for
// each op in order, for each sample, its values.
func (a *augmenter) draw(n, c, h, w int, rng *rand.Rand) {
	a.n, a.c, a.h, a.w = n, c, h, w
	for _, op := range a.ops {
		switch op {
		case AugmentColor:
			a.bright, a.sat, a.contrast = resize(a.bright, n), resize(a.sat, n), resize(a.contrast, n)
			for i := range n {
				a.bright[i] = rng.Float64() - 0.5
				a.sat[i] = 2 * rng.Float64()
				a.contrast[i] = rng.Float64() + 0.5
			}
		case AugmentTranslation:
			ry, rx := int(float64(h)*0.125+0.5), int(float64(w)*0.125+0.5)
			a.ty, a.tx = resize(a.ty, n), resize(a.tx, n)
			for i := range n {
				a.ty[i] = rng.IntN(2*ry+1) - ry
				a.tx[i] = rng.IntN(2*rx+1) - rx
			}
		case AugmentCutout:
			// The reference draws the centre in [0, side + 1 − size%2) and
			// spans [centre − size/2, centre − size/2 + size), clipped.
			a.cutH, a.cutW = int(float64(h)*0.5+0.5), int(float64(w)*0.5+0.5)
			a.cy, a.cx = resize(a.cy, n), resize(a.cx, n)
			for i := range n {
				a.cy[i] = rng.IntN(h+1-a.cutH%2) - a.cutH/2
				a.cx[i] = rng.IntN(w+1-a.cutW%2) - a.cutW/2
			}
		}
	}
}

// apply runs T on host values x (n·c·h·w, NCHW) in place with the drawn
// parameters.
func (a *augmenter) apply(x []float32) {
	for _, op := range a.ops {
		a.op(op, x, false)
	}
}

// transpose runs Tᵀ on host values dy in place: the ops' transposes in reverse.
func (a *augmenter) transpose(dy []float32) {
	for i := len(a.ops) - 1; i >= 0; i-- {
		a.op(a.ops[i], dy, true)
	}
}

func (a *augmenter) op(op string, x []float32, transpose bool) {
	c, p := a.c, a.h*a.w
	for s := range a.n {
		xs := x[s*c*p : (s+1)*c*p]
		switch op {
		case AugmentColor:
			if transpose {
				// (contrast ∘ saturation ∘ brightness)ᵀ; brightness's linear part is the identity.
				mix(xs, a.contrast[s], len(xs), 1)
				mix(xs, a.sat[s], c, p)
			} else {
				for i := range xs {
					xs[i] += float32(a.bright[s])
				}
				mix(xs, a.sat[s], c, p)
				mix(xs, a.contrast[s], len(xs), 1)
			}
		case AugmentTranslation:
			sy, sx := a.ty[s], a.tx[s]
			if transpose {
				sy, sx = -sy, -sx // the transpose of a shift is the opposite shift (zero-filled both ways)
			}
			a.tmp = append(a.tmp[:0], xs...)
			for ch := range c {
				src, dst := a.tmp[ch*p:(ch+1)*p], xs[ch*p:(ch+1)*p]
				for i := range a.h {
					si := i + sy
					for j := range a.w {
						sj := j + sx
						if si < 0 || si >= a.h || sj < 0 || sj >= a.w {
							dst[i*a.w+j] = 0
						} else {
							dst[i*a.w+j] = src[si*a.w+sj]
						}
					}
				}
			}
		case AugmentCutout:
			// A mask: its own transpose.
			y0, x0 := max(a.cy[s], 0), max(a.cx[s], 0)
			y1, x1 := min(a.cy[s]+a.cutH, a.h), min(a.cx[s]+a.cutW, a.w)
			for ch := range c {
				for i := y0; i < y1; i++ {
					row := xs[ch*p+i*a.w:]
					for j := x0; j < x1; j++ {
						row[j] = 0
					}
				}
			}
		}
	}
}

// mix maps v (groups values, each a stride apart, for every offset below
// stride) to k·v + (1 − k)·mean(v) per group. The map is symmetric, so it is
// its own transpose. Saturation: groups = channels, stride = pixels (the mean
// over channels at each pixel); contrast: one group of the whole sample.
func mix(x []float32, k float64, groups, stride int) {
	for off := range stride {
		var m float64
		for g := range groups {
			m += float64(x[off+g*stride])
		}
		m *= (1 - k) / float64(groups)
		for g := range groups {
			i := off + g*stride
			x[i] = float32(k*float64(x[i]) + m)
		}
	}
}

// Forward draws new parameters from rng and returns T(x) (owned by the
// augmenter: valid until its next Forward).
func (a *augmenter) Forward(x *tensor.Tensor, rng *rand.Rand) (*tensor.Tensor, error) {
	a.forward = false
	if x.Rank() != 4 {
		return nil, fmt.Errorf("augment: input %v, want [N C H W]", x.Shape())
	}
	d := x.Dims()
	a.host = resize(a.host, x.Len())
	if err := x.ToHost(a.host); err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}
	a.draw(d.N, d.C, d.H, d.W, rng)
	a.apply(a.host)
	if err := upload(&a.out, a.b, a.host, d.N, d.C, d.H, d.W); err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}
	a.forward = true
	return a.out, nil
}

// Backward returns Tᵀ(dy) for the T of the last Forward (owned by the augmenter).
func (a *augmenter) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if !a.forward {
		return nil, fmt.Errorf("augment: backward without a forward")
	}
	if !dy.HasShape(a.n, a.c, a.h, a.w) {
		return nil, fmt.Errorf("augment: gradient %v, want [%d %d %d %d]", dy.Shape(), a.n, a.c, a.h, a.w)
	}
	a.host = resize(a.host, dy.Len())
	if err := dy.ToHost(a.host); err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}
	a.transpose(a.host)
	if err := upload(&a.dx, a.b, a.host, a.n, a.c, a.h, a.w); err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}
	return a.dx, nil
}

// resize returns s with length n, re-using its storage when it is large enough
// (the values are overwritten by the caller).
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (a *augmenter) free() {
	if a == nil {
		return
	}
	a.out.Free()
	a.dx.Free()
}
