//go:build cgo

package choose

import (
	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/cpu"
)

func cpuCandidate() candidate {
	return candidate{name: "cpu", open: func(o Options) (backend.Backend, error) {
		return cpu.New(cpu.Options{Threads: o.Threads})
	}}
}

func cpuBF16Candidate() candidate {
	if !cpu.NativeBF16() {
		return candidate{name: "cpu-bf16", inferenceOnly: true, unavailable: "cpu-bf16 needs a CPU with native bfloat16 (avx512_bf16 or AMX); this one has neither"}
	}
	return candidate{name: "cpu-bf16", inferenceOnly: true, open: func(o Options) (backend.Backend, error) {
		return cpu.New(cpu.Options{Threads: o.Threads, BF16: true})
	}}
}
