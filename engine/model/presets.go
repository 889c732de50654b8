package model

import (
	"fmt"
	"slices"
)

// Preset is a named network configuration with the reasoning behind it. Presets
// are data: Build turns any Config into layers, and the same layer list serves
// every side the preset allows.
type Preset struct {
	Name string
	Role Role
	// Reading says how the preset reads the study's tables (docs/models.md, "How
	// the presets read the study's tables"), or for the stable variants where it
	// departs from them and why.
	Reading string
	// Sides lists the sides the preset is meant for (input side for
	// discriminators and upscalers, output side for generators); the first is the
	// default. Fully convolutional upscalers run on any input size.
	Sides []int
	base  Config
}

// Config returns the preset's configuration at side (0: the default side). A
// side outside Sides is allowed when the layers can run at it (a test at 16² of
// a generator meant for 32², say); Plan rejects impossible ones.
func (p Preset) Config(side int) (Config, error) {
	c := p.base
	c.Layers = slices.Clone(c.Layers)
	if side != 0 {
		c.Side = side
	}
	if _, err := c.Plan(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Helpers that keep the table below readable. Every conv is 'same' padded at
// stride 1 unless a preset says otherwise.
func conv(name string, out, k int) Spec {
	return Spec{Op: OpConv, Name: name, Out: out, Kernel: k, Pad: (k - 1) / 2}
}
func convNB(name string, out, k int) Spec { s := conv(name, out, k); s.NoBias = true; return s }
func convS2(name string, out int, noBias bool) Spec {
	return Spec{Op: OpConv, Name: name, Out: out, Kernel: 4, Stride: 2, Pad: 1, NoBias: noBias}
}
func dense(name string, out int) Spec  { return Spec{Op: OpDense, Name: name, Out: out} }
func bn(name string) Spec              { return Spec{Op: OpBatchNorm, Name: name} }
func relu(name string) Spec            { return Spec{Op: OpReLU, Name: name} }
func lrelu(name string) Spec           { return Spec{Op: OpLeakyReLU, Name: name, Alpha: 0.2} }
func tanh(name string) Spec            { return Spec{Op: OpTanh, Name: name} }
func up(name string) Spec              { return Spec{Op: OpUpsample, Name: name} }
func pool(name string) Spec            { return Spec{Op: OpMaxPool, Name: name} }
func reshape(name string, ch int) Spec { return Spec{Op: OpReshape, Name: name, Out: ch} }
func flatten(name string) Spec         { return Spec{Op: OpFlatten, Name: name} }
func shuffle(name string, r int) Spec  { return Spec{Op: OpPixelShuffle, Name: name, Factor: r} }
func zero(s Spec) Spec                 { s.ZeroInit = true; return s }
func sn(s Spec) Spec                   { s.SpectralNorm = true; return s }
func seq(specs ...[]Spec) []Spec       { return slices.Concat(specs...) }
func one(s ...Spec) []Spec             { return s }

// studyDiscriminator is the study's D table with LeakyReLU 0.2 after every conv
// and the hidden dense layer; the last dense layer emits a logit (the loss applies
// the sigmoid, as BCEWithLogits does).
var studyDiscriminator = one(
	conv("conv1", 64, 3), lrelu("act1"), pool("pool1"),
	conv("conv2", 128, 3), lrelu("act2"), pool("pool2"),
	conv("conv3", 256, 3), lrelu("act3"), pool("pool3"),
	flatten("flatten"), dense("fc1", 512), lrelu("act4"), dense("fc2", 1),
)

// presets is the table. Names are stable: they are written into weights files.
var presets = []Preset{
	{
		Name: "dcgan-g-study",
		Role: Generator,
		Reading: "The study's generator: z ∈ R^100 → Dense → reshape (256, h/8, h/8) → " +
			"[UpSample 2× nearest → Conv 3×3] with 128, 64 and 3 channels. The table's Dense " +
			"width (512) cannot reshape, so Dense maps 100 → 256·(h/8)². Activations follow " +
			"the DCGAN paper (ReLU after the Dense layer and the hidden convs, tanh on the output); " +
			"'same' padding, stride 1, no normalisation (the tables name none).",
		Sides: []int{32, 64, 128, 256},
		base: Config{Preset: "dcgan-g-study", Role: Generator, Side: 32, Latent: 100, Channels: 3, Range: Signed, Init: "dcgan",
			Layers: seq(
				one(dense("fc", 0), reshape("reshape", 256), relu("act0")),
				one(up("up1"), conv("conv1", 128, 3), relu("act1")),
				one(up("up2"), conv("conv2", 64, 3), relu("act2")),
				one(up("up3"), conv("conv3", 3, 3), tanh("out")),
			)},
	},
	{
		Name: "dcgan-g-stable",
		Role: Generator,
		Reading: "dcgan-g-study plus BatchNorm as in the DCGAN paper: BatchNorm2d after the " +
			"reshaped Dense output and after each hidden conv (before the ReLU), none on the " +
			"output. Layers followed by BatchNorm have no bias (BatchNorm's beta replaces it).",
		Sides: []int{32, 64, 128, 256},
		base: Config{Preset: "dcgan-g-stable", Role: Generator, Side: 32, Latent: 100, Channels: 3, Range: Signed, Init: "dcgan",
			Layers: seq(
				one(Spec{Op: OpDense, Name: "fc", NoBias: true}, reshape("reshape", 256), bn("bn0"), relu("act0")),
				one(up("up1"), convNB("conv1", 128, 3), bn("bn1"), relu("act1")),
				one(up("up2"), convNB("conv2", 64, 3), bn("bn2"), relu("act2")),
				one(up("up3"), conv("conv3", 3, 3), tanh("out")),
			)},
	},
	{
		Name: "dcgan-d-study",
		Role: Discriminator,
		Reading: "The study's discriminator: Conv 3×3 64 → MaxPool 2 → Conv 3×3 128 → MaxPool 2 → " +
			"Conv 3×3 256 → MaxPool 2 → Flatten → Dense 512 → Dense 1. LeakyReLU 0.2 after each " +
			"conv (before the pool) and after Dense 512; the output is a logit (no sigmoid: the " +
			"loss applies it). 'same' padding, stride 1, no normalisation.",
		Sides: []int{32, 64, 128, 256},
		base:  Config{Preset: "dcgan-d-study", Role: Discriminator, Side: 32, Channels: 3, Range: Signed, Init: "dcgan", Layers: studyDiscriminator},
	},
	{
		Name: "dcgan-d-stable",
		Role: Discriminator,
		Reading: "The DCGAN paper's discriminator at the study's widths: strided Conv 4×4 " +
			"(stride 2, padding 1) replaces Conv + MaxPool, 64 → 128 → 256 channels, BatchNorm " +
			"after every conv but the first, LeakyReLU 0.2, then Flatten → Dense 1 (a logit). " +
			"No Dense 512: it held most of the study D's weights and made D win at once.",
		Sides: []int{32, 64, 128, 256},
		base: Config{Preset: "dcgan-d-stable", Role: Discriminator, Side: 32, Channels: 3, Range: Signed, Init: "dcgan",
			Layers: one(
				convS2("conv1", 64, false), lrelu("act1"),
				convS2("conv2", 128, true), bn("bn2"), lrelu("act2"),
				convS2("conv3", 256, true), bn("bn3"), lrelu("act3"),
				flatten("flatten"), dense("fc", 1),
			)},
	},
	{
		Name: "dcgan-d-sn",
		Role: Discriminator,
		Reading: "Not from the study: dcgan-d-stable's strided Conv 4×4 (stride 2, padding 1, " +
			"64 → 128 → 256 channels) with spectral normalisation (Miyato et al. 2018: W/σ(W), one " +
			"power iteration per training forward) on every conv and on the final Dense 1, and no " +
			"BatchNorm (SN-GAN style; the convs keep their bias). LeakyReLU 0.2 as in dcgan-d-stable, " +
			"so that only the normalisation differs; Flatten → Dense 1 (a logit). Each spectrally " +
			"normalised layer keeps its power-iteration vector as the buffer <name>.weight_u. " +
			"The discriminator of the small-data recipe (train.SmallDataRecipe).",
		Sides: []int{32, 64, 128, 256},
		base: Config{Preset: "dcgan-d-sn", Role: Discriminator, Side: 32, Channels: 3, Range: Signed, Init: "dcgan",
			Layers: one(
				sn(convS2("conv1", 64, false)), lrelu("act1"),
				sn(convS2("conv2", 128, false)), lrelu("act2"),
				sn(convS2("conv3", 256, false)), lrelu("act3"),
				flatten("flatten"), sn(dense("fc", 1)),
			)},
	},
	{
		Name: "upsampler-study",
		Role: Upscaler,
		Reading: "Stage 2 of the study's multi-stage GAN, h → 2h: Conv 3×3 64 → MaxPool → " +
			"Conv 3×3 128 → MaxPool → bottleneck → [UpSample 2× → Conv 3×3] with 256, 128, 64 " +
			"channels → Conv 3×3 3 + tanh. The table's bottleneck (Flatten → Dense 256 → reshape " +
			"to (256, h/4, h/4)) cannot hold h/4·h/4·256 values in 256 for h ≥ 64, so it is a " +
			"convolutional bottleneck (Conv 3×3 256 at h/4) that keeps the spatial layout. ReLU " +
			"after every hidden conv (it is a generator); images in [−1, 1]. Served with symmetric " +
			"borders (Config.Border): applied to its own output at 64² and 128², the zero padding of " +
			"its seven convs drew a light frame a few pixels inside the border.",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "upsampler-study", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Signed, Init: "dcgan", Border: BorderSymmetric,
			Layers: seq(
				one(conv("enc1", 64, 3), relu("act1"), pool("pool1")),
				one(conv("enc2", 128, 3), relu("act2"), pool("pool2")),
				one(conv("bottleneck", 256, 3), relu("act3")),
				one(up("up1"), conv("dec1", 256, 3), relu("act4")),
				one(up("up2"), conv("dec2", 128, 3), relu("act5")),
				one(up("up3"), conv("dec3", 64, 3), relu("act6")),
				one(conv("out", 3, 3), tanh("tanh")),
			)},
	},
	{
		Name: "upsampler-stable",
		Role: Upscaler,
		Reading: "upsampler-study with BatchNorm after every hidden conv (before the ReLU), none " +
			"on the output, as dcgan-g-stable does for the DCGAN; convs followed by BatchNorm " +
			"have no bias. Why: under the DCGAN N(0, 0.02) init the study's seven-conv " +
			"encoder-decoder shrinks the signal ≈ 470× from input to output (std 0.54 in, " +
			"0.0012 out: flat grey) and all its gradients are 100–250× smaller than with " +
			"BatchNorm, which restores unit scale after every conv (docs/models.md).",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "upsampler-stable", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Signed, Init: "dcgan", Border: BorderSymmetric,
			Layers: seq(
				one(convNB("enc1", 64, 3), bn("bn1"), relu("act1"), pool("pool1")),
				one(convNB("enc2", 128, 3), bn("bn2"), relu("act2"), pool("pool2")),
				one(convNB("bottleneck", 256, 3), bn("bn3"), relu("act3")),
				one(up("up1"), convNB("dec1", 256, 3), bn("bn4"), relu("act4")),
				one(up("up2"), convNB("dec2", 128, 3), bn("bn5"), relu("act5")),
				one(up("up3"), convNB("dec3", 64, 3), bn("bn6"), relu("act6")),
				one(conv("out", 3, 3), tanh("tanh")),
			)},
	},
	{
		Name: "upsampler-d-study",
		Role: Discriminator,
		Reading: "The multi-stage GAN's second discriminator: the study's D table (as " +
			"dcgan-d-study) applied to the Up Sampler's 2h output.",
		Sides: []int{64, 128, 256},
		base:  Config{Preset: "upsampler-d-study", Role: Discriminator, Side: 64, Channels: 3, Range: Signed, Init: "dcgan", Layers: studyDiscriminator},
	},
	{
		Name: "srcnn-study",
		Role: Upscaler,
		Reading: "THE INTEROP CONTRACT. The study's SRCNN: input RGB pixel/255, nearest 2× " +
			"upsampling inside the network, conv1 3→256 9×9 pad 4 + ReLU, conv2 256→128 3×3 " +
			"pad 1 + ReLU, conv3 128→3 5×5 pad 2, linear; the output is clamped to [0, 1], ×255 " +
			"and rounded. Weights conv1.weight, conv1.bias, … as a torch module with those attributes.",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "srcnn-study", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Unit, Init: "pytorch",
			Layers: one(
				up("up"),
				conv("conv1", 256, 9), relu("act1"),
				conv("conv2", 128, 3), relu("act2"),
				conv("conv3", 3, 5),
			)},
	},
	{
		Name: "srcnn-classic",
		Role: Upscaler,
		Reading: "Dong et al.'s SRCNN 9-1-5 with 64/32 filters (conv1 3→64 9×9, conv2 64→32 1×1, " +
			"conv3 32→3 5×5) under the srcnn-study conventions: RGB not Y, nearest not bicubic " +
			"pre-upsampling, 'same' padding so the output is exactly 2h, linear output clamped.",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "srcnn-classic", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Unit, Init: "pytorch",
			Layers: one(
				up("up"),
				conv("conv1", 64, 9), relu("act1"),
				conv("conv2", 32, 1), relu("act2"),
				conv("conv3", 3, 5),
			)},
	},
	{
		Name: "espcn-x2",
		Role: Upscaler,
		Reading: "A cheap sub-pixel upscaler after Shi et al. (ESPCN): all convs run at the low " +
			"resolution, conv1 3→64 5×5 + tanh, conv2 64→32 3×3 + tanh, conv3 32→12 3×3, " +
			"PixelShuffle(2) → 3 channels at 2h. RGB in [0, 1], linear output clamped like SRCNN. " +
			"About 1/55 of srcnn-study's FLOPs.",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "espcn-x2", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Unit, Init: "pytorch",
			Layers: one(
				conv("conv1", 64, 5), tanh("act1"),
				conv("conv2", 32, 3), tanh("act2"),
				conv("conv3", 12, 3), shuffle("shuffle", 2),
			)},
	},
	{
		Name: "srcnn-residual",
		Role: Upscaler,
		Reading: "SRCNN 9-5-5 (Dong et al.'s 64/32 filters) as a VDSR-style global residual: the " +
			"input is upscaled ×2 by MATLAB bicubic inside the network (a fixed, parameter-free step " +
			"with imresize's kernel and symmetric borders, in float), then conv1 3→64 9×9 + ReLU, " +
			"conv2 64→32 5×5 + ReLU, conv3 32→3 5×5 learns only the correction, added to the bicubic " +
			"image. conv3 starts at zero, so the untrained net is bicubic. RGB in [0, 1], output " +
			"clamped like SRCNN.",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "srcnn-residual", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Unit, Init: "pytorch",
			Input: InputBicubic, Residual: true,
			Layers: one(
				conv("conv1", 64, 9), relu("act1"),
				conv("conv2", 32, 5), relu("act2"),
				zero(conv("conv3", 3, 5)),
			)},
	},
	{
		Name: "espcn-residual",
		Role: Upscaler,
		Reading: "espcn-x2 with ReLU and a global bicubic skip: every conv at the low resolution " +
			"(conv1 3→64 5×5 + ReLU, conv2 64→32 3×3 + ReLU, conv3 32→12 3×3, PixelShuffle(2)) " +
			"learns the correction added to the MATLAB-bicubic ×2 of the input (a fixed, " +
			"parameter-free skip, symmetric borders). conv3 starts at zero, so the untrained net " +
			"is bicubic. RGB in [0, 1], output clamped like SRCNN.",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "espcn-residual", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Unit, Init: "pytorch",
			Residual: true,
			Layers: one(
				conv("conv1", 64, 5), relu("act1"),
				conv("conv2", 32, 3), relu("act2"),
				zero(conv("conv3", 12, 3)), shuffle("shuffle", 2),
			)},
	},
	{
		Name: "espcn-residual-deep",
		Role: Upscaler,
		Reading: "Not from the study: espcn-residual with four more 3×3 64→64 convs (+ ReLU) at " +
			"the low resolution, for photographs, where the 3-layer net's gain flattens at ≈ +1.4 dB " +
			"over bicubic (docs/training.md): conv1 3→64 5×5, conv2…conv5 64→64 3×3, conv6 " +
			"64→12 3×3, PixelShuffle(2), added to the MATLAB-bicubic ×2 of the input. conv6 starts " +
			"at zero, so the untrained net is bicubic. About 6× espcn-residual's FLOPs, still ≈ 1/9 " +
			"of srcnn-residual's, whose convs run at the high resolution.",
		Sides: []int{32, 64, 128},
		base: Config{Preset: "espcn-residual-deep", Role: Upscaler, Side: 32, Channels: 3, Scale: 2, Range: Unit, Init: "pytorch",
			Residual: true,
			Layers: one(
				conv("conv1", 64, 5), relu("act1"),
				conv("conv2", 64, 3), relu("act2"),
				conv("conv3", 64, 3), relu("act3"),
				conv("conv4", 64, 3), relu("act4"),
				conv("conv5", 64, 3), relu("act5"),
				zero(conv("conv6", 12, 3)), shuffle("shuffle", 2),
			)},
	},
	{
		Name: "emoji-features",
		Role: Encoder,
		Reading: "Not from the study: the evaluation's feature extractor (docs/metrics.md). Four " +
			"[Conv 3×3 → BatchNorm → ReLU → MaxPool 2] blocks with 32, 64, 128, 256 channels " +
			"(64² → 4²), Flatten → Dense 256 → BatchNorm → ReLU: the 256 features. Trained with " +
			"the engine on real emoji only, to classify their Unicode subgroup (train.Features); " +
			"the classification head is not part of the file.",
		Sides: []int{64},
		base: Config{Preset: "emoji-features", Role: Encoder, Side: 64, Channels: 3, Features: 256, Range: Signed, Init: "pytorch",
			Layers: one(
				convNB("conv1", 32, 3), bn("bn1"), relu("act1"), pool("pool1"),
				convNB("conv2", 64, 3), bn("bn2"), relu("act2"), pool("pool2"),
				convNB("conv3", 128, 3), bn("bn3"), relu("act3"), pool("pool3"),
				convNB("conv4", 256, 3), bn("bn4"), relu("act4"), pool("pool4"),
				flatten("flatten"), Spec{Op: OpDense, Name: "fc", Out: 256, NoBias: true}, bn("bn5"), relu("act5"),
			)},
	},
}

// Presets lists every preset, in a stable order.
func Presets() []Preset {
	out := make([]Preset, len(presets))
	for i, p := range presets {
		p.Sides = slices.Clone(p.Sides)
		p.base.Layers = slices.Clone(p.base.Layers)
		out[i] = p
	}
	return out
}

// Lookup returns the preset named name.
func Lookup(name string) (Preset, bool) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// ConfigFor returns the named preset's config at side (0: its default).
func ConfigFor(name string, side int) (Config, error) {
	p, ok := Lookup(name)
	if !ok {
		return Config{}, fmt.Errorf("model: unknown preset %q (known: %v)", name, presetNames())
	}
	return p.Config(side)
}

func presetNames() []string {
	var n []string
	for _, p := range presets {
		n = append(n, p.Name)
	}
	return n
}
