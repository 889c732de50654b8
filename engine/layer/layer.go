// Package layer holds the neural-network layers the models are built from, each
// with a Forward and a Backward on tensors, and the named-parameter listing that
// checkpoints and safetensors files are written from and loaded into.
//
// Ownership: a layer owns the tensors it returns. Forward's output and
// Backward's input gradient stay valid until the layer's next Forward (or
// Backward) at another shape, or Free; callers read them and never Free them.
// At a fixed input shape the buffers are allocated once and re-used, so a
// steady-state inference Forward does not allocate. Forward also keeps its
// outputs for the last few other shapes it ran (a bounded shelf, shelf.go), so
// a served network that alternates between a few input sizes and batch sizes
// does not allocate either.
//
// Gradients: Backward uses what the most recent training-mode Forward kept and
// adds each parameter's gradient into Param.Grad (PyTorch's accumulation), so
// two forward/backward pairs (real and fake batches, say) sum their gradients.
// ZeroGrad clears them.
//
// Names: every parameter has its PyTorch state_dict name, "<layer name>.weight",
// "<layer name>.running_mean" and so on; the layer name is given at
// construction (the preset chooses "conv1", "main.0", …).
package layer

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/hirez-ml/hirez/engine/tensor"
)

// Mode selects training or inference behaviour.
type Mode int

const (
	// Infer uses running statistics in BatchNorm and keeps nothing for Backward.
	Infer Mode = iota
	// Train uses batch statistics, updates running statistics and keeps what
	// Backward needs.
	Train
)

func (m Mode) String() string {
	if m == Train {
		return "train"
	}
	return "infer"
}

// Param is one named tensor of a layer's state, trainable (weights, biases) or
// not (BatchNorm running statistics).
type Param struct {
	// Name is the PyTorch state_dict key, e.g. "conv1.weight", "bn1.running_var".
	Name string
	// Value holds the values in PyTorch's layout (conv [out, in, kh, kw], dense
	// [out, in], vectors [C]). Set it with Value.CopyFromHost, read it with
	// Value.ToHost.
	Value *tensor.Tensor
	// Grad has Value's shape; nil when Trainable is false.
	Grad *tensor.Tensor
	// Trainable is false for buffers such as running_mean and running_var.
	Trainable bool

	// gradZero records that Grad holds zeros, so the next gradient can be
	// written into it directly instead of added through a scratch buffer.
	gradZero bool
	// scratch receives a gradient before it is added into Grad.
	scratch *tensor.Tensor
}

// Layer is one step of a network.
type Layer interface {
	// Name is the layer's name, the prefix of its parameter names.
	Name() string
	// Forward computes the output for x. The result is owned by the layer.
	Forward(x *tensor.Tensor, mode Mode) (*tensor.Tensor, error)
	// Backward takes the gradient of the loss with respect to the last
	// training-mode Forward's output, adds parameter gradients into Param.Grad
	// and returns the gradient with respect to that Forward's input (owned by
	// the layer).
	Backward(dy *tensor.Tensor) (*tensor.Tensor, error)
	// Params lists the layer's named tensors in a stable order (PyTorch's
	// state_dict order: weight, bias, running_mean, running_var).
	Params() []*Param
	// Free releases every buffer the layer holds. The layer is unusable after.
	Free()
}

// Init names a parameter initialisation scheme.
type Init int

const (
	// DCGANInit draws conv and dense weights from N(0, 0.02), BatchNorm gamma
	// from N(1, 0.02), and sets biases and BatchNorm beta to 0 (Radford et al.).
	DCGANInit Init = iota
	// PyTorchInit is PyTorch's default: kaiming-uniform with a = √5 for weights,
	// i.e. U(−1/√fan_in, 1/√fan_in), the same bound for biases, BatchNorm
	// gamma 1 and beta 0.
	PyTorchInit
)

func (s Init) String() string {
	switch s {
	case DCGANInit:
		return "dcgan"
	case PyTorchInit:
		return "pytorch"
	}
	return fmt.Sprintf("Init(%d)", int(s))
}

// Initializer is implemented by layers with parameters to draw.
type Initializer interface {
	Init(s Init, rng *rand.Rand) error
}

// Initialize draws l's parameters with scheme s from rng (seeded by the caller,
// so the same seed gives the same network). Running statistics are reset to
// mean 0, variance 1. Layers without parameters are left alone.
func Initialize(l Layer, s Init, rng *rand.Rand) error {
	if rng == nil {
		return fmt.Errorf("layer %s: initialize: nil rng", l.Name())
	}
	if in, ok := l.(Initializer); ok {
		return in.Init(s, rng)
	}
	return nil
}

// ZeroGrad sets the gradient of every trainable parameter of l to zero.
func ZeroGrad(l Layer) error {
	for _, p := range l.Params() {
		if err := p.ZeroGrad(); err != nil {
			return err
		}
	}
	return nil
}

// ZeroGrad sets p.Grad to zero; a no-op for a non-trainable parameter.
func (p *Param) ZeroGrad() error {
	if !p.Trainable || p.Grad == nil {
		return nil
	}
	if p.gradZero {
		return nil
	}
	if err := p.Grad.Backend().Fill(p.Grad.Buffer(), 0); err != nil {
		return fmt.Errorf("%s: zero grad: %w", p.Name, err)
	}
	p.gradZero = true
	return nil
}

// Lookup returns the parameter of l named name, or nil.
func Lookup(l Layer, name string) *Param {
	for _, p := range l.Params() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Load sets every parameter of l from get, which returns the host values for a
// name (PyTorch layout, row-major) and whether it has them. A missing name or a
// wrong length is an error naming the parameter; on error some parameters may
// already be set.
func Load(l Layer, get func(name string) ([]float32, bool)) error {
	for _, p := range l.Params() {
		data, ok := get(p.Name)
		if !ok {
			return fmt.Errorf("load %s: missing", p.Name)
		}
		if len(data) != p.Value.Len() {
			return fmt.Errorf("load %s: %d values, want shape %v (%d values)", p.Name, len(data), p.Value.Shape(), p.Value.Len())
		}
		if err := p.Value.CopyFromHost(data); err != nil {
			return fmt.Errorf("load %s: %w", p.Name, err)
		}
	}
	return nil
}

// State downloads every parameter of l, in Params order, and passes each to put
// with its shape (PyTorch layout).
func State(l Layer, put func(name string, shape []int, data []float32) error) error {
	for _, p := range l.Params() {
		data, err := p.Value.Host()
		if err != nil {
			return fmt.Errorf("state %s: %w", p.Name, err)
		}
		if err := put(p.Name, p.Value.Shape(), data); err != nil {
			return err
		}
	}
	return nil
}

// ErrNoForward is returned by Backward without a training-mode Forward before it.
var ErrNoForward = errors.New("backward without a training-mode forward")
