package optim

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// EMA keeps an exponential moving average of a model's parameters:
// shadow ← decay·shadow + (1 − decay)·param for trainable ones, a plain copy
// for buffers such as BatchNorm running statistics.
type EMA struct {
	decay  float32
	src    []*layer.Param
	shadow []*layer.Param
}

// NewEMA starts the shadow as a copy of params.
func NewEMA(params []*layer.Param, decay float32) (*EMA, error) {
	if !(decay >= 0 && decay <= 1) {
		return nil, fmt.Errorf("ema: decay %v, want [0, 1]", decay)
	}
	e := &EMA{decay: decay, src: append([]*layer.Param(nil), params...)}
	for _, p := range params {
		t, err := tensor.New(p.Value.Backend(), p.Value.Shape()...)
		if err != nil {
			e.Free()
			return nil, fmt.Errorf("ema: %s: %w", p.Name, err)
		}
		e.shadow = append(e.shadow, &layer.Param{Name: p.Name, Value: t})
		if err := p.Value.Backend().Copy(t.Buffer(), p.Value.Buffer()); err != nil {
			e.Free()
			return nil, fmt.Errorf("ema: %s: %w", p.Name, err)
		}
	}
	return e, nil
}

// Update moves the shadow toward the current parameters.
func (e *EMA) Update() error { return e.update(e.decay) }

// UpdateAt is Update after the n-th optimizer step (n ≥ 1) with the warm-up of
// TensorFlow's ExponentialMovingAverage(num_updates): the decay used is
// min(decay, (1 + n)/(10 + n)), so early on the shadow follows the parameters
// (0.18 at n = 1, 0.92 at n = 100, 0.99 at n = 890) instead of holding the random
// initialisation for thousands of steps (with 0.999 the initial weights still
// weigh 0.999ⁿ: 90 % after 100 steps, 37 % after 1000).
func (e *EMA) UpdateAt(n int) error {
	return e.update(WarmupDecay(e.decay, n))
}

// WarmupDecay is the decay UpdateAt uses after step n.
func WarmupDecay(decay float32, n int) float32 {
	return min(decay, float32(1+n)/float32(10+n))
}

func (e *EMA) update(decay float32) error {
	for i, p := range e.src {
		b, s := p.Value.Backend(), e.shadow[i].Value.Buffer()
		var err error
		if p.Trainable {
			err = b.Axpby(1-decay, p.Value.Buffer(), decay, s)
		} else {
			err = b.Copy(s, p.Value.Buffer())
		}
		if err != nil {
			return fmt.Errorf("ema: %s: %w", p.Name, err)
		}
	}
	return nil
}

// Params lists the shadow tensors under the source names (not trainable), so
// the averaged model is saved exactly like the model itself.
func (e *EMA) Params() []*layer.Param { return append([]*layer.Param(nil), e.shadow...) }

// CopyTo writes the shadow into params (the same model layout, e.g. an
// inference copy of the generator), matched by name.
func (e *EMA) CopyTo(params []*layer.Param) error {
	if len(params) != len(e.shadow) {
		return fmt.Errorf("ema: copy to %d parameters, have %d", len(params), len(e.shadow))
	}
	for i, p := range params {
		s := e.shadow[i]
		if p.Name != s.Name || p.Value.Len() != s.Value.Len() {
			return fmt.Errorf("ema: copy %s %v into %s %v", s.Name, s.Value.Shape(), p.Name, p.Value.Shape())
		}
		if err := p.Value.Backend().Copy(p.Value.Buffer(), s.Value.Buffer()); err != nil {
			return fmt.Errorf("ema: %s: %w", p.Name, err)
		}
	}
	return nil
}

// Free releases the shadow tensors.
func (e *EMA) Free() {
	for _, s := range e.shadow {
		s.Value.Free()
	}
	e.shadow, e.src = nil, nil
}
