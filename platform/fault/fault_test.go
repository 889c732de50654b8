package fault_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/platform/fault"
)

func TestKinds(t *testing.T) {
	base := errors.New("disk on fire")
	tests := []struct {
		name       string
		err        error
		kind       fault.Kind
		reason     string
		msg        string
		wrapsCause bool
	}{
		{"invalid", fault.Invalid("batch %d > %d", 9, 8), fault.KindInvalid, "INVALID_ARGUMENT", "batch 9 > 8", false},
		{"not found", fault.NotFound("model %q", "srcnn"), fault.KindNotFound, "NOT_FOUND", `model "srcnn"`, false},
		{"already exists", fault.AlreadyExists("job"), fault.KindAlreadyExists, "ALREADY_EXISTS", "job", false},
		{"precondition", fault.FailedPrecondition("job running"), fault.KindFailedPrecondition, "FAILED_PRECONDITION", "job running", false},
		{"overloaded", fault.Overloaded("queue full"), fault.KindOverloaded, "OVERLOADED", "queue full", false},
		{"unavailable", fault.Unavailable("no model"), fault.KindUnavailable, "UNAVAILABLE", "no model", false},
		{"custom reason", fault.New(fault.KindUnavailable, "MODEL_NOT_LOADED", "loading"), fault.KindUnavailable, "MODEL_NOT_LOADED", "loading", false},
		{"wrapped by caller", fmt.Errorf("upscale: %w", fault.Overloaded("queue full")), fault.KindOverloaded, "OVERLOADED", "upscale: queue full", false},
		{"wraps cause", fault.NotFound("load: %w", base), fault.KindNotFound, "NOT_FOUND", "load: disk on fire", true},
		{"plain", base, fault.KindUnknown, "", "disk on fire", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fault.KindOf(tt.err); got != tt.kind {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			if got := fault.ReasonOf(tt.err); got != tt.reason {
				t.Errorf("ReasonOf = %q, want %q", got, tt.reason)
			}
			if got := tt.err.Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			if tt.kind != fault.KindUnknown && !errors.Is(tt.err, tt.kind) {
				t.Errorf("errors.Is(err, %v) = false", tt.kind)
			}
			if errors.Is(tt.err, fault.KindInvalid) != (tt.kind == fault.KindInvalid) {
				t.Errorf("errors.Is(err, KindInvalid) wrong for kind %v", tt.kind)
			}
			if errors.Is(tt.err, base) != tt.wrapsCause {
				t.Errorf("errors.Is(err, base) = %v, want %v", !tt.wrapsCause, tt.wrapsCause)
			}
		})
	}
}

func TestSentinel(t *testing.T) {
	errNoModel := fault.Unavailable("no model loaded")
	err := fmt.Errorf("generate: %w", errNoModel)
	if !errors.Is(err, errNoModel) {
		t.Fatal("a fault used as a sentinel is not found by errors.Is")
	}
}

// A long quoted argument is cut to fault.MaxQuoted bytes and its length, at a
// character boundary; names of valid length and %s arguments stay whole.
func TestLongQuotedArgumentsAreClipped(t *testing.T) {
	long := strings.Repeat("a", 100_000)
	name := strings.Repeat("n", 63)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"100 kB name", fault.Invalid("model.name %q is not a valid model name", long),
			`model.name "` + long[:fault.MaxQuoted] + `"… (100000 bytes) is not a valid model name`},
		{"valid length", fault.Invalid("name %q", name), `name "` + name + `"`},
		{"%s stays whole", fault.Invalid("presets: %s", long), "presets: " + long},
		{"multi-byte at the cut", fault.NotFound("label %q", strings.Repeat("é", 100)),
			`label "` + strings.Repeat("é", fault.MaxQuoted/2) + `"… (200 bytes)`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: %.200q…, want %.200q…", tt.name, got, tt.want)
		}
	}
}
