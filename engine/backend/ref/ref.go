// Package ref is the reference backend: plain Go loops that a reader can check
// by eye, single-threaded, built without cgo. Every other backend is tested
// against it (see package backendtest), so clarity wins over speed here; sums
// are accumulated in float64 to make it a tight oracle.
//
// Every argument is validated and a bad one is an error, never a panic: nil
// buffers, buffers of another backend or already freed, lengths that do not
// match the shapes, empty shapes, and outputs that alias inputs where the
// contract forbids it. NaN and ±Inf in inputs propagate as IEEE arithmetic does.
package ref

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hirez-ml/hirez/engine/backend"
)

// Backend is the reference backend. The zero value is not usable; call New.
type Backend struct {
	closed atomic.Bool

	mu      sync.Mutex
	scratch [][]float32 // free im2col buffers, re-used so steady state does not allocate
}

var _ backend.Backend = (*Backend)(nil)

// New returns a reference backend.
func New() *Backend { return &Backend{} }

// buffer is a host slice behind the backend.Buffer interface.
type buffer struct {
	owner *Backend
	data  []float32 // nil once freed
	n     int
}

func (b *buffer) Len() int { return b.n }

// Owner and Live implement backend.Owned.
func (b *buffer) Owner() backend.Backend { return b.owner }
func (b *buffer) Live() bool             { return b.data != nil }

// Name implements backend.Backend.
func (r *Backend) Name() string { return "ref" }

// Capabilities implements backend.Backend: a host backend.
func (r *Backend) Capabilities() backend.Capabilities { return backend.Capabilities{} }

// rule prefixes the error of a shared argument rule (package backend).
func rule(err error) error {
	if err != nil {
		return fmt.Errorf("ref: %w", err)
	}
	return nil
}

// Alloc implements backend.Backend.
func (r *Backend) Alloc(n int) (backend.Buffer, error) {
	if r.closed.Load() {
		return nil, fmt.Errorf("ref: alloc on a closed backend")
	}
	if err := rule(backend.CheckAlloc(n)); err != nil {
		return nil, err
	}
	return &buffer{owner: r, data: make([]float32, n), n: n}, nil
}

// Free implements backend.Backend.
func (r *Backend) Free(b backend.Buffer) {
	if rb, ok := b.(*buffer); ok && rb != nil && rb.owner == r {
		rb.data = nil
	}
}

// Sync implements backend.Backend; ref runs every op at once.
func (r *Backend) Sync() error {
	if r.closed.Load() {
		return fmt.Errorf("ref: sync on a closed backend")
	}
	return nil
}

// Close implements backend.Backend.
func (r *Backend) Close() error {
	r.closed.Store(true)
	r.mu.Lock()
	r.scratch = nil
	r.mu.Unlock()
	return nil
}

// get checks that b is a live buffer of this backend holding n values (any
// length when n < 0) and returns its values. what names the argument in errors.
func (r *Backend) get(op, what string, b backend.Buffer, n int) ([]float32, error) {
	rb, err := backend.Resolve[*buffer](r, "ref", op, what, b, n)
	if err != nil {
		return nil, err
	}
	if r.closed.Load() {
		return nil, fmt.Errorf("ref: %s: backend is closed", op)
	}
	return rb.data, nil
}

// noAlias reports an error when an output shares memory with an input the
// contract does not let it alias.
func noAlias(op string, out []float32, outName string, in []float32, inName string) error {
	if len(out) > 0 && len(in) > 0 && &out[0] == &in[0] {
		return fmt.Errorf("ref: %s: %s must not alias %s", op, outName, inName)
	}
	return nil
}

// Upload implements backend.Backend.
func (r *Backend) Upload(dst backend.Buffer, src []float32) error {
	d, err := r.get("upload", "dst", dst, len(src))
	if err != nil {
		return err
	}
	copy(d, src)
	return nil
}

// Download implements backend.Backend.
func (r *Backend) Download(dst []float32, src backend.Buffer) error {
	s, err := r.get("download", "src", src, len(dst))
	if err != nil {
		return err
	}
	copy(dst, s)
	return nil
}

// Fill implements backend.Backend.
func (r *Backend) Fill(x backend.Buffer, v float32) error {
	xs, err := r.get("fill", "x", x, -1)
	if err != nil {
		return err
	}
	for i := range xs {
		xs[i] = v
	}
	return nil
}

// Copy implements backend.Backend.
func (r *Backend) Copy(dst, src backend.Buffer) error {
	s, err := r.get("copy", "src", src, -1)
	if err != nil {
		return err
	}
	d, err := r.get("copy", "dst", dst, len(s))
	if err != nil {
		return err
	}
	copy(d, s)
	return nil
}

// Axpby implements backend.Backend.
func (r *Backend) Axpby(alpha float32, x backend.Buffer, beta float32, y backend.Buffer) error {
	xs, err := r.get("axpby", "x", x, -1)
	if err != nil {
		return err
	}
	ys, err := r.get("axpby", "y", y, len(xs))
	if err != nil {
		return err
	}
	for i := range ys {
		if beta == 0 {
			ys[i] = alpha * xs[i]
		} else {
			ys[i] = alpha*xs[i] + beta*ys[i]
		}
	}
	return nil
}

// Mul implements backend.Backend.
func (r *Backend) Mul(x, y, out backend.Buffer) error {
	xs, err := r.get("mul", "x", x, -1)
	if err != nil {
		return err
	}
	ys, err := r.get("mul", "y", y, len(xs))
	if err != nil {
		return err
	}
	os, err := r.get("mul", "out", out, len(xs))
	if err != nil {
		return err
	}
	for i := range os {
		os[i] = xs[i] * ys[i]
	}
	return nil
}

// Clamp implements backend.Backend. NaN stays NaN.
func (r *Backend) Clamp(x, y backend.Buffer, lo, hi float32) error {
	if err := rule(backend.CheckClamp(lo, hi)); err != nil {
		return err
	}
	xs, err := r.get("clamp", "x", x, -1)
	if err != nil {
		return err
	}
	ys, err := r.get("clamp", "y", y, len(xs))
	if err != nil {
		return err
	}
	for i, v := range xs {
		switch {
		case v < lo:
			v = lo
		case v > hi:
			v = hi
		}
		ys[i] = v
	}
	return nil
}

// Sum implements backend.Backend. A NaN or ±Inf anywhere makes the sum
// non-finite (package tensor's CheckFinite relies on it).
func (r *Backend) Sum(x, out backend.Buffer) error {
	xs, err := r.get("sum", "x", x, -1)
	if err != nil {
		return err
	}
	os, err := r.get("sum", "out", out, 1)
	if err != nil {
		return err
	}
	if err := noAlias("sum", os, "out", xs, "x"); err != nil {
		return err
	}
	var s float64
	for _, v := range xs {
		s += float64(v)
	}
	os[0] = float32(s)
	return nil
}
