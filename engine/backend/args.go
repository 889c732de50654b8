package backend

import "fmt"

// The helpers below resolve the Buffer arguments of an op to a backend's own
// buffer type, with the same checks and the same messages on every backend:
// a backend's get is one call of Resolve.

// Ptr constrains the type parameter P of the helpers below: a backend's buffer
// type, a pointer to E.
type Ptr[E any] interface {
	*E
	Owned
}

// Owned is what a backend's buffer type (a pointer) tells Resolve.
type Owned interface {
	Buffer
	// Owner is the backend that allocated the buffer.
	Owner() Backend
	// Live is false once the buffer is freed.
	Live() bool
}

// Resolve turns argument name of op into owner's own buffer type P: not nil,
// allocated by owner, not freed, and holding exactly n values (n < 0: any
// length). prefix (the backend's name) starts the error.
func Resolve[P Ptr[E], E any](owner Backend, prefix, op, name string, x Buffer, n int) (P, error) {
	buf, ok := x.(P)
	switch {
	case x == nil || (ok && buf == nil):
		return nil, fmt.Errorf("%s: %s: %s is nil", prefix, op, name)
	case !ok || buf.Owner() != owner:
		return nil, fmt.Errorf("%s: %s: %s is not a buffer of this %s backend", prefix, op, name, prefix)
	case !buf.Live():
		return nil, fmt.Errorf("%s: %s: %s was freed", prefix, op, name)
	case n >= 0 && buf.Len() != n:
		return nil, fmt.Errorf("%s: %s: %s has %d values, want %d", prefix, op, name, buf.Len(), n)
	}
	return buf, nil
}

// Arg is one buffer argument for ResolveAll: its name, the value passed and
// the length it must have (< 0: any).
type Arg struct {
	Name string
	X    Buffer
	N    int
}

// ResolveAll resolves args in order into out (as long as args), stopping at
// the first bad one.
func ResolveAll[P Ptr[E], E any](owner Backend, prefix, op string, out []P, args ...Arg) error {
	for i, a := range args {
		buf, err := Resolve[P](owner, prefix, op, a.Name, a.X, a.N)
		if err != nil {
			return err
		}
		out[i] = buf
	}
	return nil
}

// NoAlias reports an output that is the same buffer as an input the contract
// does not let it alias (a nil in never matches).
func NoAlias(prefix, op string, out Buffer, outName string, in Buffer, inName string) error {
	if out == in {
		return fmt.Errorf("%s: %s: %s must not alias %s", prefix, op, outName, inName)
	}
	return nil
}

// convArgs checks c (Conv2D.Validate) for op and resolves the op's three
// buffers that are always given, then opt unless opt.X is nil. args reads
// the lengths from c only once it is valid (OutDims divides by the stride).
func convArgs[P Ptr[E], E any](owner Backend, prefix, op string, c Conv2D, args func() (need [3]Arg, opt Arg)) (out [4]P, err error) {
	if err = c.Validate(); err != nil {
		return out, fmt.Errorf("%s: %s: %w", prefix, op, err)
	}
	need, opt := args()
	if err = ResolveAll(owner, prefix, op, out[:3], need[:]...); err != nil {
		return out, err
	}
	if opt.X != nil {
		out[3], err = Resolve[P](owner, prefix, op, opt.Name, opt.X, opt.N)
	}
	return out, err
}

