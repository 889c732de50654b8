// Package model turns presets (data: a Config of layer Specs) into networks built
// from engine/layer, and reads and writes their weights as safetensors files with
// PyTorch's names and layouts (docs/models.md, "Weights files"). It also holds the
// two serving helpers: Generate (seed → image) and Upscale (image → 2× image).
package model

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/layer"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Options tune Build.
type Options struct {
	// Side overrides the preset's default side (0: default).
	Side int
	// Seed seeds the weight initialisation (PCG(Seed, 0) from math/rand/v2), so
	// the same seed builds the same network.
	Seed uint64
}

// Network is a built preset on one backend. It is not safe for concurrent use:
// layers own their activation buffers. Use one Network per goroutine, or a lock.
type Network struct {
	cfg   Config
	steps []Step
	b     backend.Backend
	seq   *layer.Sequential
	bns   []string // names of BatchNorm layers, for num_batches_tracked
	// tracked counts training-mode forward passes, PyTorch's num_batches_tracked
	// (written to files for strict loading in PyTorch; no effect on the maths).
	tracked int64
}

// Build makes the named preset on b with freshly initialised weights.
func Build(preset string, b backend.Backend, o Options) (*Network, error) {
	cfg, err := ConfigFor(preset, o.Side)
	if err != nil {
		return nil, err
	}
	return BuildConfig(cfg, b, o.Seed)
}

// BuildConfig makes a network from any valid config (one read from a weights
// file, say) with weights drawn from seed.
func BuildConfig(cfg Config, b backend.Backend, seed uint64) (*Network, error) {
	if b == nil {
		return nil, fmt.Errorf("model %s: nil backend", cfg.Preset)
	}
	steps, err := cfg.Plan()
	if err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, steps: steps, b: b}
	layers := make([]layer.Layer, 0, len(steps))
	fail := func(err error) (*Network, error) {
		for _, l := range layers {
			l.Free()
		}
		return nil, fmt.Errorf("model %s: %w", cfg.Preset, err)
	}
	for _, st := range steps {
		l, err := newLayer(b, st)
		if err != nil {
			return fail(err)
		}
		layers = append(layers, l)
		if st.Op == OpBatchNorm {
			n.bns = append(n.bns, st.Name)
		}
	}
	top, err := wrap(cfg, steps, layers)
	if err != nil {
		return fail(err)
	}
	if n.seq, err = layer.NewSequential(cfg.Preset, top...); err != nil {
		return fail(err)
	}
	scheme := layer.DCGANInit
	if cfg.Init == "pytorch" {
		scheme = layer.PyTorchInit
	}
	if err := layer.Initialize(n.seq, scheme, rand.New(rand.NewPCG(seed, 0))); err != nil {
		n.seq.Free()
		return nil, fmt.Errorf("model %s: %w", cfg.Preset, err)
	}
	for _, st := range steps {
		if !st.ZeroInit {
			continue
		}
		for _, p := range st.Params {
			if prm := layer.Lookup(n.seq, p.Name); prm != nil {
				if err := b.Fill(prm.Value.Buffer(), 0); err != nil {
					n.seq.Free()
					return nil, fmt.Errorf("model %s: zero init %s: %w", cfg.Preset, p.Name, err)
				}
			}
		}
	}
	return n, nil
}

// wrap adds the config's fixed input step and global skip around the planned
// layers: [Bicubic "input"] then Residual("residual", layers, skip) where skip is
// the identity, or Bicubic "skip" when the layers upscale. Neither adds
// parameters, so the state_dict names stay the layers' own.
func wrap(cfg Config, steps []Step, layers []layer.Layer) ([]layer.Layer, error) {
	top := layers
	if cfg.Residual {
		body, err := layer.NewSequential("body", layers...)
		if err != nil {
			return nil, err
		}
		var skip layer.Layer
		if skipUpscales(steps) {
			if skip, err = layer.NewBicubic("skip", cfg.Scale); err != nil {
				return nil, err
			}
		}
		res, err := layer.NewResidual("residual", body, skip)
		if err != nil {
			return nil, err
		}
		top = []layer.Layer{res}
	}
	if cfg.Input == InputBicubic {
		in, err := layer.NewBicubic("input", cfg.Scale)
		if err != nil {
			return nil, err
		}
		top = append([]layer.Layer{in}, top...)
	}
	return top, nil
}

// skipUpscales reports whether a residual's skip must upscale (bicubic):
// the layers change the shape, so the identity cannot be added to their output.
func skipUpscales(steps []Step) bool {
	return !slices.Equal(steps[0].In, steps[len(steps)-1].Out)
}

