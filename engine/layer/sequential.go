package layer

import (
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/tensor"
)

// Sequential runs layers one after another, like torch.nn.Sequential. Layer
// names are kept as given (no prefix is added), so a preset controls every
// parameter name.
type Sequential struct {
	name   string
	layers []Layer

	// CheckFinite makes Forward and Backward check every layer's output for NaN
	// and ±Inf (one device-side sum and a one-value download per layer) and
	// fail with an error naming the first layer that produced one.
	CheckFinite bool
	scratch     *tensor.Tensor
}

var _ Layer = (*Sequential)(nil)

// NewSequential chains layers. Duplicate parameter names are an error, since
// they would collide in a state dict.
func NewSequential(name string, layers ...Layer) (*Sequential, error) {
	seen := make(map[string]bool)
	for i, l := range layers {
		if l == nil {
			return nil, fmt.Errorf("sequential %s: layer %d is nil", name, i)
		}
		for _, p := range l.Params() {
			if seen[p.Name] {
				return nil, fmt.Errorf("sequential %s: duplicate parameter name %q", name, p.Name)
			}
			seen[p.Name] = true
		}
	}
	return &Sequential{name: name, layers: append([]Layer(nil), layers...)}, nil
}

// Name implements Layer.
func (s *Sequential) Name() string { return s.name }

// Layers returns the layers in order.
func (s *Sequential) Layers() []Layer { return append([]Layer(nil), s.layers...) }

// Params implements Layer: every layer's parameters, in layer order.
func (s *Sequential) Params() []*Param {
	var ps []*Param
	for _, l := range s.layers {
		ps = append(ps, l.Params()...)
	}
	return ps
}

// Init implements Initializer.
func (s *Sequential) Init(scheme Init, rng *rand.Rand) error {
	for _, l := range s.layers {
		if err := Initialize(l, scheme, rng); err != nil {
			return err
		}
	}
	return nil
}

// Forward implements Layer.
func (s *Sequential) Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error) {
	if len(s.layers) == 0 {
		return nil, fmt.Errorf("sequential %s: no layers", s.name)
	}
	for _, l := range s.layers {
		var err error
		if x, err = l.Forward(x, mode); err != nil {
			return nil, err
		}
		if s.CheckFinite {
			if err := s.check(x); err != nil {
				return nil, fmt.Errorf("non-finite activation in layer %s: %w", l.Name(), err)
			}
		}
	}
	return x, nil
}

// Backward implements Layer.
func (s *Sequential) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	if len(s.layers) == 0 {
		return nil, fmt.Errorf("sequential %s: no layers", s.name)
	}
	for i := len(s.layers) - 1; i >= 0; i-- {
		l := s.layers[i]
		var err error
		if dy, err = l.Backward(dy); err != nil {
			return nil, err
		}
		if s.CheckFinite {
			if err := s.check(dy); err != nil {
				return nil, fmt.Errorf("non-finite gradient in layer %s: %w", l.Name(), err)
			}
		}
	}
	return dy, nil
}

func (s *Sequential) check(x *tensor.Tensor) error {
	b := x.Backend()
	if s.scratch == nil || s.scratch.Backend() != b {
		s.scratch.Free()
		t, err := tensor.New(b, 1)
		if err != nil {
			return err
		}
		s.scratch = t
	}
	return tensor.CheckFinite(x, s.scratch)
}

// Free implements Layer: it frees every layer.
func (s *Sequential) Free() {
	for _, l := range s.layers {
		l.Free()
	}
	s.scratch.Free()
	s.scratch = nil
}
