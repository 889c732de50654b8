package k8s_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/k8s/internal/dockerfile"
	"github.com/hirez-ml/hirez/k8s/internal/opsdoc"
)

// TestDockerfiles lints every Dockerfile in build/docker and the image list built
// from it against the repository and docs/operations.md.
func TestDockerfiles(t *testing.T) {
	files, err := filepath.Glob("../build/docker/*Dockerfile*")
	if err != nil {
		t.Fatal(err)
	}
	parsed := map[string]*dockerfile.File{}
	for _, p := range files {
		if strings.HasSuffix(p, ".dockerignore") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := dockerfile.Parse(strings.NewReader(string(data)))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		parsed[filepath.Base(p)] = f
		for _, msg := range dockerfile.Lint(f) {
			t.Errorf("%s: %s", p, msg)
		}
	}
	f := parsed["Dockerfile"]
	if f == nil {
		t.Fatal("build/docker/Dockerfile missing")
	}
	images, err := dockerfile.LoadImages("../build/docker/images.txt")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := opsdoc.Load("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range dockerfile.LintImages("..", f, images, doc) {
		t.Errorf("build/docker/images.txt: %s", msg)
	}
	// Every server in the doc has an image.
	for name, b := range doc.Binaries {
		if len(b.Ports) == 0 {
			continue // the CLI
		}
		found := false
		for _, im := range images {
			found = found || im.Binary == name
		}
		if !found {
			t.Errorf("build/docker/images.txt: no image for the server %s", name)
		}
	}
}
