package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCleanTempRemovesLeftoversOfAKill(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "checkpoint.safetensors")
	for _, n := range []string{keep, filepath.Join(dir, TempPrefix+"x-123"), filepath.Join(dir, ".checkpoint.safetensors.tmp-9")} {
		if err := os.WriteFile(n, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := CleanTemp(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "checkpoint.safetensors" {
		t.Fatalf("left %v", ents)
	}
}
