package layer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for
// Generative Adversarial Networks"), as torch.nn.utils.spectral_norm computes it
// with one power iteration: a Conv2D or Dense whose config sets SpectralNorm
// runs with the effective weight W/σ, where W (the trainable "<name>.weight")
// is reshaped to a matrix (Out, In·K·K) and σ estimates its largest singular
// value from a persistent unit vector u ∈ R^Out, the non-trainable parameter
// "<name>.weight_u" (saved with the weights and in checkpoints, so inference
// and a resumed run see the same u).
//
//   - Training forward: v = Wᵀu/‖Wᵀu‖, u ← Wv/‖Wv‖ (stored), σ = uᵀWv — torch's
//     order, so with the same u the train forward matches torch's.
//   - Inference forward: the stored u as it is, v = Wᵀu/‖Wᵀu‖, σ = uᵀWv; u is not
//     updated. (torch keeps v as a buffer too and uses it in eval; we keep only
//     u, so an eval forward here derives v from u.)
//   - Backward treats u and v as constants (torch does the power iteration under
//     no_grad): with G = ∂L/∂(W/σ), ∂σ/∂W = u vᵀ and
//     ∂L/∂W = (G − ⟨G, W/σ⟩·u vᵀ)/σ.
//     This is exact for σ = uᵀWv with u, v fixed, and equals the gradient of the
//     true spectral norm once u has converged to the top singular vector.
//     (⟨G, W/σ⟩ is Miyato's λ; it is not uᵀGv, which would be the gradient of a
//     different function.)
//
// The power iteration and the division run on the host in float64 (download W
// and u, upload W/σ and u): two matrix-vector products of Out·In·K·K, cheap next
// to the convolution itself on the cpu backend, and identical on every backend
// because they do not depend on it. A CUDA backend would want them on the device.
type spectral struct {
	U       *Param         // "<name>.weight_u", [Out], not trainable
	eff     *tensor.Tensor // W/σ: the weight the convolution or GEMM reads
	effGrad *tensor.Tensor // ∂L/∂(W/σ) of the backward in progress

	w     []float32 // host W, then W/σ of the last forward
	g     []float32 // host gradient scratch
	uh    []float32 // host u
	u, v  []float64 // u and v of the last forward
	wv    []float64 // W·v
	sigma float64
	kept  bool // a training-mode forward set u, v, σ and w for Backward
}

// snEps is torch's F.normalize epsilon: x / max(‖x‖, eps).
const snEps = 1e-12

func newSpectral(b backend.Backend, name string, wshape ...int) (*spectral, error) {
	n, err := tensor.Size(wshape)
	if err != nil {
		return nil, fmt.Errorf("%s: spectral norm: %w", name, err)
	}
	rows := wshape[0]
	s := &spectral{
		w: make([]float32, n), g: make([]float32, n), uh: make([]float32, rows),
		u: make([]float64, rows), v: make([]float64, n/rows), wv: make([]float64, rows),
	}
	if s.U, err = newParam(b, name+".weight_u", false, rows); err != nil {
		return nil, err
	}
	if s.eff, err = tensor.New(b, wshape...); err == nil {
		s.effGrad, err = tensor.New(b, wshape...)
	}
	if err != nil {
		s.free()
		return nil, fmt.Errorf("%s: spectral norm: %w", name, err)
	}
	// A usable u before Init (a unit vector); Init draws a random one.
	for i := range s.uh {
		s.uh[i] = float32(1 / math.Sqrt(float64(rows)))
	}
	if err := s.U.Value.CopyFromHost(s.uh); err != nil {
		s.free()
		return nil, fmt.Errorf("%s: %w", s.U.Name, err)
	}
	return s, nil
}

// init draws u from N(0, 1) and normalises it, as torch does.
func (s *spectral) init(rng *rand.Rand) error {
	for i := range s.u {
		s.u[i] = rng.NormFloat64()
	}
	normalize(s.u)
	for i, x := range s.u {
		s.uh[i] = float32(x)
	}
	if err := s.U.Value.CopyFromHost(s.uh); err != nil {
		return fmt.Errorf("init %s: %w", s.U.Name, err)
	}
	return nil
}

