package k8s_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundledModelPathsExist checks that every HIREZ_MODEL in the base config
// that points into the image's bundled models (/opt/hirez/models, copied from
// the repo's models/ by build/docker/Dockerfile) names a file that exists, so
// renaming a bundled model cannot leave pods unable to start.
func TestBundledModelPathsExist(t *testing.T) {
	const inImage = "/opt/hirez/models/"
	envs, err := filepath.Glob("base/config/*.env")
	if err != nil || len(envs) == 0 {
		t.Fatalf("no env files under base/config: %v", err)
	}
	checked := 0
	for _, path := range envs {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			value, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "HIREZ_MODEL=")
			if !ok || !strings.HasPrefix(value, inImage) {
				continue
			}
			checked++
			local := filepath.Join("..", "models", strings.TrimPrefix(value, inImage))
			if _, err := os.Stat(local); err != nil {
				t.Errorf("%s: HIREZ_MODEL=%s but %s is not in the repo: %v", path, value, local, err)
			}
		}
		f.Close()
	}
	if checked == 0 {
		t.Error("no HIREZ_MODEL points at the bundled models; generator and upscaler pods need one")
	}
}
