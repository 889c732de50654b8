//go:build cgo

// Package cpu is the engine's oneDNN backend: convolutions, GEMM and eltwise run
// as oneDNN primitives (Debian's libdnnl, the library PyTorch uses on the CPU);
// the memory-bound ops are OpenMP loops in C beside them. It needs cgo; a
// CGO_ENABLED=0 build simply lacks the package.
//
// Design, in short:
//   - Buffers are 64-byte aligned C memory; Go holds only C pointers.
//   - Threads: Debian's libdnnl runs on OpenMP (libgomp). Every call sets the
//     team size to Options.Threads on the calling thread, and one mutex
//     serialises the operations, so there is a single team at a time and OpenMP
//     never runs more threads than cores against Go's scheduler. On a machine this
//     size one op at a time on all cores is also the fastest schedule; concurrency
//     belongs in batching above the backend.
//   - Primitives are created once per op and shape and kept in a map.
//   - Layout: activations written by a convolution stay in NHWC (what oneDNN's
//     brgemm convolutions read and write), tagged with their shape, so a chain of
//     conv → activation → conv does no reorders. Ops that need NCHW convert a
//     tagged buffer in place first; Download always returns NCHW.
//   - Conv weights are reordered once into the primitive's blocked layout and the
//     result is cached on the weight buffer, keyed by a generation counter that
//     every write through this backend bumps.
//   - Options.BF16 makes the inference-only "cpu-bf16" backend: convolutions
//     read bfloat16 activations and weights (weights converted once, cached like
//     the fp32 ones) and accumulate in fp32. A wide conv output (a multiple of 16
//     channels: the intermediates) is kept in bfloat16 NHWC, tagged like the NHWC
//     layout, so the next conv reads it as is and ReLU and upsampling move half
//     the bytes; narrow outputs (3-channel images) stay fp32. Any other op
//     converts a bfloat16 buffer to fp32 first, and Download returns fp32 NCHW.
//     Backward ops, BatchNorm training and Adam refuse to run.
package cpu

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/hirez-ml/hirez/engine/backend"
)

// Options configures a Backend.
type Options struct {
	// Threads is the OpenMP team size for every operation; 0 means one per CPU
	// this process may run on.
	Threads int
	// BF16 selects bfloat16 inference (the backend is then named "cpu-bf16" and
	// refuses training ops). It needs a CPU with native bfloat16 (avx512_bf16 or
	// AMX): oneDNN's emulation elsewhere is slower than fp32.
	BF16 bool
}

// ErrInferenceOnly is wrapped by the error of every training op on a BF16
// backend.
var ErrInferenceOnly = errors.New("cpu-bf16 is an inference-only backend (bfloat16 weights and activations); train with the cpu backend")

// Backend runs the backend operations with oneDNN on the host CPU.
type Backend struct {
	mu      sync.Mutex
	ctx     ctxPtr
	nthr    int
	bf16    bool
	closed  bool
	prims   map[primKey]prim
	bufs    map[*buffer]struct{}
	scratch [3]cmem
}

var _ backend.Backend = (*Backend)(nil)

type cmem struct {
	p     unsafe.Pointer
	bytes int
}

// layout says how a buffer's values are laid out: plain (NCHW, or whatever flat
// order the caller uses) or NHWC for the 4-D shape d; bf16 means the first half
// of the buffer holds the values as bfloat16 (only ever in NHWC).
type layout struct {
	nhwc bool
	d    backend.Dims
	bf16 bool
}

var plain = layout{}

// format is the C side's code for l (HZ_PLAIN/HZ_NHWC | HZ_BF16).
func (l layout) format() int {
	f := fmtPlain
	if l.nhwc {
		f = fmtNHWC
	}
	if l.bf16 {
		f |= fmtBF16
	}
	return f
}

// buffer is C memory of n float32 values.
type buffer struct {
	owner *Backend
	p     unsafe.Pointer // nil once freed
	n     int
	lay   layout
	gen   uint64 // bumped by every write; keys the packed-weight cache
	pk    [2]packed
}

// packed is this buffer's values as weights in the layout a conv primitive wants.
type packed struct {
	prim prim
	gen  uint64
	mem  cmem
}

func (b *buffer) Len() int { return b.n }

