//go:build cuda || cudaemu

package cuda

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/hirez-ml/hirez/engine/backend"
)

// ptr is a device address.
type ptr uintptr

// driver is what the backend needs from the device: the CUDA driver through cu
// (build tag cuda, driver_cu.go), or the CPU emulation of the same kernels
// (build tag cudaemu, emu.go) that tests this package's Go code and the
// kernels' index arithmetic without a GPU. Calls come in under the backend's
// mutex, on a goroutine locked to its OS thread after bind.
type driver interface {
	bind() error // make the context current on this OS thread
	alloc(bytes int) (ptr, error)
	free(p ptr)
	zero(p ptr, n int) error // n float32 zeros, queued
	upload(dst ptr, src []float32) error
	download(dst []float32, src ptr) error // waits for the queued work
	copy(dst, src ptr, bytes int) error    // queued
	sync() error
	launch(name string, grid, block [2]int, args []uint64) error
	describe() string
	close() error
}

// Options configures a Backend.
type Options struct {
	// Device is the CUDA device ordinal.
	Device int
}

// Backend runs the backend operations on one CUDA device. Every op is checked
// on the host, then queued on the backend's stream; nothing waits for the
// device except Download, Sync, Free and Close.
//
// The driver binds a context to an OS thread, and Go moves goroutines between
// threads, so every call locks its goroutine to its thread, makes the context
// current there and holds the backend's mutex while it queues its work (one
// stream: the order of calls is the order of execution).
type Backend struct {
	mu      sync.Mutex
	drv     driver
	bufs    map[*buffer]struct{}
	scratch scratch
	closed  bool
}

var _ backend.Backend = (*Backend)(nil)

// buffer is n float32 values of device memory.
type buffer struct {
	owner *Backend
	p     ptr // 0 once freed
	n     int
}

func (b *buffer) Len() int { return b.n }

// Owner and Live implement backend.Owned.
func (b *buffer) Owner() backend.Backend { return b.owner }
func (b *buffer) Live() bool             { return b.p != 0 }

// at is the device address of element i.
func (b *buffer) at(i int) ptr { return b.p + ptr(4*i) }

// scratch is device memory the convolutions reuse (im2col columns). All work
// is on one stream, so a later op may reuse it as soon as it is queued.
type scratch struct {
	p     ptr
	elems int
}

var errClosed = errors.New("cuda: backend is closed")

// New creates a backend on device o.Device: with the build tag cuda it
// retains the device's primary context, creates a non-blocking stream and
// loads the embedded kernels; with cudaemu it runs the kernels on the CPU.
func New(o Options) (*Backend, error) {
	d, err := newDriver(o)
	if err != nil {
		return nil, err
	}
	return &Backend{drv: d, bufs: make(map[*buffer]struct{})}, nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cuda" }

// Capabilities implements backend.Backend: buffers in device memory.
func (b *Backend) Capabilities() backend.Capabilities {
	return backend.Capabilities{DeviceMemory: true}
}

// rule prefixes the error of a shared argument rule (package backend).
func rule(err error) error {
	if err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	return nil
}

// Device describes the GPU: its name, ordinal, compute capability and driver.
func (b *Backend) Device() string { return b.drv.describe() }

// enter takes the backend for one call: mutex, OS thread, context.
func (b *Backend) enter() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	runtime.LockOSThread()
	if err := b.drv.bind(); err != nil {
		runtime.UnlockOSThread()
		b.mu.Unlock()
		return fmt.Errorf("cuda: set context: %w", err)
	}
	return nil
}

func (b *Backend) leave() {
	runtime.UnlockOSThread()
	b.mu.Unlock()
}

// Alloc implements backend.Backend. The buffer is zeroed on the stream.
func (b *Backend) Alloc(n int) (backend.Buffer, error) {
	if err := rule(backend.CheckAlloc(n)); err != nil {
		return nil, err
	}
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	p, err := b.drv.alloc(4 * n)
	if err != nil {
		return nil, fmt.Errorf("cuda: alloc %d values: %w", n, err)
	}
	if err := b.drv.zero(p, n); err != nil {
		b.drv.free(p)
		return nil, fmt.Errorf("cuda: alloc %d values: zero: %w", n, err)
	}
	buf := &buffer{owner: b, p: p, n: n}
	b.bufs[buf] = struct{}{}
	return buf, nil
}

// Free implements backend.Backend. It waits for the stream first, so that no
// queued kernel still uses the memory when the driver takes it back.
func (b *Backend) Free(x backend.Buffer) {
	buf, ok := x.(*buffer)
	if !ok || buf == nil || buf.owner != b {
		return
	}
	if b.enter() != nil {
		return
	}
	defer b.leave()
	b.release(buf)
}

func (b *Backend) release(buf *buffer) {
	if buf.p == 0 {
		return
	}
	b.drv.sync() // a failure here surfaces again at the next Sync
	b.drv.free(buf.p)
	buf.p = 0
	delete(b.bufs, buf)
}

