// Package tensor pairs a backend buffer with a shape. A Tensor holds no host
// slice: values move between host and device only through the explicit copies
// FromHost, CopyFromHost and ToHost.
package tensor

import (
	"fmt"
	"math"
	"slices"

	"github.com/hirez-ml/hirez/engine/backend"
)

// Tensor is a float32 array of a given shape living in a backend buffer. Shapes
// are NCHW for images; any rank is allowed (Dense activations are [N, F]).
//
// A Tensor made by New or FromHost owns its buffer and Free releases it. A view
// made by View shares another tensor's buffer and its Free is a no-op.
type Tensor struct {
	b     backend.Backend
	buf   backend.Buffer
	shape []int
	owned bool
}

// Size is the product of shape, or an error for an empty or negative dimension.
func Size(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, fmt.Errorf("tensor: empty shape")
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("tensor: shape %v has a dimension ≤ 0", shape)
		}
		if n > math.MaxInt32/d {
			return 0, fmt.Errorf("tensor: shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// New allocates a zeroed tensor of the given shape on b.
func New(b backend.Backend, shape ...int) (*Tensor, error) {
	// Copy first: the caller's slice then never escapes (errors format the
	// copy), so a variadic call that hits a re-used tensor does not allocate.
	s := append([]int(nil), shape...)
	if b == nil {
		return nil, fmt.Errorf("tensor: nil backend")
	}
	n, err := Size(s)
	if err != nil {
		return nil, err
	}
	buf, err := b.Alloc(n)
	if err != nil {
		return nil, fmt.Errorf("tensor: alloc %v: %w", s, err)
	}
	return &Tensor{b: b, buf: buf, shape: s, owned: true}, nil
}

// FromHost allocates a tensor of the given shape and copies data into it;
// len(data) must equal the shape's size.
func FromHost(b backend.Backend, data []float32, shape ...int) (*Tensor, error) {
	n, err := Size(shape)
	if err != nil {
		return nil, err
	}
	if len(data) != n {
		return nil, fmt.Errorf("tensor: %d host values for shape %v (%d values)", len(data), shape, n)
	}
	t, err := New(b, shape...)
	if err != nil {
		return nil, err
	}
	if err := t.CopyFromHost(data); err != nil {
		t.Free()
		return nil, err
	}
	return t, nil
}

// Wrap makes a tensor around an existing buffer without taking ownership: Free
// on the result does not free buf.
func Wrap(b backend.Backend, buf backend.Buffer, shape ...int) (*Tensor, error) {
	if b == nil || buf == nil {
		return nil, fmt.Errorf("tensor: wrap: nil backend or buffer")
	}
	n, err := Size(shape)
	if err != nil {
		return nil, err
	}
	if buf.Len() != n {
		return nil, fmt.Errorf("tensor: wrap: buffer of %d values for shape %v (%d values)", buf.Len(), shape, n)
	}
	return &Tensor{b: b, buf: buf, shape: append([]int(nil), shape...)}, nil
}

// View returns a tensor of another shape with the same number of elements that
// shares t's buffer. Writes through either are seen by both; the view does not
// own the buffer, so it must not outlive t.
func (t *Tensor) View(shape ...int) (*Tensor, error) {
	if t == nil || t.buf == nil {
		return nil, fmt.Errorf("tensor: view of a nil or freed tensor")
	}
	n, err := Size(shape)
	if err != nil {
		return nil, err
	}
	if n != t.Len() {
		return nil, fmt.Errorf("tensor: cannot view %v (%d values) as %v (%d values)", t.shape, t.Len(), shape, n)
	}
	return &Tensor{b: t.b, buf: t.buf, shape: append([]int(nil), shape...)}, nil
}

// Backend is the backend that holds the buffer.
func (t *Tensor) Backend() backend.Backend { return t.b }

// Buffer is the device buffer; nil after Free.
func (t *Tensor) Buffer() backend.Buffer { return t.buf }

// Shape returns a copy of the shape.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape...) }

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Dim returns dimension i (negative i counts from the end), or 0 if out of range.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	if i < 0 || i >= len(t.shape) {
		return 0
	}
	return t.shape[i]
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// Dims reads the shape as NCHW: missing trailing dimensions are 1 (so [N, F] is
// N×F×1×1 and [C] is C×1×1×1) and dimensions past the fourth fold into W.
func (t *Tensor) Dims() backend.Dims {
	d := [4]int{1, 1, 1, 1}
	for i, s := range t.shape {
		if i < 4 {
			d[i] = s
		} else {
			d[3] *= s
		}
	}
	return backend.Dims{N: d[0], C: d[1], H: d[2], W: d[3]}
}

// HasShape reports whether t's shape equals shape (no allocation).
func (t *Tensor) HasShape(shape ...int) bool { return SameShape(t.shape, shape) }

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool { return slices.Equal(a, b) }

// CopyFromHost uploads len(src) == Len() values into t.
func (t *Tensor) CopyFromHost(src []float32) error {
	if t == nil || t.buf == nil {
		return fmt.Errorf("tensor: copy into a nil or freed tensor")
	}
	if len(src) != t.Len() {
		return fmt.Errorf("tensor: %d host values for shape %v (%d values)", len(src), t.shape, t.Len())
	}
	return t.b.Upload(t.buf, src)
}

// ToHost downloads t into dst, which must hold exactly Len() values.
func (t *Tensor) ToHost(dst []float32) error {
	if t == nil || t.buf == nil {
		return fmt.Errorf("tensor: copy from a nil or freed tensor")
	}
	if len(dst) != t.Len() {
		return fmt.Errorf("tensor: %d host values for shape %v (%d values)", len(dst), t.shape, t.Len())
	}
	return t.b.Download(dst, t.buf)
}

// Host downloads t into a new slice.
func (t *Tensor) Host() ([]float32, error) {
	if t == nil || t.buf == nil {
		return nil, fmt.Errorf("tensor: copy from a nil or freed tensor")
	}
	dst := make([]float32, t.Len())
	if err := t.ToHost(dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// Free releases the buffer if t owns it. Freeing nil or twice is a no-op.
func (t *Tensor) Free() {
	if t == nil || t.buf == nil {
		return
	}
	if t.owned {
		t.b.Free(t.buf)
	}
	t.buf = nil
}

func (t *Tensor) String() string {
	if t == nil {
		return "<nil tensor>"
	}
	return fmt.Sprintf("tensor%v", t.shape)
}

// Ensure makes *t a tensor of shape on b, re-using it when it already is one
// and freeing it when it is not: the scratch buffers of layers and training
// loops, allocated once per shape.
func Ensure(t **Tensor, b backend.Backend, shape ...int) error {
	if *t != nil && (*t).Buffer() != nil && (*t).Backend() == b && (*t).HasShape(shape...) {
		return nil
	}
	(*t).Free()
	*t = nil
	n, err := New(b, shape...)
	if err != nil {
		return err
	}
	*t = n
	return nil
}
