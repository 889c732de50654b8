package train

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/model"
)

// Files the loader skips are reported: counted in every Progress and in the
// Result (with the reasons), and recorded in the published weights' metadata.
func TestSkippedFilesAreReported(t *testing.T) {
	data := writeImages(t, 10, 8)
	if err := os.WriteFile(filepath.Join(data, "broken.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := refOptions(t, data, t.TempDir())
	o.Epochs = 1
	var last Progress
	o.OnProgress = func(p Progress) { last = p }
	res, err := GAN(context.Background(), tinyGAN(tinyRecipe()), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Data.Files != 11 || res.Data.Corrupt != 1 || len(res.Data.Errors) != 1 || !strings.Contains(res.Data.Errors[0], "broken.png") {
		t.Errorf("result data stats %+v; want 11 files, 1 corrupt, its reason", res.Data)
	}
	if last.Data.Corrupt != 1 {
		t.Errorf("last progress data stats %+v; want the corrupt file counted", last.Data)
	}
	n, meta, err := model.Open(res.Weights, o.Backend)
	if err != nil {
		t.Fatal(err)
	}
	n.Free()
	if meta[SkippedFilesMeta] != "1" {
		t.Errorf("metadata %s = %q, want 1", SkippedFilesMeta, meta[SkippedFilesMeta])
	}
}
