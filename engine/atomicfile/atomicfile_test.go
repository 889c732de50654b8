package atomicfile

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteReplacesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.bin")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(path, []byte("new contents")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new contents" {
		t.Fatalf("read %q, %v; want the new contents", got, err)
	}
}

func TestFailedWriteKeepsOldFileAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(w *bufio.Writer) error {
		w.WriteString("half of it")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want the fill error", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("path holds %q after a failed write, want the old contents", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after a failed write, want only the old file", len(entries))
	}
}

func TestWriteIntoMissingDirectoryFails(t *testing.T) {
	if err := WriteBytes(filepath.Join(t.TempDir(), "no", "such", "f"), nil); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

// Files are created 0666 less the umask, as os.Create makes them, not
// os.CreateTemp's fixed 0600: an operator's umask decides who may read outputs.
func TestWriteRespectsUmask(t *testing.T) {
	for _, mask := range []int{0o022, 0o077, 0o002} {
		old := syscall.Umask(mask)
		path := filepath.Join(t.TempDir(), "f.png")
		err := WriteBytes(path, []byte("x"))
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Mode().Perm(), os.FileMode(0o666&^mask); got != want {
			t.Errorf("umask %03o: file mode %v, want %v", mask, got, want)
		}
	}
}

func TestCleanTempRemovesLeftoversOfAKill(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "checkpoint.safetensors")
	hidden := filepath.Join(dir, ".hirez.json") // hidden but not a temporary
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hidden, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a kill between CreateTemp and the rename leaves, for two bases.
	for _, base := range []string{"checkpoint.safetensors", "publish"} {
		f, err := CreateTemp(dir, base)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := CleanTemp(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if len(left) != 2 || left[0] != ".hirez.json" || left[1] != "checkpoint.safetensors" {
		t.Fatalf("left %v, want only the real files", left)
	}
	if err := CleanTemp(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("a missing directory: %v", err)
	}
}
