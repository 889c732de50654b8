//go:build !cuda

package choose

func cudaCandidate() candidate {
	return candidate{name: "cuda", unavailable: "cuda backend needs the cuda build tag (go build -tags cuda)"}
}
