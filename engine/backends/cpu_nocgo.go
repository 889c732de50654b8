//go:build !cgo

package backends

func cpuCandidate() candidate {
	return candidate{name: "cpu", unavailable: "cpu backend needs cgo; this binary was built with CGO_ENABLED=0"}
}
