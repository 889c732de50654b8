package app

import (
	"slices"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/model"
)

func TestEvalClasses(t *testing.T) {
	plain := model.Config{Preset: "g"}
	cond := model.Config{Preset: "g", Classes: 2}
	labels := []string{"Flags", "Symbols"}
	if g, cl, err := evalClasses(plain, nil, []string{"Flags"}, "", "unused", 4); err != nil || cl != nil || !slices.Equal(g, []string{"Flags"}) {
		t.Errorf("unconditional: %q %v %v", g, cl, err)
	}
	if g, cl, err := evalClasses(cond, labels, nil, "Symbols", "unused", 3); err != nil || !slices.Equal(cl, []int{1, 1, 1}) || !slices.Equal(g, []string{"Symbols"}) {
		t.Errorf("--label Symbols: %q %v %v", g, cl, err)
	}
	for _, tc := range []struct {
		name   string
		cfg    model.Config
		groups []string
		label  string
		want   string
	}{
		{"label on unconditional", plain, nil, "Flags", "has no classes"},
		{"group on conditional", cond, []string{"Flags"}, "", "use --label"},
		{"unknown label", cond, nil, "Animals", `labels are ["Flags" "Symbols"]`},
	} {
		if _, _, err := evalClasses(tc.cfg, labels, tc.groups, tc.label, "unused", 4); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