func newLayer(b backend.Backend, st Step) (layer.Layer, error) {
	s := st.Spec
	switch s.Op {
	case OpDense:
		return layer.NewDense(b, s.Name, layer.DenseConfig{In: prod(st.In), Out: s.Out, NoBias: s.NoBias, SpectralNorm: s.SpectralNorm})
	case OpConv:
		return layer.NewConv2D(b, s.Name, layer.Conv2DConfig{In: st.In[0], Out: s.Out, Kernel: s.Kernel, Stride: max(s.Stride, 1), Pad: s.Pad, NoBias: s.NoBias, SpectralNorm: s.SpectralNorm})
	case OpBatchNorm:
		return layer.NewBatchNorm(b, s.Name, layer.BatchNormConfig{Channels: st.In[0]})
	case OpReLU:
		return layer.NewReLU(s.Name), nil
	case OpLeakyReLU:
		return layer.NewLeakyReLU(s.Name, s.Alpha), nil
	case OpTanh:
		return layer.NewTanh(s.Name), nil
	case OpSigmoid:
		return layer.NewSigmoid(s.Name), nil
	case OpUpsample:
		return layer.NewUpSample2x(s.Name), nil
	case OpMaxPool:
		return layer.NewMaxPool2(s.Name), nil
	case OpPixelShuffle:
		return layer.NewPixelShuffle(s.Name, s.Factor)
	case OpReshape:
		return layer.NewReshape(s.Name, st.Out...)
	case OpFlatten:
		return layer.NewFlatten(s.Name), nil
	}
	return nil, fmt.Errorf("layer %s: unknown op %q", s.Name, s.Op)
}

// Config returns the network's configuration.
func (n *Network) Config() Config {
	c := n.cfg
	c.Layers = slices.Clone(c.Layers)
	return c
}

// Backend is the backend the network runs on.
func (n *Network) Backend() backend.Backend { return n.b }

// Plan returns the planned layers with their shapes and parameters.
func (n *Network) Plan() []Step { return slices.Clone(n.steps) }

// Body is the layer stack (for trainers that need the layers themselves).
func (n *Network) Body() *layer.Sequential { return n.seq }

// Params lists every named tensor in state_dict order.
func (n *Network) Params() []*layer.Param { return n.seq.Params() }

// Counts returns trainable parameters, buffers and FLOPs per sample at the
// configured side.
func (n *Network) Counts() (params, buffers int64, flops float64) { return Counts(n.steps) }

// InputShape is the input shape for a batch of batch samples.
func (n *Network) InputShape(batch int) []int { return append([]int{batch}, n.cfg.InputShape()...) }

// OutputShape is the output shape for a batch of batch samples.
func (n *Network) OutputShape(batch int) []int {
	return append([]int{batch}, n.cfg.OutputShape()...)
}

// Forward runs the network on x ([N, …input shape]). Fully convolutional
// upscalers accept any spatial size the layers can run at; other networks need
// exactly InputShape. The result is owned by the network (valid until the next
// Forward at another shape or Free).
func (n *Network) Forward(x *tensor.Tensor, mode layer.Mode) (*tensor.Tensor, error) {
	if err := n.checkInput(x); err != nil {
		return nil, err
	}
	y, err := n.seq.Forward(x, mode)
	if err != nil {
		return nil, fmt.Errorf("model %s: forward: %w", n.cfg.Preset, err)
	}
	if mode == layer.Train && len(n.bns) > 0 {
		n.tracked++
	}
	return y, nil
}

// Backward propagates dy (the loss gradient with respect to the last
// training-mode Forward's output), adds parameter gradients into each Param.Grad
// and returns the gradient with respect to the input.
func (n *Network) Backward(dy *tensor.Tensor) (*tensor.Tensor, error) {
	dx, err := n.seq.Backward(dy)
	if err != nil {
		return nil, fmt.Errorf("model %s: backward: %w", n.cfg.Preset, err)
	}
	return dx, nil
}

// ZeroGrad clears every parameter gradient.
func (n *Network) ZeroGrad() error { return layer.ZeroGrad(n.seq) }

func (n *Network) checkInput(x *tensor.Tensor) error {
	if x == nil || x.Buffer() == nil {
		return fmt.Errorf("model %s: nil input", n.cfg.Preset)
	}
	// Checked field by field rather than by comparing InputShape() with Shape():
	// both allocate, and this runs on every forward, which must not allocate in
	// steady state.
	var ok bool
	switch c := n.cfg; {
	case c.Role == Generator:
		ok = x.Rank() == 2 && x.Dim(1) == c.Latent+c.Classes
	case n.fullyConv():
		if x.Rank() == 4 && x.Dim(1) != c.Channels {
			return fmt.Errorf("model %s: input %v has %d channels, want %d", c.Preset, x.Shape(), x.Dim(1), c.Channels)
		}
		ok = x.Rank() == 4
	default:
		ok = x.Rank() == 4 && x.Dim(1) == c.Channels && x.Dim(2) == c.Side && x.Dim(3) == c.Side
	}
	if !ok || x.Dim(0) <= 0 {
		return fmt.Errorf("model %s: input %v, want [N %v]", n.cfg.Preset, x.Shape(), n.cfg.InputShape())
	}
	return nil
}

// fullyConv reports whether the network runs at any spatial size.
func (n *Network) fullyConv() bool {
	if n.cfg.Role == Generator {
		return false
	}
	for _, s := range n.cfg.Layers {
		if s.Op == OpDense || s.Op == OpReshape || s.Op == OpFlatten {
			return false
		}
	}
	return true
}

// Free releases every buffer. The network is unusable afterwards.
func (n *Network) Free() {
	if n.seq != nil {
		n.seq.Free()
	}
}
