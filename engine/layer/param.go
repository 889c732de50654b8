package layer

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

func newParam(b backend.Backend, name string, trainable bool, shape ...int) (*Param, error) {
	v, err := tensor.New(b, shape...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Param{Name: name, Value: v, Trainable: trainable}
	if trainable {
		if p.Grad, err = tensor.New(b, shape...); err != nil {
			v.Free()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p.gradZero = true
	}
	return p, nil
}

func (p *Param) free() {
	if p == nil {
		return
	}
	p.Value.Free()
	p.Grad.Free()
	p.scratch.Free()
}

// gradTarget returns the buffer a backward op should write this parameter's
// gradient into: Grad itself when it holds zeros, a scratch buffer otherwise.
// gradDone then adds the scratch into Grad.
func (p *Param) gradTarget() (backend.Buffer, error) {
	if p.gradZero {
		return p.Grad.Buffer(), nil
	}
	if p.scratch == nil {
		s, err := tensor.New(p.Grad.Backend(), p.Grad.Shape()...)
		if err != nil {
			return nil, fmt.Errorf("%s: gradient scratch: %w", p.Name, err)
		}
		p.scratch = s
	}
	return p.scratch.Buffer(), nil
}

func (p *Param) gradDone() error {
	if p.gradZero {
		p.gradZero = false
		return nil
	}
	if err := p.Grad.Backend().Axpby(1, p.scratch.Buffer(), 1, p.Grad.Buffer()); err != nil {
		return fmt.Errorf("%s: accumulate gradient: %w", p.Name, err)
	}
	return nil
}

func fillHost(p *Param, f func() float64) error {
	data := make([]float32, p.Value.Len())
	for i := range data {
		data[i] = float32(f())
	}
	if err := p.Value.CopyFromHost(data); err != nil {
		return fmt.Errorf("init %s: %w", p.Name, err)
	}
	return nil
}

// initWeights draws a conv or dense weight and its bias (nil allowed) with fanIn
// inputs per output.
func initWeights(s Init, rng *rand.Rand, w, bias *Param, fanIn int) error {
	switch s {
	case DCGANInit:
		if err := fillHost(w, func() float64 { return 0.02 * rng.NormFloat64() }); err != nil {
			return err
		}
		if bias != nil {
			return fillHost(bias, func() float64 { return 0 })
		}
		return nil
	case PyTorchInit:
		// kaiming_uniform_(a=√5): gain = √(2/(1+a²)) = √(1/3), bound =
		// gain·√(3/fan_in) = 1/√fan_in; the bias uses the same bound.
		bound := 1 / math.Sqrt(float64(fanIn))
		u := func() float64 { return bound * (2*rng.Float64() - 1) }
		if err := fillHost(w, u); err != nil {
			return err
		}
		if bias != nil {
			return fillHost(bias, u)
		}
		return nil
	}
	return fmt.Errorf("init %s: unknown scheme %v", w.Name, s)
}

// checkInput rejects a nil or freed tensor, or one on another backend than b
// (nil b: any backend).
func checkInput(kind, name string, x *tensor.Tensor, b backend.Backend) error {
	if x == nil || x.Buffer() == nil {
		return fmt.Errorf("%s %s: nil or freed input tensor", kind, name)
	}
	if b != nil && x.Backend() != b {
		return fmt.Errorf("%s %s: input on backend %q, layer on %q", kind, name, x.Backend().Name(), b.Name())
	}
	return nil
}

// checkGrad checks that dy has the shape of the output y of the last
// training-mode Forward.
func checkGrad(kind, name string, dy, y *tensor.Tensor, trained bool) error {
	if !trained || y == nil {
		return fmt.Errorf("%s %s: %w", kind, name, ErrNoForward)
	}
	if dy == nil || dy.Buffer() == nil {
		return fmt.Errorf("%s %s: nil or freed output gradient", kind, name)
	}
	if dy.Backend() != y.Backend() {
		return fmt.Errorf("%s %s: output gradient on backend %q, layer on %q", kind, name, dy.Backend().Name(), y.Backend().Name())
	}
	if dy.Len() != y.Len() || dy.Dim(0) != y.Dim(0) {
		return fmt.Errorf("%s %s: output gradient %v, want %v", kind, name, dy.Shape(), y.Shape())
	}
	return nil
}
