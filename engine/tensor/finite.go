package tensor

import (
	"fmt"
	"math"
)

// NonFiniteError reports a NaN or ±Inf found in a tensor.
type NonFiniteError struct {
	Shape []int
	Index int     // first offending element (row-major), −1 if the sum overflowed but no element is non-finite
	Value float32 // its value
}

func (e *NonFiniteError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("sum of tensor%v overflows float32", e.Shape)
	}
	return fmt.Sprintf("non-finite value %v at index %d of tensor%v", e.Value, e.Index, e.Shape)
}

// CheckFinite returns a *NonFiniteError when t holds a NaN or ±Inf.
//
// It is cheap enough to run after every layer: t is summed on the device and one
// value comes back. An IEEE sum is finite only when every term is (NaN and Inf
// propagate through additions), so a finite sum proves t finite; only a
// non-finite sum downloads the whole tensor to name the first culprit. scratch
// is a one-element tensor on t's backend that is overwritten, or nil to allocate
// a temporary one.
func CheckFinite(t, scratch *Tensor) error {
	if t == nil || t.buf == nil {
		return fmt.Errorf("tensor: check of a nil or freed tensor")
	}
	if scratch == nil {
		s, err := New(t.b, 1)
		if err != nil {
			return err
		}
		defer s.Free()
		scratch = s
	}
	if scratch.buf == nil || scratch.Len() != 1 {
		return fmt.Errorf("tensor: check needs a one-element scratch tensor, got %v", scratch)
	}
	if err := t.b.Sum(t.buf, scratch.buf); err != nil {
		return err
	}
	var s [1]float32
	if err := t.b.Download(s[:], scratch.buf); err != nil {
		return err
	}
	if !math.IsNaN(float64(s[0])) && !math.IsInf(float64(s[0]), 0) {
		return nil
	}
	host, err := t.Host()
	if err != nil {
		return err
	}
	for i, v := range host {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return &NonFiniteError{Shape: t.Shape(), Index: i, Value: v}
		}
	}
	// Every value is finite and the sum overflowed: huge activations are a
	// divergence just the same.
	return &NonFiniteError{Shape: t.Shape(), Index: -1}
}