// Sync implements backend.Backend.
func (b *Backend) Sync() error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	if err := b.drv.sync(); err != nil {
		return fmt.Errorf("cuda: queued work failed: %w", err)
	}
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	if err := b.enter(); err != nil {
		if errors.Is(err, errClosed) {
			return nil
		}
		return err
	}
	defer b.leave()
	err := b.drv.sync()
	for buf := range b.bufs {
		b.release(buf)
	}
	if b.scratch.p != 0 {
		b.drv.free(b.scratch.p)
		b.scratch = scratch{}
	}
	if cerr := b.drv.close(); err == nil {
		err = cerr
	}
	b.closed = true
	if err != nil {
		return fmt.Errorf("cuda: close: queued work failed: %w", err)
	}
	return nil
}

// get resolves a Buffer argument of op to a live buffer of this backend holding
// exactly n values (n < 0: any length).
func (b *Backend) get(op, name string, x backend.Buffer, n int) (*buffer, error) {
	return backend.Resolve[*buffer](b, "cuda", op, name, x, n)
}

// noAlias reports an output that is the same buffer as an input the contract
// does not let it alias.
func noAlias(op string, out *buffer, outName string, in *buffer, inName string) error {
	return backend.NoAlias("cuda", op, out, outName, in, inName)
}

// Upload implements backend.Backend. From pageable memory the driver stages
// the values before it returns, so src may be reused at once.
func (b *Backend) Upload(dst backend.Buffer, src []float32) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	d, err := b.get("upload", "dst", dst, len(src))
	if err != nil {
		return err
	}
	if err := b.drv.upload(d.p, src); err != nil {
		return fmt.Errorf("cuda: upload: %w", err)
	}
	return nil
}

// Download implements backend.Backend: it queues the copy after every op
// already queued and waits for the stream.
func (b *Backend) Download(dst []float32, src backend.Buffer) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	s, err := b.get("download", "src", src, len(dst))
	if err != nil {
		return err
	}
	if err := b.drv.download(dst, s.p); err != nil {
		return fmt.Errorf("cuda: download: %w", err)
	}
	return nil
}

// scratchFor returns scratch memory of at least n values, growing it (which
// waits for the stream, like Free) when it is too small.
func (b *Backend) scratchFor(op string, n int) (ptr, error) {
	if n > backend.MaxElements {
		return 0, fmt.Errorf("cuda: %s: %d values of scratch (at most %d)", op, n, backend.MaxElements)
	}
	if b.scratch.elems >= n {
		return b.scratch.p, nil
	}
	if b.scratch.p != 0 {
		b.drv.sync()
		b.drv.free(b.scratch.p)
		b.scratch = scratch{}
	}
	p, err := b.drv.alloc(4 * n)
	if err != nil {
		return 0, fmt.Errorf("cuda: %s: scratch of %d values: %w", op, n, err)
	}
	b.scratch = scratch{p: p, elems: n}
	return p, nil
}

// Kernel parameters. cu's Function.Launch copies 8 bytes from each parameter
// pointer, so every argument is held in a uint64: device pointers and sizes
// (the kernels declare them long long), float32 bits in the low word (the
// kernels declare float; the driver reads 4 bytes, little-endian) and float64
// bits (double).
func dev(p ptr) uint64     { return uint64(p) }
func i64(v int) uint64     { return uint64(int64(v)) }
func f32(v float32) uint64 { return uint64(math.Float32bits(v)) }
func f64(v float64) uint64 { return math.Float64bits(v) }

// launch queues kernel name on the stream with a 1-D or 2-D grid.
func (b *Backend) launch(op, name string, grid, block [2]int, args ...uint64) error {
	if err := b.drv.launch(name, grid, block, args); err != nil {
		return fmt.Errorf("cuda: %s: launch %s: %w", op, name, err)
	}
	return nil
}

// threads is the block size of elementwise kernels (HZ_THREADS), reduceThreads
// that of the one-block-per-sum kernels (HZ_RED, a power of two).
const (
	threads       = 256
	reduceThreads = 1024
)

// each queues an elementwise kernel over n elements.
func (b *Backend) each(op, name string, n int, args ...uint64) error {
	return b.launch(op, name, [2]int{(n + threads - 1) / threads, 1}, [2]int{threads, 1}, args...)
}

// reduce queues a kernel of blocks blocks of reduceThreads threads.
func (b *Backend) reduce(op, name string, blocks int, args ...uint64) error {
	return b.launch(op, name, [2]int{blocks, 1}, [2]int{reduceThreads, 1}, args...)
}

// kernelNames are the kernels the ops launch; New fails if one is missing.
var kernelNames = []string{
	"hz_fill", "hz_axpby", "hz_mul", "hz_clamp", "hz_activate", "hz_activate_backward", "hz_add_bias",
	"hz_sum", "hz_bias_grad", "hz_sgemm", "hz_im2col", "hz_col2im",
	"hz_upsample2x", "hz_upsample2x_backward", "hz_maxpool2", "hz_maxpool2_backward", "hz_pixel_shuffle",
	"hz_batchnorm_train", "hz_batchnorm_infer", "hz_batchnorm_backward", "hz_loss", "hz_adam",
}
