//go:build cuda

package cuda

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/hirez-ml/hirez/engine/backend"
)

// ptx holds the compiled kernels, one module per .cu file, loaded once per
// backend (context).
//
//go:embed kernels/*.ptx
var ptx embed.FS

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
	dev     cu.Device
	ctx     cu.CUContext
	stream  cu.Stream
	mods    []cu.Module
	fns     map[string]cu.Function
	bufs    map[*buffer]struct{}
	scratch scratch
	closed  bool
	desc    string
}

var _ backend.Backend = (*Backend)(nil)

// buffer is n float32 values of device memory.
type buffer struct {
	owner *Backend
	p     cu.DevicePtr // 0 once freed
	n     int
}

func (b *buffer) Len() int { return b.n }

// at is the device address of element i.
func (b *buffer) at(i int) cu.DevicePtr { return b.p + cu.DevicePtr(4*i) }

// scratch is device memory the convolutions reuse (im2col columns). All work
// is on one stream, so a later op may reuse it as soon as it is queued.
type scratch struct {
	p     cu.DevicePtr
	elems int
}

var errClosed = errors.New("cuda: backend is closed")

// ErrNotImplemented is wrapped by the error of every op this backend does not
// run yet.
var ErrNotImplemented = errors.New("not implemented on the cuda backend yet")

// DeviceCount is the number of CUDA devices the driver sees.
func DeviceCount() (int, error) { return cu.NumDevices() }

// New creates a backend on device o.Device: it retains the device's primary
// context, creates a non-blocking stream and loads the embedded kernels.
func New(o Options) (*Backend, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: count devices: %w", err)
	}
	if n == 0 {
		return nil, errors.New("cuda: no CUDA device found")
	}
	if o.Device < 0 || o.Device >= n {
		return nil, fmt.Errorf("cuda: device %d of %d", o.Device, n)
	}
	dev, err := cu.GetDevice(o.Device)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", o.Device, err)
	}
	b := &Backend{dev: dev, fns: make(map[string]cu.Function), bufs: make(map[*buffer]struct{})}
	if b.ctx, err = dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: device %d: retain primary context: %w", o.Device, err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.init(); err != nil {
		b.teardown()
		return nil, err
	}
	name, _ := dev.Name()
	major, minor, _ := dev.ComputeCapability()
	b.desc = fmt.Sprintf("%s (device %d, sm_%d%d, driver %d)", name, o.Device, major, minor, cu.Version())
	return b, nil
}

// init runs on a locked thread: stream and kernels.
func (b *Backend) init() error {
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return fmt.Errorf("cuda: set context: %w", err)
	}
	var err error
	if b.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return fmt.Errorf("cuda: create stream: %w", err)
	}
	files, err := fs.Glob(ptx, "kernels/*.ptx")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		src, err := ptx.ReadFile(f)
		if err != nil {
			return err
		}
		m, err := cu.LoadData(string(src))
		if err != nil {
			return fmt.Errorf("cuda: load %s (PTX for compute_80; is the device older than sm_80?): %w", f, err)
		}
		b.mods = append(b.mods, m)
		for _, name := range entries(string(src)) {
			fn, err := m.Function(name)
			if err != nil {
				return fmt.Errorf("cuda: %s: kernel %s: %w", f, name, err)
			}
			b.fns[name] = fn
		}
	}
	for _, name := range kernelNames {
		if _, ok := b.fns[name]; !ok {
			return fmt.Errorf("cuda: kernel %s is missing from the embedded PTX (run make ptx)", name)
		}
	}
	return nil
}

