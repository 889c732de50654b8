//go:build cuda

package choose

import (
	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/cuda"
)

// cudaCandidate is the GPU backend on device 0. Opening it fails with a clear
// error when the driver sees no device; a machine without the driver never gets
// that far (gorgonia.org/cu's init ends the process, see docs/cuda.md).
func cudaCandidate() candidate {
	return candidate{name: "cuda", open: func(Options) (backend.Backend, error) {
		return cuda.New(cuda.Options{})
	}}
}
