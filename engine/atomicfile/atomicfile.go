// Package atomicfile writes files so that a crash or a kill leaves either the old
// file or the complete new one at the path, never a torn one: checkpoints, model
// weights and images that other processes pick up all go through it.
//
// Its temporary files are all named by one rule (TempName), so that CleanTemp
// can remove those a kill left behind without guessing at other code's names.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tempMarker sits between a temporary file's base name and its random digits.
const tempMarker = ".tmp-"

// TempName is the name (without its random digits) of the temporary files
// made for base: hidden, so that directory listings and globs of real files
// pass them over.
func TempName(base string) string { return "." + base + tempMarker }

// IsTemp reports whether name (a base name) is one of this package's
// temporary files.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMarker)
}

// CleanTemp removes the temporary files in dir that writes a crash or a
// kill cut short. A missing dir has none.
func CleanTemp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if !e.IsDir() && IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// Write calls fill with a buffered writer on a temporary file in path's
// directory, then fsyncs it, renames it over path and fsyncs the directory. When
// fill or any step fails, the temporary file is removed and path is untouched.
func Write(path string, fill func(w *bufio.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := CreateTemp(dir, filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<16)
	if err = fill(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// CreateTemp creates a new file named TempName(base) + random digits in dir,
// for writing and then renaming into place. Unlike os.CreateTemp, which always
// makes 0600 files, it creates the file 0666 less the process's umask, as
// os.Create does: a file renamed into place has the permissions any other
// file the process writes would have (0644 under the usual umask 022), so
// the images, models and checkpoints written through it can be read by the
// people and services the operator's umask allows.
func CreateTemp(dir, base string) (*os.File, error) {
	prefix := TempName(base)
	for range 10000 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("create a temporary file in %s: too many names taken", dir)
}

// WriteBytes writes data to path atomically.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w *bufio.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir fsyncs a directory so that a rename or create in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