// entries lists the kernels (.entry directives) of a PTX module.
func entries(src string) []string {
	var names []string
	for _, line := range strings.Split(src, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), ".visible .entry "); ok {
			name, _, _ := strings.Cut(rest, "(")
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cuda" }

// Device describes the GPU: its name, ordinal, compute capability and driver.
func (b *Backend) Device() string { return b.desc }

// enter takes the backend for one call: mutex, OS thread, context.
func (b *Backend) enter() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
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
	if n <= 0 || n > backend.MaxElements {
		return nil, fmt.Errorf("cuda: alloc of %d values (1 to %d)", n, backend.MaxElements)
	}
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	p, err := cu.MemAlloc(int64(4 * n))
	if err != nil {
		return nil, fmt.Errorf("cuda: alloc %d values: %w", n, err)
	}
	if err := cu.MemsetD32Async(p, 0, int64(n), b.stream); err != nil {
		cu.MemFree(p)
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
	b.stream.Synchronize() // a failure here surfaces again at the next Sync
	cu.MemFree(buf.p)
	buf.p = 0
	delete(b.bufs, buf)
}

// Sync implements backend.Backend.
func (b *Backend) Sync() error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	if err := b.stream.Synchronize(); err != nil {
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
	err := b.stream.Synchronize()
	for buf := range b.bufs {
		b.release(buf)
	}
	b.teardown()
	b.closed = true
	if err != nil {
		return fmt.Errorf("cuda: close: queued work failed: %w", err)
	}
	return nil
}

// teardown releases the scratch, modules, stream and context (on a thread
// where the context is current).
func (b *Backend) teardown() {
	if b.scratch.p != 0 {
		cu.MemFree(b.scratch.p)
		b.scratch = scratch{}
	}
	for _, m := range b.mods {
		m.Unload()
	}
	b.mods = nil
	if b.stream != (cu.Stream{}) {
		b.stream.Destroy()
	}
	b.dev.ReleasePrimaryCtx()
}

// get resolves a Buffer argument of op to a live buffer of this backend holding
// exactly n values (n < 0: any length).
func (b *Backend) get(op, name string, x backend.Buffer, n int) (*buffer, error) {
	buf, ok := x.(*buffer)
	switch {
	case x == nil || (ok && buf == nil):
		return nil, fmt.Errorf("cuda: %s: %s is nil", op, name)
	case !ok || buf.owner != b:
		return nil, fmt.Errorf("cuda: %s: %s is not a buffer of this cuda backend", op, name)
	case buf.p == 0:
		return nil, fmt.Errorf("cuda: %s: %s was freed", op, name)
	case n >= 0 && buf.n != n:
		return nil, fmt.Errorf("cuda: %s: %s has %d values, want %d", op, name, buf.n, n)
	}
	return buf, nil
}

// noAlias reports an output that is the same buffer as an input the contract
// does not let it alias.
func noAlias(op string, out *buffer, outName string, in *buffer, inName string) error {
	if out == in {
		return fmt.Errorf("cuda: %s: %s must not alias %s", op, outName, inName)
	}
	return nil
}

// checkDims reports a shape no op can take, and one whose count (times
// factor: 4 for the upsampled output) exceeds backend.MaxElements, so every
// index a kernel computes fits 32 bits.
func checkDims(op string, d backend.Dims, factor int) error {
	if err := d.Check(); err != nil {
		return fmt.Errorf("cuda: %s: %w", op, err)
	}
	if float64(d.Size())*float64(factor) > backend.MaxElements {
		return fmt.Errorf("cuda: %s: shape %v: more than %d values", op, d, backend.MaxElements)
	}
	return nil
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
	if err := cu.MemcpyHtoDAsync(d.p, unsafe.Pointer(unsafe.SliceData(src)), int64(4*len(src)), b.stream); err != nil {
		return fmt.Errorf("cuda: upload: %w", err)
	}
	runtime.KeepAlive(src)
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
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(unsafe.SliceData(dst)), s.p, int64(4*len(dst)), b.stream); err != nil {
		return fmt.Errorf("cuda: download: %w", err)
	}
	if err := b.stream.Synchronize(); err != nil {
		return fmt.Errorf("cuda: download: queued work failed: %w", err)
	}
	runtime.KeepAlive(dst)
	return nil
}

// scratchFor returns scratch memory of at least n values, growing it (which
// waits for the stream, like Free) when it is too small.
func (b *Backend) scratchFor(op string, n int) (cu.DevicePtr, error) {
	if n > backend.MaxElements {
		return 0, fmt.Errorf("cuda: %s: %d values of scratch (at most %d)", op, n, backend.MaxElements)
	}
	if b.scratch.elems >= n {
		return b.scratch.p, nil
	}
	if b.scratch.p != 0 {
		b.stream.Synchronize()
		cu.MemFree(b.scratch.p)
		b.scratch = scratch{}
	}
	p, err := cu.MemAlloc(int64(4 * n))
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
func dev(p cu.DevicePtr) uint64 { return uint64(p) }
func i64(v int) uint64          { return uint64(int64(v)) }
func f32(v float32) uint64      { return uint64(math.Float32bits(v)) }
func f64(v float64) uint64      { return math.Float64bits(v) }

// launch queues kernel name on the stream with a 1-D or 2-D grid.
func (b *Backend) launch(op, name string, grid, block [2]int, args ...uint64) error {
	fn, ok := b.fns[name]
	if !ok {
		return fmt.Errorf("cuda: %s: kernel %s not loaded", op, name)
	}
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	if err := fn.Launch(grid[0], grid[1], 1, block[0], block[1], 1, 0, b.stream, params); err != nil {
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
