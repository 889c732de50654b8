package model

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/hirez-ml/hirez/engine/backend"
)

// Role is what a network does, which fixes its input and output.
type Role string

const (
	// Generator maps a latent vector [Latent] to an image [Channels, Side, Side]
	// in [−1, 1]; a class-conditional one (Classes > 0) takes [Latent + Classes]:
	// the latent followed by the one-hot of the class.
	Generator Role = "generator"
	// Discriminator maps an image [Channels, Side, Side] in [−1, 1] to one logit;
	// a class-conditional one (Classes > 0) to [1 + Classes] values, the
	// projection discriminator's unconditional logit and one per class
	// (train.Projection combines them).
	Discriminator Role = "discriminator"
	// Upscaler maps an image [Channels, Side, Side] to [Channels, Scale·Side,
	// Scale·Side] in the same Range.
	Upscaler Role = "upscaler"
	// Encoder maps an image [Channels, Side, Side] to a feature vector
	// [Features]: the evaluation's feature extractor (engine/features).
	Encoder Role = "encoder"
)

// Range is how 8-bit pixels map to the floats a network sees.
type Range string

const (
	// Signed is v/127.5 − 1 ∈ [−1, 1], the DCGAN convention (tanh outputs).
	Signed Range = "signed"
	// Unit is v/255 ∈ [0, 1], the SRCNN interop contract.
	Unit Range = "unit"
)

// Op is one kind of layer in a Spec.
type Op string

// The layer kinds a preset can use; each maps to one engine/layer type and to the
// torch.nn module of the same meaning.
const (
	OpDense        Op = "dense"         // nn.Linear(in, Out); In is inferred
	OpConv         Op = "conv"          // nn.Conv2d(in, Out, Kernel, Stride, Pad); In is inferred
	OpBatchNorm    Op = "batchnorm"     // nn.BatchNorm2d/1d(channels), channels inferred
	OpReLU         Op = "relu"          // nn.ReLU
	OpLeakyReLU    Op = "leaky_relu"    // nn.LeakyReLU(Alpha)
	OpTanh         Op = "tanh"          // nn.Tanh
	OpSigmoid      Op = "sigmoid"       // nn.Sigmoid
	OpUpsample     Op = "upsample2x"    // nn.Upsample(scale_factor=2, mode="nearest")
	OpMaxPool      Op = "maxpool2"      // nn.MaxPool2d(2)
	OpReshape      Op = "reshape"       // x.view(N, Out, s, s), s from Side (see Config)
	OpFlatten      Op = "flatten"       // nn.Flatten
	OpPixelShuffle Op = "pixel_shuffle" // nn.PixelShuffle(Factor)
)

// Spec is one layer of a network. Input sizes are never written down: they follow
// from the previous layer, so one layer list serves every Side.
type Spec struct {
	Op     Op     `json:"op"`
	Name   string `json:"name"`             // the torch attribute name: parameters are "<Name>.weight", …
	Out    int    `json:"out,omitempty"`    // conv/dense outputs; reshape channels; 0 for a dense layer feeding a reshape means "what the reshape needs"
	Kernel int    `json:"kernel,omitempty"` // conv: square kernel side
	Stride int    `json:"stride,omitempty"` // conv: 0 means 1
	Pad    int    `json:"pad,omitempty"`    // conv: zero padding per side
	NoBias bool   `json:"no_bias,omitempty"`
	// Alpha is LeakyReLU's negative slope.
	Alpha float32 `json:"alpha,omitempty"`
	// Factor is PixelShuffle's upscale factor r.
	Factor int `json:"factor,omitempty"`
	// ZeroInit starts the layer's weights and bias at zero instead of the
	// config's Init (the last conv of a residual upscaler, so it starts as the
	// identity around its skip).
	ZeroInit bool `json:"zero_init,omitempty"`
	// SpectralNorm (conv and dense only) runs the layer with W/σ(W), σ the
	// largest singular value of W as an (Out, In·K·K) matrix estimated by one
	// power iteration per training forward (Miyato et al. 2018; engine/layer
	// spectral.go). It adds the non-trainable parameter "<Name>.weight_u" [Out].
	SpectralNorm bool `json:"spectral_norm,omitempty"`
}

// Input values of Config.Input.
const (
	// InputBicubic: the layers see the input upscaled ×Scale by MATLAB bicubic
	// (layer.Bicubic: imresize's kernel and symmetric borders, in float), as the
	// SRCNN and VDSR papers feed their networks.
	InputBicubic = "bicubic"
)

