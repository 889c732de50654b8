// Package backend is the contract between the engine's layers and the devices that
// run them: opaque buffers plus a small set of primitive operations.
//
// The contract is shaped for a GPU even though the first backends run on the CPU:
//   - A Buffer is device memory. Its values are reachable only through Upload and
//     Download, so no backend ever hands a host slice to a layer, and a CUDA backend
//     can keep every intermediate on the device.
//   - Operations may be queued (on a CUDA stream, say) and run later. They return
//     errors for bad arguments at once; failures during execution may surface at the
//     next Sync or Download. Download waits for all queued work that writes its source.
//   - Operations write their outputs (they do not accumulate) unless a beta argument
//     says otherwise; outputs never alias inputs unless the method says so.
//
// Tensors are float32 and NCHW at this interface; a backend may use another layout
// inside (oneDNN's blocked formats, say) as long as Upload/Download see NCHW.
//
// A Backend is safe for concurrent use by several goroutines, but a single Buffer
// must not be written by one goroutine while another reads or writes it.
package backend

import (
	"fmt"
	"math"
)

// Buffer is a device allocation of Len float32 values, created by Backend.Alloc and
// usable only with the backend that made it.
type Buffer interface {
	// Len is the number of float32 elements.
	Len() int
}

// Activation names an elementwise nonlinearity.
type Activation int

// Activations in the order the DCGAN and SRCNN papers use them.
const (
	Identity  Activation = iota
	ReLU                 // max(0, x)
	LeakyReLU            // x if x > 0 else alpha·x
	Tanh
	Sigmoid
)

