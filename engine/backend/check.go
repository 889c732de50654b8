package backend

import (
	"errors"
	"fmt"
)

// ErrNotImplemented is wrapped (with the backend's and the op's name, see
// NotImplemented) by the error of an op a backend does not run, or not for
// these arguments: a new backend can land op by op, and the conformance suite
// (package backendtest) reports such an op as skipped, never as passed.
var ErrNotImplemented = errors.New("not implemented")

// NotImplemented is the error of op on a backend that does not run it, e.g.
// "cuda: maxpool2: not implemented".
func NotImplemented(backendName, op string) error {
	return fmt.Errorf("%s: %s: %w", backendName, op, ErrNotImplemented)
}

// Capabilities are what callers may ask of a backend beyond the ops every
// backend runs. Each field is there because something asks for it; ask this
// rather than testing Name.
type Capabilities struct {
	// DeviceMemory: buffers live in an accelerator's own memory and ops are
	// queued on it (a GPU), so a batch of any size keeps it busy and one small
	// batch leaves it idle. Host backends (ref, cpu) run an op to completion on
	// the calling thread's CPUs, where large batches leave the caches.
	DeviceMemory bool
}

// The argument rules below are the one place each op's arguments are checked:
// every backend calls them before it touches memory or hands anything to C or
// a kernel, and prefixes their errors with its name, so that the same bad
// argument reads the same on every backend. Each error starts with the op.

// CheckAlloc reports a buffer length Alloc cannot make.
func CheckAlloc(n int) error {
	if n <= 0 || n > MaxElements {
		return fmt.Errorf("alloc of %d values (1 to %d)", n, MaxElements)
	}
	return nil
}

// CheckDims reports a shape op cannot take (Dims.Check).
func CheckDims(op string, d Dims) error {
	if err := d.Check(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// CheckActivation reports an activation op does not know.
func CheckActivation(op string, f Activation) error {
	switch f {
	case Identity, ReLU, LeakyReLU, Tanh, Sigmoid:
		return nil
	}
	return fmt.Errorf("%s: unknown activation %v", op, f)
}

// CheckClamp reports bounds Clamp cannot take (lo > hi, or a NaN).
func CheckClamp(lo, hi float32) error {
	if !(lo <= hi) {
		return fmt.Errorf("clamp: lo %v > hi %v", lo, hi)
	}
	return nil
}

// CheckUpsample2x reports a shape d (the small side) that Upsample2x or its
// backward (op) cannot take: Dims.Check, and the upsampled tensor's 4·d.Size()
// values within MaxElements.
func CheckUpsample2x(op string, d Dims) error {
	if err := CheckDims(op, d); err != nil {
		return err
	}
	if 4*float64(d.Size()) > MaxElements {
		return fmt.Errorf("%s: shape %v: the upsampled tensor has more than %d values", op, d, MaxElements)
	}
	return nil
}

// CheckMaxPool2 reports a shape MaxPool2 or its backward (op) cannot take:
// Dims.Check, and even height and width.
func CheckMaxPool2(op string, d Dims) error {
	if err := CheckDims(op, d); err != nil {
		return err
	}
	if d.H%2 != 0 || d.W%2 != 0 {
		return fmt.Errorf("%s: shape %v needs even height and width", op, d)
	}
	return nil
}

// CheckPixelShuffle reports a shape d (the deep tensor) and factor r that
// PixelShuffle cannot take: the channels must divide by r².
func CheckPixelShuffle(d Dims, r int) error {
	const op = "pixel shuffle"
	if err := CheckDims(op, d); err != nil {
		return err
	}
	if r < 1 || d.C%(r*r) != 0 {
		return fmt.Errorf("%s: factor %d for shape %v (channels must divide by r²)", op, r, d)
	}
	return nil
}

// CheckPixelUnshuffle reports a shape d (the wide tensor) and factor r that
// PixelUnshuffle cannot take: height and width must divide by r.
func CheckPixelUnshuffle(d Dims, r int) error {
	const op = "pixel unshuffle"
	if err := CheckDims(op, d); err != nil {
		return err
	}
	if r < 1 || d.H%r != 0 || d.W%r != 0 {
		return fmt.Errorf("%s: factor %d for shape %v (height and width must divide by r)", op, r, d)
	}
	return nil
}

// Validate reports a batch norm op cannot take: Dims.Check and epsilon > 0;
// for training ("batchnorm train") also a momentum in [0, 1] and at least two
// values per channel.
func (b BatchNorm) Validate(op string, train bool) error {
	if err := CheckDims(op, b.Dims); err != nil {
		return err
	}
	if !(b.Epsilon > 0) {
		return fmt.Errorf("%s: epsilon %v", op, b.Epsilon)
	}
	if !train {
		return nil
	}
	if !(b.Momentum >= 0 && b.Momentum <= 1) {
		return fmt.Errorf("%s: momentum %v", op, b.Momentum)
	}
	if d := b.Dims; d.N*d.H*d.W < 2 {
		return fmt.Errorf("%s: shape %v has one value per channel", op, d)
	}
	return nil
}

// CheckHinge reports a Hinge sign other than ±1.
func CheckHinge(sign float32) error {
	if sign != 1 && sign != -1 {
		return fmt.Errorf("hinge: sign %v, want +1 or −1", sign)
	}
	return nil
}

// Validate reports an Adam step no backend can take.
func (a Adam) Validate() error {
	const op = "adam update"
	switch {
	case a.Step < 1:
		return fmt.Errorf("%s: step %d, want ≥ 1", op, a.Step)
	case !(a.LR >= 0), !(a.Beta1 >= 0 && a.Beta1 < 1), !(a.Beta2 >= 0 && a.Beta2 < 1), !(a.Epsilon >= 0):
		return fmt.Errorf("%s: bad hyper-parameters %+v", op, a)
	}
	return nil
}