// BorderSymmetric is the Config.Border of an upscaler that runs on its input
// extended by its Halo with the image's mirror (imageio.RGB.PadSymmetric),
// its output cropped back: every output pixel then sees image-like context,
// never the convolutions' zero padding.
const BorderSymmetric = "symmetric"

// Config fully describes a network: the preset a file names, written into every
// weights file as JSON so a served model can be rebuilt from its file alone.
type Config struct {
	Preset   string `json:"preset"`
	Role     Role   `json:"role"`
	Side     int    `json:"side"`               // generator: output side; others: input side
	Latent   int    `json:"latent,omitempty"`   // generator: z dimension
	Channels int    `json:"channels"`           // image channels (3, RGB)
	Scale    int    `json:"scale,omitempty"`    // upscaler: output side / input side
	Features int    `json:"features,omitempty"` // encoder: length of the feature vector
	// Classes > 0 makes a generator or discriminator class-conditional (see
	// Generator, Discriminator and WithClasses); the class names are the weights
	// file's labels (Labels), in class order.
	Classes int    `json:"classes,omitempty"`
	Range   Range  `json:"range"` // pixel ↔ float mapping of images in and out
	Init    string `json:"init"`  // "dcgan" or "pytorch": how Build draws fresh weights
	// Input is how an upscaler's image reaches the layers: "" as it is, or
	// InputBicubic (upscaled ×Scale first, a fixed parameter-free step).
	Input string `json:"input,omitempty"`
	// Residual makes the output the layers' input plus the layers' output (a
	// global skip, VDSR-style); when the layers upscale, the skip is the layers'
	// input upscaled ×Scale by MATLAB bicubic. The layers then learn only a
	// correction to bicubic.
	Residual bool `json:"residual,omitempty"`
	// Border is how an upscaler's image edges are served: "" (the layers'
	// zero padding, as in training) or BorderSymmetric. The multi-stage GAN's
	// Up Sampler needs it: trained at 32², applied again at 64² and 128², its
	// zero-padded edges draw a light frame a few pixels inside the border
	// (docs/models.md).
	Border string `json:"border,omitempty"`
	Layers []Spec `json:"layers"`
}

// JSON returns the config as compact JSON (the weights file's "config" metadata).
func (c Config) JSON() string {
	b, _ := json.Marshal(c) // a Config always marshals
	return string(b)
}