func (a Activation) String() string {
	switch a {
	case Identity:
		return "identity"
	case ReLU:
		return "relu"
	case LeakyReLU:
		return "leaky_relu"
	case Tanh:
		return "tanh"
	case Sigmoid:
		return "sigmoid"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// Dims is an NCHW shape. Dense data uses H = W = 1.
type Dims struct {
	N, C, H, W int
}

// Size is the number of elements N·C·H·W.
func (d Dims) Size() int { return d.N * d.C * d.H * d.W }

// MaxElements bounds every tensor an op takes. The native backends hand
// dimensions and counts to C as 32-bit ints, and a product that overflowed
// could match a small buffer's length check and send C past its end.
const MaxElements = math.MaxInt32

// Check reports a shape with an empty dimension or more than MaxElements values
// (counted in float64, so the check itself cannot overflow).
func (d Dims) Check() error {
	if d.N <= 0 || d.C <= 0 || d.H <= 0 || d.W <= 0 {
		return fmt.Errorf("shape %v has an empty dimension", d)
	}
	if float64(d.N)*float64(d.C)*float64(d.H)*float64(d.W) > MaxElements {
		return fmt.Errorf("shape %v has more than %d values", d, MaxElements)
	}
	return nil
}

func (d Dims) String() string { return fmt.Sprintf("%d×%d×%d×%d", d.N, d.C, d.H, d.W) }

// Conv2D describes a 2-D convolution (cross-correlation, as in PyTorch) with
// symmetric zero padding. Weights are [Out, In.C, KH, KW]; bias is [Out].
type Conv2D struct {
	In     Dims // input N, C, H, W
	Out    int  // output channels
	KH, KW int  // kernel size
	Stride int  // 1, or 2 for down-sampling discriminators
	Pad    int  // zero padding on every side; 'same' at stride 1 is (K−1)/2
}

// OutDims is the output shape: PyTorch's floor((H + 2·Pad − KH)/Stride) + 1.
func (c Conv2D) OutDims() Dims {
	return Dims{
		N: c.In.N,
		C: c.Out,
		H: (c.In.H+2*c.Pad-c.KH)/c.Stride + 1,
		W: (c.In.W+2*c.Pad-c.KW)/c.Stride + 1,
	}
}

// WeightLen is the number of weight values, Out·In.C·KH·KW.
func (c Conv2D) WeightLen() int { return c.Out * c.In.C * c.KH * c.KW }

// FLOPs counts multiply-adds as two operations, the usual convention for GFLOP/s.
func (c Conv2D) FLOPs() float64 {
	o := c.OutDims()
	return 2 * float64(o.Size()) * float64(c.In.C*c.KH*c.KW)
}

// Validate reports a shape that no backend can run. The rules for the other
// ops' arguments are beside it, in check.go.
func (c Conv2D) Validate() error {
	if err := c.In.Check(); err != nil {
		return fmt.Errorf("conv2d: input: %w", err)
	}
	switch {
	case c.Out <= 0: // an upper bound follows from the weights' count below
		return fmt.Errorf("conv2d: %d output channels", c.Out)
	case c.KH <= 0 || c.KW <= 0 || c.KH > c.In.H+2*c.Pad || c.KW > c.In.W+2*c.Pad:
		return fmt.Errorf("conv2d: input %v with padding %d is smaller than the %d×%d kernel", c.In, c.Pad, c.KH, c.KW)
	case c.Stride <= 0 || c.Stride > MaxElements:
		return fmt.Errorf("conv2d: stride %d", c.Stride)
	case c.Pad < 0 || c.Pad >= c.KH || c.Pad >= c.KW:
		return fmt.Errorf("conv2d: padding %d for a %d×%d kernel", c.Pad, c.KH, c.KW)
	}
	if o := c.OutDims(); o.H <= 0 || o.W <= 0 {
		return fmt.Errorf("conv2d: input %v is smaller than the %d×%d kernel", c.In, c.KH, c.KW)
	} else if err := o.Check(); err != nil {
		return fmt.Errorf("conv2d: output: %w", err)
	}
	if float64(c.Out)*float64(c.In.C)*float64(c.KH)*float64(c.KW) > MaxElements {
		return fmt.Errorf("conv2d: %d×%d×%d×%d weights: more than %d values", c.Out, c.In.C, c.KH, c.KW, MaxElements)
	}
	return nil
}

// Gemm describes C = alpha·op(A)·op(B) + beta·C with row-major matrices:
// op(A) is M×K, op(B) is K×N, C is M×N. TransA means A is stored K×M; TransB
// means B is stored N×K (PyTorch's Linear weight [out, in] is used with TransB).
type Gemm struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float32
}

// Validate reports an empty shape or one whose matrices exceed MaxElements.
func (g Gemm) Validate() error {
	m, n, k := float64(g.M), float64(g.N), float64(g.K)
	if g.M <= 0 || g.N <= 0 || g.K <= 0 || m*k > MaxElements || k*n > MaxElements || m*n > MaxElements {
		return fmt.Errorf("matmul: shape M=%d N=%d K=%d (each ≥ 1, each matrix at most %d values)", g.M, g.N, g.K, MaxElements)
	}
	return nil
}

// BatchNorm describes per-channel batch normalisation over N·H·W values.
type BatchNorm struct {
	Dims     Dims
	Epsilon  float32 // PyTorch's default is 1e-5
	Momentum float32 // running = (1−m)·running + m·batch; PyTorch's default is 0.1
}

// Adam holds one Adam update (Kingma & Ba, with bias correction as in PyTorch).
type Adam struct {
	LR, Beta1, Beta2, Epsilon float32
	Step                      int // 1 for the first update
}

// Backend allocates buffers and runs primitive operations on them. An op a
// backend does not run yet returns an error wrapping ErrNotImplemented; every
// op checks its arguments with the rules of check.go first.
type Backend interface {
	// Name is how the backend is chosen at run time: "ref", "cpu", "cuda".
	// It is for messages and choosing; callers that need to know what the
	// backend can do ask Capabilities.
	Name() string
	// Capabilities says what the backend offers beyond the ops below.
	Capabilities() Capabilities

	// Alloc returns a zeroed buffer of n float32 values (n > 0).
	Alloc(n int) (Buffer, error)
	// Free releases a buffer; freeing nil or twice is a no-op.
	Free(b Buffer)
	// Upload copies len(src) == dst.Len() host values into dst.
	Upload(dst Buffer, src []float32) error
	// Download copies src into len(dst) == src.Len() host values, after every
	// queued operation that writes src has finished.
	Download(dst []float32, src Buffer) error
	// Sync waits for all queued work and reports the first failure among it.
	Sync() error
	// Close releases everything the backend holds. Buffers are invalid afterwards.
	Close() error

	// Fill sets every element of x to v.
	Fill(x Buffer, v float32) error
	// Copy copies src into dst (equal lengths).
	Copy(dst, src Buffer) error
	// Axpby computes y = alpha·x + beta·y (equal lengths). With beta = 0, y is
	// only written, so NaNs in y do not propagate.
	Axpby(alpha float32, x Buffer, beta float32, y Buffer) error
	// Mul computes out = x ⊙ y (all equal lengths; out may alias x or y).
	Mul(x, y, out Buffer) error
	// Clamp computes y = min(max(x, lo), hi); y may alias x.
	Clamp(x, y Buffer, lo, hi float32) error
	// Sum writes the sum of x into the one-element buffer out. A NaN or ±Inf in x
	// must make the sum non-finite (plain IEEE additions do): tensor.CheckFinite
	// relies on it to detect divergence with one value downloaded.
	Sum(x, out Buffer) error

	// Activate computes y = f(x); alpha is LeakyReLU's slope. y may alias x.
	Activate(f Activation, alpha float32, x, y Buffer) error
	// ActivateBackward computes dx = f'(x)·dy. ReLU and LeakyReLU read x;
	// Tanh and Sigmoid read y = f(x). dx may alias dy.
	ActivateBackward(f Activation, alpha float32, x, y, dy, dx Buffer) error

	// MatMul runs the GEMM g on row-major A, B and C.
	MatMul(g Gemm, a, b, c Buffer) error
	// AddBias adds bias[c] to every element of channel c of x (shape d), in place.
	AddBias(d Dims, x, bias Buffer) error
	// BiasGrad writes db[c] = Σ over n, h, w of dy[n, c, h, w].
	BiasGrad(d Dims, dy, db Buffer) error

	// Conv2DForward computes y = conv(x, w) + bias; bias may be nil.
	Conv2DForward(c Conv2D, x, w, bias, y Buffer) error
	// Conv2DBackwardData computes dx from dy and w.
	Conv2DBackwardData(c Conv2D, dy, w, dx Buffer) error
	// Conv2DBackwardWeights computes dw and, when db is not nil, db from x and dy.
	Conv2DBackwardWeights(c Conv2D, x, dy, dw, db Buffer) error

	// Upsample2x repeats each pixel of x (shape d) into a 2×2 block of y.
	Upsample2x(d Dims, x, y Buffer) error
	// Upsample2xBackward sums each 2×2 block of dy into dx (shape d).
	Upsample2xBackward(d Dims, dy, dx Buffer) error
	// MaxPool2 takes the maximum of each 2×2 block of x (shape d, even H and W).
	MaxPool2(d Dims, x, y Buffer) error
	// MaxPool2Backward routes dy to the position of each block's maximum in x
	// (the first one in row-major order on ties), zero elsewhere.
	MaxPool2Backward(d Dims, x, dy, dx Buffer) error
	// PixelShuffle rearranges x (shape d, C = c·r²) into y (N, c, H·r, W·r) as
	// torch.nn.PixelShuffle(r) does.
	PixelShuffle(d Dims, r int, x, y Buffer) error
	// PixelUnshuffle is the inverse of PixelShuffle, and so its backward; d is the
	// shape of the shuffled tensor x (N, c, H·r, W·r).
	PixelUnshuffle(d Dims, r int, x, y Buffer) error

	// BatchNormTrain normalises x with the batch statistics, writes y, saves the
	// batch mean and 1/sqrt(var+eps) for the backward pass and updates the running
	// statistics in place (PyTorch: unbiased variance in the running estimate).
	BatchNormTrain(b BatchNorm, x, gamma, beta, y, saveMean, saveInvStd, runMean, runVar Buffer) error
	// BatchNormInfer normalises x with the running statistics.
	BatchNormInfer(b BatchNorm, x, gamma, beta, runMean, runVar, y Buffer) error
	// BatchNormBackward computes dx, dgamma and dbeta of a training-mode forward.
	BatchNormBackward(b BatchNorm, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta Buffer) error

	// BCEWithLogits writes mean(−t·log σ(x) − (1−t)·log(1−σ(x))) into the
	// one-element loss and its gradient with respect to x into grad (both
	// numerically stable for large |x|).
	BCEWithLogits(x, target, loss, grad Buffer) error
	// MSE writes mean((x − target)²) into loss and its gradient into grad.
	MSE(x, target, loss, grad Buffer) error
	// Hinge writes mean(max(0, 1 − sign·x)) into loss and its gradient into grad;
	// sign is +1 for real logits and −1 for fake ones in the discriminator loss
	// (any other sign is an error).
	Hinge(x Buffer, sign float32, loss, grad Buffer) error

	// AdamUpdate applies one Adam step to param given grad, updating the moment
	// buffers m and v in place.
	AdamUpdate(a Adam, param, grad, m, v Buffer) error
}
