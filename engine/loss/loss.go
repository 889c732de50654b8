// Package loss computes training losses on the device: a one-value loss tensor
// and the gradient with respect to the network output, ready for Backward.
//
// Each loss value re-uses its buffers across calls at a fixed shape; the
// returned tensors are owned by it and valid until the next call or Free.
package loss

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/tensor"
)

// Result is a loss and its gradient, both owned by the loss that made them.
type Result struct {
	Loss *tensor.Tensor // one value
	Grad *tensor.Tensor // shape of the input
}

// Value downloads the loss (a synchronisation point: use it for logging, not
// every step on a GPU).
func (r Result) Value() (float32, error) {
	var v [1]float32
	if err := r.Loss.ToHost(v[:]); err != nil {
		return 0, err
	}
	return v[0], nil
}

// bufs holds a loss's re-used tensors.
type bufs struct {
	name         string
	loss, grad   *tensor.Tensor
	target, tmp  *tensor.Tensor
	targetFilled float32
	haveTarget   bool
}

func (s *bufs) prepare(x *tensor.Tensor) error {
	if x == nil || x.Buffer() == nil {
		return fmt.Errorf("%s: nil or freed input", s.name)
	}
	b := x.Backend()
	if s.loss == nil || s.loss.Backend() != b {
		s.Free()
		var err error
		if s.loss, err = tensor.New(b, 1); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if s.tmp, err = tensor.New(b, 1); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if s.grad == nil || !same(s.grad, x) {
		s.grad.Free()
		var err error
		if s.grad, err = tensor.New(b, x.Shape()...); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// constTarget returns a tensor of x's shape filled with v, re-filled only when
// v or the shape changes.
func (s *bufs) constTarget(x *tensor.Tensor, v float32) (*tensor.Tensor, error) {
	if s.target == nil || !same(s.target, x) {
		s.target.Free()
		var err error
		if s.target, err = tensor.New(x.Backend(), x.Shape()...); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		s.haveTarget = false
	}
	if !s.haveTarget || s.targetFilled != v {
		if err := x.Backend().Fill(s.target.Buffer(), v); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		s.targetFilled, s.haveTarget = v, true
	}
	return s.target, nil
}

// Free releases the loss's buffers.
func (s *bufs) Free() {
	for _, t := range []*tensor.Tensor{s.loss, s.grad, s.target, s.tmp} {
		t.Free()
	}
	s.loss, s.grad, s.target, s.tmp, s.haveTarget = nil, nil, nil, nil, false
}

func same(a, b *tensor.Tensor) bool {
	if a.Backend() != b.Backend() || a.Rank() != b.Rank() {
		return false
	}
	for i := 0; i < a.Rank(); i++ {
		if a.Dim(i) != b.Dim(i) {
			return false
		}
	}
	return true
}

func checkTarget(name string, x, target *tensor.Tensor) error {
	if target == nil || target.Buffer() == nil {
		return fmt.Errorf("%s: nil or freed target", name)
	}
	if !same(x, target) {
		return fmt.Errorf("%s: target %v, want the input's shape %v", name, target.Shape(), x.Shape())
	}
	return nil
}

// BCEWithLogits is torch.nn.BCEWithLogitsLoss (mean reduction) on raw logits.
type BCEWithLogits struct{ bufs }

// NewBCEWithLogits returns a BCE-with-logits loss.
func NewBCEWithLogits() *BCEWithLogits { return &BCEWithLogits{bufs{name: "bce with logits"}} }

// Compute uses one label for every element: 1 for real, 0 for fake, 0.9 for
// one-sided label smoothing.
func (l *BCEWithLogits) Compute(x *tensor.Tensor, label float32) (Result, error) {
	if err := l.prepare(x); err != nil {
		return Result{}, err
	}
	t, err := l.constTarget(x, label)
	if err != nil {
		return Result{}, err
	}
	return l.ComputeTarget(x, t)
}

// ComputeTarget uses per-element targets of x's shape.
func (l *BCEWithLogits) ComputeTarget(x, target *tensor.Tensor) (Result, error) {
	if err := l.prepare(x); err != nil {
		return Result{}, err
	}
	if err := checkTarget(l.name, x, target); err != nil {
		return Result{}, err
	}
	if err := x.Backend().BCEWithLogits(x.Buffer(), target.Buffer(), l.loss.Buffer(), l.grad.Buffer()); err != nil {
		return Result{}, fmt.Errorf("%s: %w", l.name, err)
	}
	return Result{Loss: l.loss, Grad: l.grad}, nil
}

// MSE is torch.nn.MSELoss (mean reduction), SRCNN's loss.
type MSE struct{ bufs }

// NewMSE returns a mean-squared-error loss.
func NewMSE() *MSE { return &MSE{bufs{name: "mse"}} }

// Compute returns mean((x − target)²) and its gradient.
func (l *MSE) Compute(x, target *tensor.Tensor) (Result, error) {
	if err := l.prepare(x); err != nil {
		return Result{}, err
	}
	if err := checkTarget(l.name, x, target); err != nil {
		return Result{}, err
	}
	if err := x.Backend().MSE(x.Buffer(), target.Buffer(), l.loss.Buffer(), l.grad.Buffer()); err != nil {
		return Result{}, fmt.Errorf("%s: %w", l.name, err)
	}
	return Result{Loss: l.loss, Grad: l.grad}, nil
}

// HingeD is the discriminator's hinge loss for one batch: mean(max(0, 1 − x))
// on real logits, mean(max(0, 1 + x)) on fake ones. The full loss is the sum
// of both, so run Backward after each.
type HingeD struct{ bufs }

// NewHingeD returns the discriminator hinge loss.
func NewHingeD() *HingeD { return &HingeD{bufs{name: "hinge (D)"}} }

// Compute returns the loss of logits x that are real or fake.
func (l *HingeD) Compute(x *tensor.Tensor, real bool) (Result, error) {
	if err := l.prepare(x); err != nil {
		return Result{}, err
	}
	sign := float32(-1)
	if real {
		sign = 1
	}
	if err := x.Backend().Hinge(x.Buffer(), sign, l.loss.Buffer(), l.grad.Buffer()); err != nil {
		return Result{}, fmt.Errorf("%s: %w", l.name, err)
	}
	return Result{Loss: l.loss, Grad: l.grad}, nil
}

// HingeG is the generator's hinge loss: −mean(D(G(z))).
type HingeG struct{ bufs }

// NewHingeG returns the generator hinge loss.
func NewHingeG() *HingeG { return &HingeG{bufs{name: "hinge (G)"}} }

// Compute returns −mean(x) and its gradient −1/n everywhere.
func (l *HingeG) Compute(x *tensor.Tensor) (Result, error) {
	if err := l.prepare(x); err != nil {
		return Result{}, err
	}
	b := x.Backend()
	inv := -1 / float32(x.Len())
	if err := b.Sum(x.Buffer(), l.tmp.Buffer()); err != nil {
		return Result{}, fmt.Errorf("%s: %w", l.name, err)
	}
	if err := b.Axpby(inv, l.tmp.Buffer(), 0, l.loss.Buffer()); err != nil {
		return Result{}, fmt.Errorf("%s: %w", l.name, err)
	}
	if err := b.Fill(l.grad.Buffer(), inv); err != nil {
		return Result{}, fmt.Errorf("%s: %w", l.name, err)
	}
	return Result{Loss: l.loss, Grad: l.grad}, nil
}