// Owner and Live implement backend.Owned.
func (b *buffer) Owner() backend.Backend { return b.owner }
func (b *buffer) Live() bool             { return b.p != nil }

// wrote records a write that left the buffer in layout l.
func (b *buffer) wrote(l layout) {
	b.lay = l
	b.gen++
}

// New creates a backend with its oneDNN engine and stream.
func New(o Options) (*Backend, error) {
	n := o.Threads
	if n < 0 {
		return nil, fmt.Errorf("cpu: %d threads", n)
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	if o.BF16 && !NativeBF16() {
		return nil, errors.New("cpu-bf16: this CPU has no native bfloat16 (avx512_bf16 or AMX); oneDNN would emulate it, slower than fp32: use the cpu backend")
	}
	c, err := ctxCreate(n)
	if err != nil {
		return nil, err
	}
	return &Backend{
		ctx:   c,
		nthr:  n,
		bf16:  o.BF16,
		prims: make(map[primKey]prim),
		bufs:  make(map[*buffer]struct{}),
	}, nil
}

// NativeBF16 reports whether this CPU runs bfloat16 in hardware (avx512_bf16 or
// AMX, as oneDNN sees it), which Options.BF16 needs.
func NativeBF16() bool { return nativeBF16() }

// Name implements backend.Backend: "cpu", or "cpu-bf16" with Options.BF16.
func (b *Backend) Name() string {
	if b.bf16 {
		return "cpu-bf16"
	}
	return "cpu"
}

// Capabilities implements backend.Backend: a host backend.
func (b *Backend) Capabilities() backend.Capabilities { return backend.Capabilities{} }

// rule prefixes the error of a shared argument rule (package backend).
func rule(err error) error {
	if err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	return nil
}

// Threads is the OpenMP team size the backend uses.
func (b *Backend) Threads() int { return b.nthr }

var errClosed = errors.New("cpu: backend is closed")

// Alloc implements backend.Backend.
func (b *Backend) Alloc(n int) (backend.Buffer, error) {
	if err := rule(backend.CheckAlloc(n)); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	p := cAlloc(4 * n)
	if p == nil {
		return nil, fmt.Errorf("cpu: alloc %d values: out of memory", n)
	}
	buf := &buffer{owner: b, p: p, n: n}
	b.bufs[buf] = struct{}{}
	return buf, nil
}

// Free implements backend.Backend.
func (b *Backend) Free(x backend.Buffer) {
	buf, ok := x.(*buffer)
	if !ok || buf == nil || buf.owner != b {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.release(buf)
}

func (b *Backend) release(buf *buffer) {
	if buf.p == nil {
		return
	}
	cFree(buf.p)
	buf.p = nil
	for i := range buf.pk {
		if buf.pk[i].mem.p != nil {
			cFree(buf.pk[i].mem.p)
		}
		buf.pk[i] = packed{}
	}
	delete(b.bufs, buf)
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for buf := range b.bufs {
		b.release(buf)
	}
	for k, p := range b.prims {
		primDestroy(p)
		delete(b.prims, k)
	}
	for i := range b.scratch {
		if b.scratch[i].p != nil {
			cFree(b.scratch[i].p)
		}
		b.scratch[i] = cmem{}
	}
	ctxDestroy(b.ctx)
	b.ctx = nil
	return nil
}

// Sync implements backend.Backend. Operations run to completion before they
// return, so there is never queued work.
func (b *Backend) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	return nil
}

// get resolves a Buffer argument of op to this backend's live buffer holding
// exactly n values (n < 0: any length).
func (b *Backend) get(op, name string, x backend.Buffer, n int) (*buffer, error) {
	return backend.Resolve[*buffer](b, "cpu", op, name, x, n)
}

// lock takes the backend lock and reports a closed backend.
func (b *Backend) lock() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	return nil
}

// scratchMem returns scratch slot i with at least bytes bytes.
func (b *Backend) scratchMem(i, bytes int) (unsafe.Pointer, error) {
	s := &b.scratch[i]
	if s.bytes < bytes {
		if s.p != nil {
			cFree(s.p)
		}
		*s = cmem{}
		p := cAlloc(bytes)
		if p == nil {
			return nil, fmt.Errorf("cpu: scratch of %d bytes: out of memory", bytes)
		}
		*s = cmem{p: p, bytes: bytes}
	}
	return s.p, nil
}