// ParseConfig reads a config written by JSON and validates it.
func ParseConfig(s string) (Config, error) {
	var c Config
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	if _, err := c.Plan(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// InputShape is one sample's input shape.
func (c Config) InputShape() []int {
	if c.Role == Generator {
		return []int{c.Latent + c.Classes}
	}
	return []int{c.Channels, c.Side, c.Side}
}

// MaxClasses bounds Config.Classes: far above the 10 Unicode emoji groups, far
// below what would make a one-hot input or a projection head unreasonable.
const MaxClasses = 1024

// MaxScale bounds Config.Scale: every upscaler preset is ×2; ×16 is far past
// what one super-resolution pass does, and keeps Scale·Side far from overflow.
const MaxScale = 16

// WithClasses returns the config made class-conditional over n classes (n = 0:
// unconditional again). A generator's input grows by the one-hot of the class
// (the concatenation of Mirza & Osindero 2014's conditional GAN); a
// discriminator's last layer, which must be dense, gets 1 + n outputs: the
// logit of the projection discriminator (Miyato & Koyama 2018) is output 0
// plus the output of the sample's class, ψ(φ(x)) + v_y·φ(x), with ψ and the
// class embeddings v_y the rows of that one dense layer.
func (c Config) WithClasses(n int) (Config, error) {
	if n < 0 || n > MaxClasses {
		return Config{}, fmt.Errorf("model %s: %d classes (want 0..%d)", c.Preset, n, MaxClasses)
	}
	c.Layers = slices.Clone(c.Layers)
	c.Classes = n
	switch c.Role {
	case Generator:
	case Discriminator:
		if len(c.Layers) == 0 || c.Layers[len(c.Layers)-1].Op != OpDense {
			return Config{}, fmt.Errorf("model %s: a class-conditional discriminator needs a dense last layer", c.Preset)
		}
		c.Layers[len(c.Layers)-1].Out = 1 + n
	default:
		if n > 0 {
			return Config{}, fmt.Errorf("model %s: a %s cannot be class-conditional", c.Preset, c.Role)
		}
	}
	if _, err := c.Plan(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// OutputShape is one sample's output shape.
func (c Config) OutputShape() []int {
	switch c.Role {
	case Generator:
		return []int{c.Channels, c.Side, c.Side}
	case Discriminator:
		return []int{1 + c.Classes}
	case Encoder:
		return []int{c.Features}
	}
	return []int{c.Channels, c.Scale * c.Side, c.Scale * c.Side}
}

// Step is one planned layer: its spec with the shapes it sees at a given batch.
type Step struct {
	Spec
	In, Out []int // per-sample shapes
	// Params lists the layer's tensors (PyTorch names and shapes), trainable first.
	Params []ParamShape
	FLOPs  float64 // per sample: multiply-adds ×2 of conv and dense layers
}

// ParamShape is a named tensor of a planned layer.
type ParamShape struct {
	Name      string
	Shape     []int
	Trainable bool
}

// Plan validates the config and infers every layer's shapes for one sample.
// A reshape after the latent makes (Out, s, s) with s = the output Side divided by
// the upsampling that follows it, so the study's "h/8" is computed, not written.
func (c Config) Plan() ([]Step, error) {
	if err := c.checkHeader(); err != nil {
		return nil, err
	}
	cur := c.LayersInputShape()
	if err := checkShape(cur); err != nil {
		return nil, fmt.Errorf("model %s: input: %w", c.Preset, err)
	}
	steps := make([]Step, 0, len(c.Layers))
	names := map[string]bool{}
	for i, s := range c.Layers {
		if s.Name == "" {
			return nil, fmt.Errorf("model %s: layer %d (%s) has no name", c.Preset, i, s.Op)
		}
		if names[s.Name] {
			return nil, fmt.Errorf("model %s: duplicate layer name %q", c.Preset, s.Name)
		}
		names[s.Name] = true
		st := Step{Spec: s, In: cur}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("model %s: layer %s (%s) on input %v: %s", c.Preset, s.Name, s.Op, cur, fmt.Sprintf(format, args...))
		}
		if s.SpectralNorm && s.Op != OpConv && s.Op != OpDense {
			return nil, bad("spectral_norm is for conv and dense layers only")
		}
		if s.SpectralNorm && s.ZeroInit {
			return nil, bad("spectral_norm and zero_init together: σ of a zero weight is 0")
		}
		switch s.Op {
		case OpDense:
			in := prod(cur)
			out := s.Out
			if out == 0 {
				if i+1 >= len(c.Layers) || c.Layers[i+1].Op != OpReshape {
					return nil, bad("out 0 is only allowed before a reshape")
				}
				r, err := c.reshapeShape(i + 1)
				if err != nil {
					return nil, err
				}
				out = prod(r)
			}
			if out <= 0 {
				return nil, bad("%d outputs", out)
			}
			st.Spec.Out = out
			st.Out = []int{out}
			st.Params = append(st.Params, ParamShape{s.Name + ".weight", []int{out, in}, true})
			if !s.NoBias {
				st.Params = append(st.Params, ParamShape{s.Name + ".bias", []int{out}, true})
			}
			if s.SpectralNorm {
				st.Params = append(st.Params, ParamShape{s.Name + ".weight_u", []int{out}, false})
			}
			st.FLOPs = 2 * float64(in) * float64(out)
		case OpConv:
			if len(cur) != 3 {
				return nil, bad("needs a C×H×W input")
			}
			stride := max(s.Stride, 1)
			cv := backend.Conv2D{In: backend.Dims{N: 1, C: cur[0], H: cur[1], W: cur[2]}, Out: s.Out, KH: s.Kernel, KW: s.Kernel, Stride: stride, Pad: s.Pad}
			if err := cv.Validate(); err != nil {
				return nil, bad("%v", err)
			}
			o := cv.OutDims()
			st.Out = []int{o.C, o.H, o.W}
			st.Params = append(st.Params, ParamShape{s.Name + ".weight", []int{s.Out, cur[0], s.Kernel, s.Kernel}, true})
			if !s.NoBias {
				st.Params = append(st.Params, ParamShape{s.Name + ".bias", []int{s.Out}, true})
			}
			if s.SpectralNorm {
				st.Params = append(st.Params, ParamShape{s.Name + ".weight_u", []int{s.Out}, false})
			}
			st.FLOPs = cv.FLOPs()
		case OpBatchNorm:
			ch := cur[0]
			st.Out = cur
			st.Params = []ParamShape{
				{s.Name + ".weight", []int{ch}, true}, {s.Name + ".bias", []int{ch}, true},
				{s.Name + ".running_mean", []int{ch}, false}, {s.Name + ".running_var", []int{ch}, false},
			}
		case OpReLU, OpTanh, OpSigmoid:
			st.Out = cur
		case OpLeakyReLU:
			if s.Alpha <= 0 || s.Alpha >= 1 {
				return nil, bad("alpha %g", s.Alpha)
			}
			st.Out = cur
		case OpUpsample:
			if len(cur) != 3 {
				return nil, bad("needs a C×H×W input")
			}
			st.Out = []int{cur[0], 2 * cur[1], 2 * cur[2]}
		case OpMaxPool:
			if len(cur) != 3 || cur[1]%2 != 0 || cur[2]%2 != 0 {
				return nil, bad("needs a C×H×W input with even sides")
			}
			st.Out = []int{cur[0], cur[1] / 2, cur[2] / 2}
		case OpPixelShuffle:
			r := s.Factor
			// r·r is compared as a float first: a huge factor must not wrap to 0.
			if len(cur) != 3 || r < 2 || float64(r)*float64(r) > float64(cur[0]) || cur[0]%(r*r) != 0 {
				return nil, bad("factor %d needs a C×H×W input with C divisible by %d", r, r*r)
			}
			st.Out = []int{cur[0] / (r * r), cur[1] * r, cur[2] * r}
		case OpReshape:
			r, err := c.reshapeShape(i)
			if err != nil {
				return nil, err
			}
			if prod(r) != prod(cur) {
				return nil, bad("%d values cannot reshape to %v", prod(cur), r)
			}
			st.Out = r
		case OpFlatten:
			st.Out = []int{prod(cur)}
		default:
			return nil, bad("unknown op")
		}
		if err := checkShape(st.Out); err != nil {
			return nil, bad("output: %v", err)
		}
		for _, p := range st.Params {
			if err := checkShape(p.Shape); err != nil {
				return nil, bad("%s: %v", p.Name, err)
			}
		}
		cur = st.Out
		steps = append(steps, st)
	}
	if want := c.OutputShape(); !slices.Equal(cur, want) {
		return nil, fmt.Errorf("model %s: the layers end in %v, a %s at side %d must output %v", c.Preset, cur, c.Role, c.Side, want)
	}
	if c.Residual {
		in := c.LayersInputShape()
		if !slices.Equal(cur, in) && !slices.Equal(cur, []int{in[0], c.Scale * in[1], c.Scale * in[2]}) {
			return nil, fmt.Errorf("model %s: residual: the layers map %v to %v, neither the same shape nor ×%d", c.Preset, in, cur, c.Scale)
		}
	}
	return steps, nil
}

// LayersInputShape is one sample's shape as the first layer sees it: the input,
// or for Input "bicubic" the input upscaled ×Scale.
func (c Config) LayersInputShape() []int {
	in := c.InputShape()
	if c.Input == InputBicubic {
		return []int{in[0], c.Scale * in[1], c.Scale * in[2]}
	}
	return in
}

func (c Config) checkHeader() error {
	switch {
	case c.Preset == "":
		return fmt.Errorf("model config: no preset name")
	case c.Side <= 0 || c.Side > 4096:
		return fmt.Errorf("model %s: side %d", c.Preset, c.Side)
	case c.Scale < 0 || c.Scale > MaxScale:
		return fmt.Errorf("model %s: scale %d (want at most %d)", c.Preset, c.Scale, MaxScale)
	case c.Channels <= 0:
		return fmt.Errorf("model %s: %d channels", c.Preset, c.Channels)
	case c.Range != Signed && c.Range != Unit:
		return fmt.Errorf("model %s: range %q (want %q or %q)", c.Preset, c.Range, Signed, Unit)
	case c.Init != "dcgan" && c.Init != "pytorch":
		return fmt.Errorf("model %s: init %q (want dcgan or pytorch)", c.Preset, c.Init)
	case len(c.Layers) == 0:
		return fmt.Errorf("model %s: no layers", c.Preset)
	case c.Input != "" && c.Input != InputBicubic:
		return fmt.Errorf("model %s: input %q (want \"\" or %q)", c.Preset, c.Input, InputBicubic)
	case (c.Input != "" || c.Residual) && c.Role != Upscaler:
		return fmt.Errorf("model %s: input and residual are for upscalers, not a %s", c.Preset, c.Role)
	case c.Border != "" && c.Border != BorderSymmetric:
		return fmt.Errorf("model %s: border %q (want \"\" or %q)", c.Preset, c.Border, BorderSymmetric)
	case c.Border != "" && c.Role != Upscaler:
		return fmt.Errorf("model %s: border is for upscalers, not a %s", c.Preset, c.Role)
	case c.Classes < 0 || c.Classes > MaxClasses:
		return fmt.Errorf("model %s: %d classes (want 0..%d)", c.Preset, c.Classes, MaxClasses)
	case c.Classes > 0 && c.Role != Generator && c.Role != Discriminator:
		return fmt.Errorf("model %s: classes are for generators and discriminators, not a %s", c.Preset, c.Role)
	}
	switch c.Role {
	case Generator:
		if c.Latent <= 0 {
			return fmt.Errorf("model %s: latent dimension %d", c.Preset, c.Latent)
		}
	case Discriminator:
	case Encoder:
		if c.Features <= 0 {
			return fmt.Errorf("model %s: %d features", c.Preset, c.Features)
		}
	case Upscaler:
		if c.Scale < 2 {
			return fmt.Errorf("model %s: scale %d", c.Preset, c.Scale)
		}
	default:
		return fmt.Errorf("model %s: unknown role %q", c.Preset, c.Role)
	}
	return nil
}

// reshapeShape resolves the reshape at layer i: (Out, s, s) where s is the final
// spatial side divided by the resizing of the layers after it.
func (c Config) reshapeShape(i int) ([]int, error) {
	s := c.Layers[i]
	final := c.OutputShape()
	if len(final) != 3 || s.Out <= 0 {
		return nil, fmt.Errorf("model %s: reshape %s needs an image output and out > 0", c.Preset, s.Name)
	}
	num, den := 1, 1 // side after = side before · num / den
	// Both stay within backend.MaxElements, checked before multiplying (as
	// floats): more resizing than that fits no tensor, and an int product of
	// many layers' factors would wrap (to 0: a division by zero below).
	scale := func(v *int, f int) error {
		f = max(f, 1)
		if float64(*v)*float64(f) > backend.MaxElements {
			return fmt.Errorf("model %s: reshape %s: the layers after it resize by more than %d", c.Preset, s.Name, backend.MaxElements)
		}
		*v *= f
		return nil
	}
	for _, t := range c.Layers[i+1:] {
		var err error
		switch t.Op {
		case OpUpsample:
			err = scale(&num, 2)
		case OpPixelShuffle:
			err = scale(&num, t.Factor)
		case OpMaxPool:
			err = scale(&den, 2)
		case OpConv:
			err = scale(&den, t.Stride)
		}
		if err != nil {
			return nil, err
		}
	}
	side := final[1] * den
	if side%num != 0 {
		return nil, fmt.Errorf("model %s: reshape %s: side %d is not divisible by the %d× upsampling after it", c.Preset, s.Name, final[1], num/den)
	}
	r := []int{s.Out, side / num, side / num}
	if err := checkShape(r); err != nil {
		return nil, fmt.Errorf("model %s: reshape %s: %w", c.Preset, s.Name, err)
	}
	return r, nil
}

// Counts sums a plan: trainable parameters, non-trainable buffers (BatchNorm
// running statistics, spectral norm's u vectors) and FLOPs per sample (the
// power iteration of spectral norm, once per forward and not per sample, is
// not counted).
func Counts(steps []Step) (params, buffers int64, flops float64) {
	for _, st := range steps {
		for _, p := range st.Params {
			if p.Trainable {
				params += int64(prod(p.Shape))
			} else {
				buffers += int64(prod(p.Shape))
			}
		}
		flops += st.FLOPs
	}
	return params, buffers, flops
}

// checkShape reports a shape no backend could hold: an empty dimension, or
// more than backend.MaxElements values (for one sample: no batch could run).
// The product is taken in float64, so a hostile config's sizes cannot wrap
// around to a small one; within the bound, prod cannot overflow.
func checkShape(s []int) error {
	n := 1.0
	for _, d := range s {
		if d <= 0 {
			return fmt.Errorf("shape %v has an empty dimension", s)
		}
		n *= float64(d)
	}
	if n > backend.MaxElements {
		return fmt.Errorf("shape %v has more than %d values", s, backend.MaxElements)
	}
	return nil
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}
