//go:build !cgo

package choose

func cpuCandidate() candidate {
	return candidate{name: "cpu", unavailable: "cpu backend needs cgo; this binary was built with CGO_ENABLED=0"}
}

func cpuBF16Candidate() candidate {
	return candidate{name: "cpu-bf16", unavailable: "cpu-bf16 backend needs cgo; this binary was built with CGO_ENABLED=0"}
}
