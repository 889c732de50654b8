// Package atomicfile holds what the trainer needs beside engine/atomicfile (the
// one atomic writer: temporary file, fsync, rename, fsync of the directory):
// CleanTemp, which removes temporaries a kill left behind.
package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file; CleanTemp removes them.
const TempPrefix = ".tmp-"

// CleanTemp removes temporary files left in dir by writes a crash cut short
// (safetensors.WriteFile's ".<name>.tmp-*" ones too).
func CleanTemp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasPrefix(n, TempPrefix) || strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-")) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}