// forward computes W/σ into eff (one power iteration in training mode, which
// also stores the new u) and returns eff's buffer for the op to read.
func (s *spectral) forward(w *Param, mode Mode) (backend.Buffer, error) {
	s.kept = false
	if err := w.Value.ToHost(s.w); err != nil {
		return nil, fmt.Errorf("%s: spectral norm: %w", w.Name, err)
	}
	if err := s.U.Value.ToHost(s.uh); err != nil {
		return nil, fmt.Errorf("%s: %w", s.U.Name, err)
	}
	rows, cols := len(s.u), len(s.v)
	for i, x := range s.uh {
		s.u[i] = float64(x)
	}
	// v = normalize(Wᵀu)
	clear(s.v)
	for i := range rows {
		ui := s.u[i]
		row := s.w[i*cols : (i+1)*cols]
		for j, x := range row {
			s.v[j] += ui * float64(x)
		}
	}
	normalize(s.v)
	// W·v
	for i := range rows {
		row := s.w[i*cols : (i+1)*cols]
		var t float64
		for j, x := range row {
			t += float64(x) * s.v[j]
		}
		s.wv[i] = t
	}
	if mode == Train {
		copy(s.u, s.wv)
		normalize(s.u)
		for i, x := range s.u {
			s.uh[i] = float32(x)
		}
		if err := s.U.Value.CopyFromHost(s.uh); err != nil {
			return nil, fmt.Errorf("%s: %w", s.U.Name, err)
		}
	}
	var sigma float64
	for i, x := range s.u {
		sigma += x * s.wv[i]
	}
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return nil, fmt.Errorf("%s: spectral norm: σ = %v (weights or %s all zero, or not finite)", w.Name, sigma, s.U.Name)
	}
	inv := 1 / sigma
	for i, x := range s.w {
		s.w[i] = float32(float64(x) * inv)
	}
	if err := s.eff.CopyFromHost(s.w); err != nil {
		return nil, fmt.Errorf("%s: spectral norm: %w", w.Name, err)
	}
	s.sigma = sigma
	s.kept = mode == Train
	return s.eff.Buffer(), nil
}

// backward turns ∂L/∂(W/σ), which the op has written into effGrad, into
// ∂L/∂W and adds it into w.Grad.
func (s *spectral) backward(w *Param) error {
	if !s.kept {
		return fmt.Errorf("%s: spectral norm: %w", w.Name, ErrNoForward)
	}
	if err := s.effGrad.ToHost(s.g); err != nil {
		return fmt.Errorf("%s: spectral norm: %w", w.Name, err)
	}
	var lambda float64 // ⟨G, W/σ⟩
	for i, x := range s.g {
		lambda += float64(x) * float64(s.w[i])
	}
	cols := len(s.v)
	inv := 1 / s.sigma
	for i, ui := range s.u {
		row := s.g[i*cols : (i+1)*cols]
		c := lambda * ui
		for j, x := range row {
			row[j] = float32((float64(x) - c*s.v[j]) * inv)
		}
	}
	return w.addGradHost(s.g)
}

func (s *spectral) free() {
	if s == nil {
		return
	}
	s.U.free()
	s.eff.Free()
	s.effGrad.Free()
	s.kept = false
}

// addGradHost adds host values into p.Grad (written directly when it holds zeros).
func (p *Param) addGradHost(data []float32) error {
	if _, err := p.gradTarget(); err != nil {
		return err
	}
	t := p.scratch
	if p.gradZero {
		t = p.Grad
	}
	if err := t.CopyFromHost(data); err != nil {
		return fmt.Errorf("%s: gradient: %w", p.Name, err)
	}
	return p.gradDone()
}

// normalize scales x to unit length: x / max(‖x‖, snEps).
func normalize(x []float64) {
	var n float64
	for _, v := range x {
		n += v * v
	}
	n = max(math.Sqrt(n), snEps)
	for i := range x {
		x[i] /= n
	}
}
