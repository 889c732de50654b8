package app

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/train"
)

// The progress line says how many training files were skipped, and says
// nothing of it when none were.
func TestProgressReportsSkippedFiles(t *testing.T) {
	for _, tt := range []struct {
		data dataset.Stats
		want string
	}{
		{dataset.Stats{Files: 12, Corrupt: 2, TooSmall: 1}, " skipped 3 of 12 files (2 corrupt, 1 too small)"},
		{dataset.Stats{Files: 12}, ""},
	} {
		var out bytes.Buffer
		p := newProgress(&out, "gan")
		p.update(train.Progress{Step: 1, Steps: 1, ETA: -1, Data: tt.data})
		line := strings.TrimSpace(out.String())
		if tt.want != "" && !strings.HasSuffix(line, strings.TrimSpace(tt.want)) {
			t.Errorf("line %q; want it to end %q", line, tt.want)
		}
		if tt.want == "" && strings.Contains(line, "skipped") {
			t.Errorf("line %q mentions skipped files; none were", line)
		}
	}
}