// reorder returns the cached reorder for d between two formats (format codes).
func (b *Backend) reorder(d backend.Dims, from, to int) (prim, error) {
	k := primKey{op: opReorder, d: d, from: from, to: to}
	if p, ok := b.prims[k]; ok {
		return p, nil
	}
	p, err := reorderCreate(b.ctx, d.N, d.C, d.H, d.W, from, to)
	if err != nil {
		return nil, err
	}
	b.prims[k] = p
	return p, nil
}

// reorderTo writes x (in its layout) into dst in layout to; the shape is x's when
// x is NHWC, else to's (d when to is plain).
func (b *Backend) reorderTo(x *buffer, d backend.Dims, to layout, dst unsafe.Pointer) error {
	if to.nhwc {
		d = to.d
	}
	if x.lay.nhwc {
		d = x.lay.d
	}
	p, err := b.reorder(d, x.lay.format(), to.format())
	if err != nil {
		return err
	}
	if err := execPrim(b.ctx, "reorder", p, x.p, dst, nil, nil); err != nil {
		return fmt.Errorf("%w (shape %v)", err, d)
	}
	return nil
}

// setLayout converts x in place to layout l (through scratch slot 2).
func (b *Backend) setLayout(x *buffer, l layout) error {
	if x.lay == l || (!x.lay.nhwc && !l.nhwc) {
		return nil
	}
	if x.lay.nhwc && l.nhwc && x.lay.d != l.d { // NHWC of another shape: through plain
		if err := b.setLayout(x, plain); err != nil {
			return err
		}
	}
	s, err := b.scratchMem(2, 4*x.n)
	if err != nil {
		return err
	}
	if err := b.reorderTo(x, x.lay.d, l, s); err != nil {
		return err
	}
	copy(floats(x.p, x.n), floats(s, x.n))
	x.wrote(l)
	return nil
}

// fp32 converts bfloat16 buffers to fp32 in their NHWC layout, for the ops that
// only run on fp32 values. Nil entries are skipped.
func (b *Backend) fp32(xs ...*buffer) error {
	for _, x := range xs {
		if x != nil && x.lay.bf16 {
			if err := b.setLayout(x, nhwc(x.lay.d)); err != nil {
				return err
			}
		}
	}
	return nil
}

// refuse is the error of a training op on a bfloat16 backend.
func (b *Backend) refuse(op string) error {
	if b.bf16 {
		return fmt.Errorf("cpu: %s: %w", op, ErrInferenceOnly)
	}
	return nil
}

// agree brings the buffers to one layout: their common one when they share it,
// plain otherwise. Nil entries are skipped.
func (b *Backend) agree(xs ...*buffer) (layout, error) {
	var l layout
	first, same := true, true
	if err := b.fp32(xs...); err != nil {
		return plain, err
	}
	for _, x := range xs {
		if x == nil {
			continue
		}
		if first {
			l, first = x.lay, false
		} else if x.lay != l && (x.lay.nhwc || l.nhwc) {
			same = false
		}
	}
	if same {
		return l, nil
	}
	for _, x := range xs {
		if x != nil {
			if err := b.setLayout(x, plain); err != nil {
				return plain, err
			}
		}
	}
	return plain, nil
}

func floats(p unsafe.Pointer, n int) []float32 { return unsafe.Slice((*float32)(p), n) }

// Upload implements backend.Backend.
func (b *Backend) Upload(dst backend.Buffer, src []float32) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	d, err := b.get("upload", "dst", dst, len(src))
	if err != nil {
		return err
	}
	copy(floats(d.p, d.n), src)
	d.wrote(plain)
	return nil
}

// Download implements backend.Backend.
func (b *Backend) Download(dst []float32, src backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	s, err := b.get("download", "src", src, len(dst))
	if err != nil {
		return err
	}
	if !s.lay.nhwc {
		copy(dst, floats(s.p, s.n))
		return nil
	}
	tmp, err := b.scratchMem(2, 4*s.n)
	if err != nil {
		return err
	}
	if err := b.reorderTo(s, s.lay.d, plain, tmp); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	copy(dst, floats(tmp, s.n))
	return nil
}