// ConvForwardArgs checks c (Conv2D.Validate) and resolves Conv2DForward's
// buffers: x, w, bias (nil when not given) and y, which must alias none of them.
func ConvForwardArgs[P Ptr[E], E any](owner Backend, prefix string, c Conv2D, x, w, bias, y Buffer) (xb, wb, bb, yb P, err error) {
	const op = "conv2d forward"
	out, err := convArgs[P](owner, prefix, op, c, func() ([3]Arg, Arg) {
		return [3]Arg{{"x", x, c.In.Size()}, {"w", w, c.WeightLen()}, {"y", y, c.OutDims().Size()}}, Arg{"bias", bias, c.Out}
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	xb, wb, yb, bb = out[0], out[1], out[2], out[3]
	for i, in := range [...]Buffer{xb, wb, bb} {
		if err = NoAlias(prefix, op, yb, "y", in, [...]string{"x", "w", "bias"}[i]); err != nil {
			return
		}
	}
	return xb, wb, bb, yb, nil
}

// ConvBackwardDataArgs checks c and resolves Conv2DBackwardData's buffers: dy,
// w and dx, which must alias neither.
func ConvBackwardDataArgs[P Ptr[E], E any](owner Backend, prefix string, c Conv2D, dy, w, dx Buffer) (dyb, wb, dxb P, err error) {
	const op = "conv2d backward data"
	out, err := convArgs[P](owner, prefix, op, c, func() ([3]Arg, Arg) {
		return [3]Arg{{"dy", dy, c.OutDims().Size()}, {"w", w, c.WeightLen()}, {"dx", dx, c.In.Size()}}, Arg{}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	dyb, wb, dxb = out[0], out[1], out[2]
	if err = NoAlias(prefix, op, dxb, "dx", dyb, "dy"); err != nil {
		return
	}
	if err = NoAlias(prefix, op, dxb, "dx", wb, "w"); err != nil {
		return
	}
	return dyb, wb, dxb, nil
}

// ConvBackwardWeightsArgs checks c and resolves Conv2DBackwardWeights'
// buffers: x, dy, dw and db (nil when not given); neither output may alias an
// input or the other.
func ConvBackwardWeightsArgs[P Ptr[E], E any](owner Backend, prefix string, c Conv2D, x, dy, dw, db Buffer) (xb, dyb, dwb, dbb P, err error) {
	const op = "conv2d backward weights"
	out, err := convArgs[P](owner, prefix, op, c, func() ([3]Arg, Arg) {
		return [3]Arg{{"x", x, c.In.Size()}, {"dy", dy, c.OutDims().Size()}, {"dw", dw, c.WeightLen()}}, Arg{"db", db, c.Out}
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	xb, dyb, dwb, dbb = out[0], out[1], out[2], out[3]
	if dbb != nil {
		if err = NoAlias(prefix, op, dbb, "db", dwb, "dw"); err != nil {
			return
		}
	}
	for _, in := range [...]Buffer{xb, dyb} {
		if err = NoAlias(prefix, op, dwb, "dw", in, "an input"); err != nil {
			return
		}
		if dbb != nil {
			if err = NoAlias(prefix, op, dbb, "db", in, "an input"); err != nil {
				return
			}
		}
	}
	return xb, dyb, dwb, dbb, nil
}

// AdamArgs checks a (Adam.Validate) and resolves AdamUpdate's buffers: param
// of any length, grad, m and v of as many values.
func AdamArgs[P Ptr[E], E any](owner Backend, prefix string, a Adam, param, grad, m, v Buffer) (pb, gb, mb, vb P, err error) {
	const op = "adam update"
	if err = a.Validate(); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("%s: %w", prefix, err)
	}
	if pb, err = Resolve[P](owner, prefix, op, "param", param, -1); err != nil {
		return
	}
	var out [3]P
	n := pb.Len()
	if err = ResolveAll(owner, prefix, op, out[:], Arg{"grad", grad, n}, Arg{"m", m, n}, Arg{"v", v, n}); err != nil {
		return
	}
	return pb, out[0], out[1], out[2], nil
}

// LossArgs resolves the buffers of loss op ("bce with logits", "mse" or
// "hinge"): x of any length, target (unless hinge) and grad of as many values,
// loss of one; neither output may alias an input or the other. For hinge,
// target is ignored and tb is nil.
func LossArgs[P Ptr[E], E any](owner Backend, prefix, op string, x, target, loss, grad Buffer) (xb, tb, lb, gb P, err error) {
	if xb, err = Resolve[P](owner, prefix, op, "x", x, -1); err != nil {
		return
	}
	n := xb.Len()
	if op != "hinge" {
		if tb, err = Resolve[P](owner, prefix, op, "target", target, n); err != nil {
			return
		}
	}
	var out [2]P
	if err = ResolveAll(owner, prefix, op, out[:], Arg{"loss", loss, 1}, Arg{"grad", grad, n}); err != nil {
		return
	}
	lb, gb = out[0], out[1]
	for _, in := range [...]Buffer{xb, tb} {
		if err = NoAlias(prefix, op, lb, "loss", in, "an input"); err != nil {
			return
		}
		if err = NoAlias(prefix, op, gb, "grad", in, "an input"); err != nil {
			return
		}
	}
	if err = NoAlias(prefix, op, lb, "loss", gb, "grad"); err != nil {
		return
	}
	return xb, tb, lb, gb, nil
}
