// Package backends chooses a backend by name at run time. The list is static:
// which backends a binary holds is decided by build tags (cgo for "cpu", cuda
// for "cuda"), one file per backend, with no init() and no global registry.
package backends

import (
	"fmt"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// Options configures the backend Open makes.
type Options struct {
	// Threads is the CPU thread count for "cpu"; 0 means one per CPU.
	Threads int
}

// candidate is one backend this package knows of. Exactly one of open and
// unavailable is set, depending on how the binary was built.
type candidate struct {
	name        string
	open        func(Options) (backend.Backend, error)
	unavailable string // why this binary cannot open it
}

// candidates lists every known backend, fastest first.
func candidates() []candidate {
	return []candidate{cudaCandidate(), cpuCandidate(), refCandidate()}
}

func refCandidate() candidate {
	return candidate{name: "ref", open: func(Options) (backend.Backend, error) { return ref.New(), nil }}
}

// Names lists the backends built into this binary, fastest first.
func Names() []string {
	var names []string
	for _, c := range candidates() {
		if c.open != nil {
			names = append(names, c.name)
		}
	}
	return names
}

// Default is the fastest backend built in: "cuda" > "cpu" > "ref".
func Default() string { return Names()[0] }

// Unavailable says why this binary cannot open the backend name, or "" when it
// can.
func Unavailable(name string) string {
	for _, c := range candidates() {
		if c.name == name {
			return c.unavailable
		}
	}
	return fmt.Sprintf("unknown backend %q (known: %s)", name, strings.Join(known(), ", "))
}

func known() []string {
	var names []string
	for _, c := range candidates() {
		names = append(names, c.name)
	}
	return names
}

// Open opens the backend name with default options; "" means Default().
func Open(name string) (backend.Backend, error) { return OpenWith(name, Options{}) }

// OpenWith opens the backend name; "" means Default().
func OpenWith(name string, o Options) (backend.Backend, error) {
	if name == "" {
		name = Default()
	}
	if o.Threads < 0 {
		return nil, fmt.Errorf("open backend %q: %d threads", name, o.Threads)
	}
	for _, c := range candidates() {
		if c.name != name {
			continue
		}
		if c.open == nil {
			return nil, fmt.Errorf("open backend %q: %s", name, c.unavailable)
		}
		b, err := c.open(o)
		if err != nil {
			return nil, fmt.Errorf("open backend %q: %w", name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("open backend: %s", Unavailable(name))
}
