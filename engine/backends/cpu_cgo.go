//go:build cgo

package backends

import (
	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/cpu"
)

func cpuCandidate() candidate {
	return candidate{name: "cpu", open: func(o Options) (backend.Backend, error) {
		return cpu.New(cpu.Options{Threads: o.Threads})
	}}
}
