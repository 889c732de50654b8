// Package cuda is the engine's GPU backend: buffers in device memory, every op a
// kernel of the project's own (CUDA C in kernels/, compiled to PTX by `make ptx`,
// the PTX committed and embedded), queued on one stream per backend, through
// gorgonia.org/cu for the driver API. Nothing else of CUDA is linked: no cuBLAS,
// no cuDNN; the only run-time need is the driver's libcuda.so.1.
//
// The package is built only with the build tag cuda. gorgonia.org/cu's init
// calls cuInit and exits the process when no driver is found, so a binary that
// holds this backend cannot even start on a CPU-only node; without the tag this
// file is all there is and nothing imports cu. See docs/cuda.md for how it is
// built, what is implemented and what has been verified on a GPU.
package cuda
