// Package choose chooses a backend by name at run time. The list is static:
// which backends a binary holds is decided by build tags (cgo for "cpu", cuda
// for "cuda"), one file per backend, with no init() and no global registry.
package choose

import (
	"fmt"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// Options configures the backend Open makes.
type Options struct {
	// Threads is the CPU thread count for "cpu" and "cpu-bf16"; 0 means one per CPU.
	Threads int
	// Training says the caller will train: an inference-only backend
	// ("cpu-bf16") is then refused at once rather than at the first backward op.
	Training bool
}

// candidate is one backend this package knows of. Exactly one of open and
// unavailable is set, depending on how the binary was built.
type candidate struct {
	name          string
	open          func(Options) (backend.Backend, error)
	unavailable   string // why this binary cannot open it
	inferenceOnly bool   // its training ops fail (reduced precision)
}

// candidates lists every known backend, the fp32 ones fastest first. "cpu-bf16"
// comes after "cpu" although it is faster: it changes the numerics (bfloat16
// activations and weights) and cannot train, so it is chosen by name, never by
// default.
func candidates() []candidate {
	return []candidate{cudaCandidate(), cpuCandidate(), cpuBF16Candidate(), refCandidate()}
}

func refCandidate() candidate {
	return candidate{name: "ref", open: func(Options) (backend.Backend, error) { return ref.New(), nil }}
}

// Names lists the full backends built into this binary (each one trains and
// infers in fp32), fastest first. Inference-only backends are left out, so that
// a caller looping over Names (a parity test, a trainer's list) gets only
// backends that can run everything; All adds them.
func Names() []string { return list(false) }

// All lists every backend built into this binary, the inference-only ones
// ("cpu-bf16") included, in the order of Names with those after the fp32 ones
// they are variants of.
func All() []string { return list(true) }

func list(inferenceOnly bool) []string {
	var names []string
	for _, c := range candidates() {
		if c.open != nil && (inferenceOnly || !c.inferenceOnly) {
			names = append(names, c.name)
		}
	}
	return names
}

// InferenceOnly reports whether the backend name can only run inference
// ("cpu-bf16"): a trainer should refuse it up front.
func InferenceOnly(name string) bool {
	for _, c := range candidates() {
		if c.name == name {
			return c.inferenceOnly
		}
	}
	return false
}

// Describe lists the backends built in for a --backend flag's help: for
// inference every one, the inference-only ones marked; for training only those
// that can train. The default comes last.
func Describe(training bool) string {
	var parts []string
	for _, c := range candidates() {
		switch {
		case c.open == nil || training && c.inferenceOnly:
		case c.inferenceOnly:
			parts = append(parts, c.name+" (bfloat16, inference only)")
		default:
			parts = append(parts, c.name)
		}
	}
	return strings.Join(parts, ", ") + "; default " + Default()
}

// Default is the fastest full backend built in: "cuda" > "cpu" > "ref".
func Default() string { return Names()[0] }

// UnavailableFor says why this binary cannot open the backend name for the
// given use, or "" when it can: not built in, or inference only when training.
func UnavailableFor(name string, training bool) string {
	if why := Unavailable(name); why != "" {
		return why
	}
	if training && InferenceOnly(name) {
		return fmt.Sprintf("%s is inference-only (bfloat16); train with one of %s", name, Describe(true))
	}
	return ""
}

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
		if why := UnavailableFor(name, o.Training); why != "" {
			return nil, fmt.Errorf("open backend %q: %s", name, why)
		}
		b, err := c.open(o)
		if err != nil {
			return nil, fmt.Errorf("open backend %q: %w", name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("open backend: %s", Unavailable(name))
}
