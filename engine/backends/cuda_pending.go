//go:build cuda

package backends

// Replace with the real constructor once engine/backend/cuda exists.
func cudaCandidate() candidate {
	return candidate{name: "cuda", unavailable: "cuda backend is not implemented yet"}
}
