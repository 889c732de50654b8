package train

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// projection is the last step of a class-conditional discriminator
// (model.Config.WithClasses): it turns D's [N, 1 + C] outputs into the
// projection discriminator's logits [N, 1] (Miyato & Koyama 2018),
//
//	logit_n = out[n, 0] + out[n, 1 + y_n],
//
// the unconditional logit ψ(φ(x)) plus the class embedding's inner product
// v_y·φ(x), both rows of D's last dense layer. It runs on the backend as
// logit = (out ⊙ mask)·1 with mask_n = [1, onehot(y_n)], and back as
// dout = (dlogit·1ᵀ) ⊙ mask, so nothing leaves the device but the classes,
// which are inputs.
type projection struct {
	b       backend.Backend
	classes int
	mask    *tensor.Tensor // [N, 1+C]
	ones    *tensor.Tensor // [1+C]
	prod    *tensor.Tensor // [N, 1+C], out ⊙ mask
	logit   *tensor.Tensor // [N, 1]
	dout    *tensor.Tensor // [N, 1+C]
	host    []float32
}

// newProjection returns nil for an unconditional discriminator (classes 0):
// a nil *projection passes logits through unchanged.
func newProjection(b backend.Backend, classes int) (*projection, error) {
	if classes == 0 {
		return nil, nil
	}
	p := &projection{b: b, classes: classes}
	ones := make([]float32, 1+classes)
	for i := range ones {
		ones[i] = 1
	}
	var err error
	if p.ones, err = tensor.FromHost(b, ones, 1+classes); err != nil {
		return nil, err
	}
	return p, nil
}

// setClasses sets the batch's classes (each in [0, C)).
func (p *projection) setClasses(ys []int) error {
	if p == nil {
		return nil
	}
	w := 1 + p.classes
	p.host = p.host[:0]
	for i, y := range ys {
		if y < 0 || y >= p.classes {
			return fmt.Errorf("projection: sample %d has class %d, want [0, %d)", i, y, p.classes)
		}
		for j := range w {
			v := float32(0)
			if j == 0 || j == 1+y {
				v = 1
			}
			p.host = append(p.host, v)
		}
	}
	return upload(&p.mask, p.b, p.host, len(ys), w)
}

// forward returns the logits of D's outputs out [N, 1+C] (owned by p, valid
// until the next forward); without classes, out itself.
func (p *projection) forward(out *tensor.Tensor) (*tensor.Tensor, error) {
	if p == nil {
		return out, nil
	}
	n, w := out.Dim(0), 1+p.classes
	if p.mask == nil || !out.HasShape(p.mask.Shape()...) {
		return nil, fmt.Errorf("projection: outputs %v for classes of shape %v", out.Shape(), shapeOf(p.mask))
	}
	if err := tensor.Ensure(&p.prod, p.b, n, w); err != nil {
		return nil, err
	}
	if err := tensor.Ensure(&p.logit, p.b, n, 1); err != nil {
		return nil, err
	}
	if err := p.b.Mul(out.Buffer(), p.mask.Buffer(), p.prod.Buffer()); err != nil {
		return nil, err
	}
	g := backend.Gemm{M: n, N: 1, K: w, Alpha: 1}
	if err := p.b.MatMul(g, p.prod.Buffer(), p.ones.Buffer(), p.logit.Buffer()); err != nil {
		return nil, err
	}
	return p.logit, nil
}

// backward maps the gradient with respect to the logits [N, 1] to the one
// with respect to D's outputs [N, 1+C]; without classes, dlogit itself.
func (p *projection) backward(dlogit *tensor.Tensor) (*tensor.Tensor, error) {
	if p == nil {
		return dlogit, nil
	}
	n, w := dlogit.Dim(0), 1+p.classes
	if err := tensor.Ensure(&p.dout, p.b, n, w); err != nil {
		return nil, err
	}
	g := backend.Gemm{M: n, N: w, K: 1, Alpha: 1}
	if err := p.b.MatMul(g, dlogit.Buffer(), p.ones.Buffer(), p.dout.Buffer()); err != nil {
		return nil, err
	}
	if err := p.b.Mul(p.dout.Buffer(), p.mask.Buffer(), p.dout.Buffer()); err != nil {
		return nil, err
	}
	return p.dout, nil
}

func (p *projection) free() {
	if p == nil {
		return
	}
	for _, t := range []*tensor.Tensor{p.mask, p.ones, p.prod, p.logit, p.dout} {
		t.Free()
	}
}

func shapeOf(t *tensor.Tensor) []int {
	if t == nil {
		return nil
	}
	return t.Shape()
}
