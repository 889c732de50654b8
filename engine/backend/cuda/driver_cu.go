//go:build cuda

package cuda

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	"gorgonia.org/cu"
)

// ptx holds the compiled kernels, one module per .cu file, loaded once per
// backend (context).
//
//go:embed kernels/*.ptx
var ptx embed.FS

// cuDriver is a device's primary context, one non-blocking stream on it and
// the kernels loaded from the embedded PTX.
type cuDriver struct {
	dev    cu.Device
	ctx    cu.CUContext
	stream cu.Stream
	mods   []cu.Module
	fns    map[string]cu.Function
	desc   string
}

// DeviceCount is the number of CUDA devices the driver sees.
func DeviceCount() (int, error) { return cu.NumDevices() }

func newDriver(o Options) (driver, error) {
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
	d := &cuDriver{dev: dev, fns: make(map[string]cu.Function)}
	if d.ctx, err = dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: device %d: retain primary context: %w", o.Device, err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.init(); err != nil {
		d.close()
		return nil, err
	}
	name, _ := dev.Name()
	major, minor, _ := dev.ComputeCapability()
	d.desc = fmt.Sprintf("%s (device %d, sm_%d%d, driver %d)", name, o.Device, major, minor, cu.Version())
	return d, nil
}

// init runs on a locked thread: stream and kernels.
func (d *cuDriver) init() error {
	if err := d.bind(); err != nil {
		return fmt.Errorf("cuda: set context: %w", err)
	}
	var err error
	if d.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
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
		d.mods = append(d.mods, m)
		for _, name := range entries(string(src)) {
			fn, err := m.Function(name)
			if err != nil {
				return fmt.Errorf("cuda: %s: kernel %s: %w", f, name, err)
			}
			d.fns[name] = fn
		}
	}
	for _, name := range kernelNames {
		if _, ok := d.fns[name]; !ok {
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

func (d *cuDriver) bind() error      { return cu.SetCurrentContext(d.ctx) }
func (d *cuDriver) describe() string { return d.desc }

func (d *cuDriver) alloc(bytes int) (ptr, error) {
	p, err := cu.MemAlloc(int64(bytes))
	return ptr(p), err
}

func (d *cuDriver) free(p ptr) { cu.MemFree(cu.DevicePtr(p)) }

func (d *cuDriver) zero(p ptr, n int) error {
	return cu.MemsetD32Async(cu.DevicePtr(p), 0, int64(n), d.stream)
}

// upload: from pageable memory the driver stages the values before it
// returns, so src may be reused at once.
func (d *cuDriver) upload(dst ptr, src []float32) error {
	err := cu.MemcpyHtoDAsync(cu.DevicePtr(dst), unsafe.Pointer(unsafe.SliceData(src)), int64(4*len(src)), d.stream)
	runtime.KeepAlive(src)
	return err
}

// download queues the copy after everything queued and waits for the stream.
func (d *cuDriver) download(dst []float32, src ptr) error {
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(unsafe.SliceData(dst)), cu.DevicePtr(src), int64(4*len(dst)), d.stream); err != nil {
		return err
	}
	err := d.stream.Synchronize()
	runtime.KeepAlive(dst)
	if err != nil {
		return fmt.Errorf("queued work failed: %w", err)
	}
	return nil
}

func (d *cuDriver) copy(dst, src ptr, bytes int) error {
	return cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), int64(bytes), d.stream)
}

func (d *cuDriver) sync() error { return d.stream.Synchronize() }

// launch: cu's Function.Launch copies 8 bytes from each parameter pointer.
func (d *cuDriver) launch(name string, grid, block [2]int, args []uint64) error {
	fn, ok := d.fns[name]
	if !ok {
		return fmt.Errorf("kernel %s not loaded", name)
	}
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	return fn.Launch(grid[0], grid[1], 1, block[0], block[1], 1, 0, d.stream, params)
}

// close unloads the modules, destroys the stream and releases the context (on
// a thread where it is current).
func (d *cuDriver) close() error {
	for _, m := range d.mods {
		m.Unload()
	}
	d.mods = nil
	if d.stream != (cu.Stream{}) {
		d.stream.Destroy()
	}
	return d.dev.ReleasePrimaryCtx()
}
