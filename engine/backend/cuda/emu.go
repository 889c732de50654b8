//go:build cudaemu && !cuda

package cuda

// #cgo CXXFLAGS: -std=c++20 -O2 -Wno-unknown-pragmas
// #include <stdint.h>
// #include <stdlib.h>
// int hz_emu_launch(const char* name, const uint64_t* a, int nargs, const unsigned* g);
import "C"

import (
	"fmt"
	"unsafe"
)

// emuDriver runs the kernels on the CPU (emu.cc), synchronously, with host
// memory as "device" memory. Build with -tags cudaemu to test this package's
// Go code and the kernels' arithmetic without a GPU: go test -tags cudaemu -short.
type emuDriver struct{}

// DeviceCount is 1: the emulated device.
func DeviceCount() (int, error) { return 1, nil }

func newDriver(o Options) (driver, error) {
	if o.Device != 0 {
		return nil, fmt.Errorf("cuda: device %d of 1 (emulation)", o.Device)
	}
	return emuDriver{}, nil
}

func (emuDriver) bind() error      { return nil }
func (emuDriver) describe() string { return "CPU emulation of the CUDA kernels (build tag cudaemu)" }

func (emuDriver) alloc(bytes int) (ptr, error) {
	p := C.calloc(C.size_t(bytes), 1)
	if p == nil {
		return 0, fmt.Errorf("out of host memory")
	}
	return ptr(p), nil
}

func (emuDriver) free(p ptr) { C.free(cmem(p)) }

// cmem is the C allocation at p. The "device" memory is C memory, which the
// Go collector neither moves nor frees, so holding it as an address is safe.
func cmem(p ptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

func floats(p ptr, n int) []float32 { return unsafe.Slice((*float32)(cmem(p)), n) }

func (emuDriver) zero(p ptr, n int) error { clear(floats(p, n)); return nil }

func (emuDriver) upload(dst ptr, src []float32) error { copy(floats(dst, len(src)), src); return nil }

func (emuDriver) download(dst []float32, src ptr) error { copy(dst, floats(src, len(dst))); return nil }

func (emuDriver) copy(dst, src ptr, bytes int) error {
	copy(floats(dst, bytes/4), floats(src, bytes/4))
	return nil
}

func (emuDriver) sync() error  { return nil }
func (emuDriver) close() error { return nil }

func (emuDriver) launch(name string, grid, block [2]int, args []uint64) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	a := C.malloc(C.size_t(8 * max(len(args), 1)))
	defer C.free(a)
	copy(unsafe.Slice((*uint64)(a), len(args)), args)
	g := [4]C.uint{C.uint(grid[0]), C.uint(grid[1]), C.uint(block[0]), C.uint(block[1])}
	switch C.hz_emu_launch(cname, (*C.uint64_t)(a), C.int(len(args)), &g[0]) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("kernel %s: %d arguments do not match its parameters", name, len(args))
	default:
		return fmt.Errorf("kernel %s: unknown", name)
	}
}
