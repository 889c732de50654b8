package layer

import (
	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/tensor"
)

// Bounds of a shelf. A served upscaler alternates between a few shapes (one
// per input side it is asked for, times the batch sizes its batcher forms);
// every change used to free the layer's output and allocate a new one, and a
// fresh allocation is zeroed and page-faulted in: half of an upscaler's CPU
// under load went there (docs/serving.md). Sixteen shapes cover what the
// upscaler's pixel-capped batches make of the sides 32, 64 and 128 (batches of
// 1–8, 1–2 and 1: eleven shapes) and a generator's batch sizes 1–8. The value
// bound (32 MiB of idle buffers per layer) keeps a large training batch from
// being held twice. It holds srcnn-classic's largest layer (64 channels at the
// output side) at one batch size per side (4 + 16 MiB at 128² and 256²), not at
// every batch size: all eleven shapes would need ≈ 64 MiB, so under mixed batch
// sizes that layer still reallocates now and then — a trade against RSS.
const (
	shelfShapes = 16
	shelfValues = 8 << 20 // float32 values, 32 MiB
)

// shelf keeps a layer's output buffers of the shapes it ran at recently, so
// that switching between shapes re-uses them instead of allocating. The zero
// value is an empty shelf.
type shelf struct {
	ts []*tensor.Tensor // most recently put first
	n  int              // values held
}

// ensure makes *t a tensor of shape on b, like tensor.Ensure, but
// puts the tensor it replaces on the shelf and takes the new one from it when
// the shelf has that shape.
func (s *shelf) ensure(t **tensor.Tensor, b backend.Backend, shape ...int) error {
	cur := *t
	if cur != nil && cur.Buffer() != nil && cur.Backend() == b && cur.HasShape(shape...) {
		return nil
	}
	*t = nil
	if cur != nil && cur.Buffer() != nil {
		s.put(cur)
	}
	if got := s.take(b, shape); got != nil {
		*t = got
		return nil
	}
	n, err := tensor.New(b, shape...)
	if err != nil {
		return err
	}
	*t = n
	return nil
}

// put shelves t, then frees the least recently shelved tensors beyond the
// bounds (t itself too when it alone is larger than the value bound).
func (s *shelf) put(t *tensor.Tensor) {
	s.ts = append(s.ts, nil)
	copy(s.ts[1:], s.ts)
	s.ts[0] = t
	s.n += t.Len()
	for len(s.ts) > 0 && (len(s.ts) > shelfShapes || s.n > shelfValues) {
		last := s.ts[len(s.ts)-1]
		s.ts[len(s.ts)-1] = nil
		s.ts = s.ts[:len(s.ts)-1]
		s.n -= last.Len()
		last.Free()
	}
}

// take removes and returns the shelved tensor of shape on b, or nil.
func (s *shelf) take(b backend.Backend, shape []int) *tensor.Tensor {
	for i, t := range s.ts {
		if t.Backend() == b && t.HasShape(shape...) {
			copy(s.ts[i:], s.ts[i+1:])
			s.ts[len(s.ts)-1] = nil
			s.ts = s.ts[:len(s.ts)-1]
			s.n -= t.Len()
			return t
		}
	}
	return nil
}

// free releases every shelved tensor.
func (s *shelf) free() {
	for _, t := range s.ts {
		t.Free()
	}
	s.ts, s.n = nil, 0
}
