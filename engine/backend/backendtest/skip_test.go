package backendtest

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/ref"
)

// partial is a backend that has not landed Clamp yet: the reference backend
// with that one op returning backend.ErrNotImplemented.
type partial struct{ *ref.Backend }

func (partial) Name() string { return "partial" }

func (partial) Clamp(x, y backend.Buffer, lo, hi float32) error {
	return backend.NotImplemented("partial", "clamp")
}

// TestNotImplementedSkips checks that a group in which the candidate does
// not implement an op ends as skipped, naming the op, neither passed nor
// failed, and that the group's other calls still ran.
func TestNotImplementedSkips(t *testing.T) {
	oracle, cand := ref.New(), partial{ref.New()}
	defer oracle.Close()
	defer cand.Close()
	if err := cand.Clamp(nil, nil, 0, 1); !errors.Is(err, backend.ErrNotImplemented) || err.Error() != "partial: clamp: not implemented" {
		t.Fatalf("NotImplemented: %v", err)
	}
	e := &env{bk: [2]backend.Backend{oracle, cand}, rng: rand.New(rand.NewPCG(1, 1)), opt: Options{Tol: 1e-4, Short: true}}
	groups := []struct {
		name string
		f    func(*testing.T)
		skip bool
	}{
		{"memory", e.memory, true}, // clamp is a memory op
		{"bad_input", func(t *testing.T) { badInput(t, e, cand, oracle) }, true},
		{"activations", e.activations, false},
	}
	for _, g := range groups {
		var sub *testing.T
		var ran []string
		e.group(t, g.name, func(t *testing.T) {
			sub = t
			g.f(t)
			ran = append(ran, "done")
		})
		switch {
		case sub == nil || len(ran) == 0:
			t.Errorf("%s: the group's checks did not run to the end", g.name)
		case sub.Failed():
			t.Errorf("%s: failed, want skipped", g.name)
		case sub.Skipped() != g.skip:
			t.Errorf("%s: skipped = %v, want %v", g.name, sub.Skipped(), g.skip)
		case g.skip && !strings.Contains(e.skipped.String(), `"partial: clamp: not implemented"`):
			t.Errorf("%s: skip message %q does not name the op", g.name, e.skipped.String())
		}
	}
}
