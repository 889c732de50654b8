// Package optim updates layer parameters from their gradients: Adam, with a
// state that checkpoints can save and restore, and an exponential moving
// average of weights (EMA, for the generator).
package optim

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// AdamConfig holds Adam's hyper-parameters. There are no silent defaults:
// GAN recipes use β1 = 0.5 or even 0, so every field means what it says.
type AdamConfig struct {
	LR, Beta1, Beta2, Epsilon float32
	// Prefix names the state tensors "<Prefix>.m.<param>", "<Prefix>.v.<param>"
	// and "<Prefix>.step"; "" means "adam". Use distinct prefixes for
	// optimizers that share a checkpoint ("adam_g", "adam_d").
	Prefix string
}

// DCGANAdam is the DCGAN paper's setting: lr 2e-4, β1 0.5, β2 0.999, ε 1e-8.
func DCGANAdam() AdamConfig { return AdamConfig{LR: 2e-4, Beta1: 0.5, Beta2: 0.999, Epsilon: 1e-8} }

// Adam is torch.optim.Adam without weight decay.
type Adam struct {
	cfg    AdamConfig
	params []*layer.Param // trainable ones
	m, v   []*layer.Param // state, named like params with the prefix
	step   int
	stepT  *layer.Param // one value holding step, refreshed by State
}

// NewAdam makes an optimizer for the trainable parameters among params (the
// others, BatchNorm running statistics, are skipped), with zero moments.
func NewAdam(params []*layer.Param, cfg AdamConfig) (*Adam, error) {
	if !(cfg.LR >= 0) || !(cfg.Beta1 >= 0 && cfg.Beta1 < 1) || !(cfg.Beta2 >= 0 && cfg.Beta2 < 1) || !(cfg.Epsilon >= 0) {
		return nil, fmt.Errorf("adam: bad config %+v", cfg)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "adam"
	}
	a := &Adam{cfg: cfg}
	mk := func(name string, like *tensor.Tensor) (*layer.Param, error) {
		t, err := tensor.New(like.Backend(), like.Shape()...)
		if err != nil {
			return nil, fmt.Errorf("adam: %s: %w", name, err)
		}
		return &layer.Param{Name: name, Value: t}, nil
	}
	for _, p := range params {
		if !p.Trainable {
			continue
		}
		if p.Grad == nil || p.Value == nil {
			a.Free()
			return nil, fmt.Errorf("adam: %s is trainable but has no value or gradient", p.Name)
		}
		m, err := mk(cfg.Prefix+".m."+p.Name, p.Value)
		if err != nil {
			a.Free()
			return nil, err
		}
		v, err := mk(cfg.Prefix+".v."+p.Name, p.Value)
		if err != nil {
			m.Value.Free()
			a.Free()
			return nil, err
		}
		a.params, a.m, a.v = append(a.params, p), append(a.m, m), append(a.v, v)
	}
	if len(a.params) == 0 {
		return nil, fmt.Errorf("adam: no trainable parameters")
	}
	st, err := tensor.New(a.params[0].Value.Backend(), 1)
	if err != nil {
		a.Free()
		return nil, fmt.Errorf("adam: %w", err)
	}
	a.stepT = &layer.Param{Name: cfg.Prefix + ".step", Value: st}
	return a, nil
}

// Config returns the hyper-parameters.
func (a *Adam) Config() AdamConfig { return a.cfg }

// SetLR changes the learning rate (schedules, TTUR).
func (a *Adam) SetLR(lr float32) { a.cfg.LR = lr }

// Steps is the number of updates applied so far.
func (a *Adam) Steps() int { return a.step }

// Step applies one update to every parameter from its gradient. It does not
// zero the gradients.
func (a *Adam) Step() error {
	a.step++
	h := backend.Adam{LR: a.cfg.LR, Beta1: a.cfg.Beta1, Beta2: a.cfg.Beta2, Epsilon: a.cfg.Epsilon, Step: a.step}
	for i, p := range a.params {
		b := p.Value.Backend()
		if err := b.AdamUpdate(h, p.Value.Buffer(), p.Grad.Buffer(), a.m[i].Value.Buffer(), a.v[i].Value.Buffer()); err != nil {
			return fmt.Errorf("adam step %d: %s: %w", a.step, p.Name, err)
		}
	}
	return nil
}

// State lists the optimizer's named tensors for a checkpoint: every m, then
// every v, in parameter order, then "<prefix>.step" holding the step count as
// one float32 (exact up to 2²⁴ steps).
func (a *Adam) State() ([]*layer.Param, error) {
	if err := a.stepT.Value.CopyFromHost([]float32{float32(a.step)}); err != nil {
		return nil, fmt.Errorf("adam: %w", err)
	}
	out := make([]*layer.Param, 0, 2*len(a.m)+1)
	out = append(out, a.m...)
	out = append(out, a.v...)
	return append(out, a.stepT), nil
}

// Load restores a state saved from State: get returns the host values of a
// name and whether it has them. Every name must be present.
func (a *Adam) Load(get func(name string) ([]float32, bool)) error {
	st, err := a.State()
	if err != nil {
		return err
	}
	for _, p := range st {
		data, ok := get(p.Name)
		if !ok {
			return fmt.Errorf("adam: load %s: missing", p.Name)
		}
		if err := p.Value.CopyFromHost(data); err != nil {
			return fmt.Errorf("adam: load %s: %w", p.Name, err)
		}
	}
	var s [1]float32
	if err := a.stepT.Value.ToHost(s[:]); err != nil {
		return err
	}
	if s[0] < 0 || s[0] != float32(int(s[0])) {
		return fmt.Errorf("adam: load %s: step %v is not a count", a.stepT.Name, s[0])
	}
	a.step = int(s[0])
	return nil
}

// Free releases the state tensors (not the parameters).
func (a *Adam) Free() {
	for _, p := range append(append([]*layer.Param(nil), a.m...), a.v...) {
		p.Value.Free()
	}
	if a.stepT != nil {
		a.stepT.Value.Free()
	}
	a.m, a.v, a.params = nil, nil, nil
}
