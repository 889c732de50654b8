package modelsync

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/platform/hotswap"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

const (
	pointerExt = ".alias"   // <alias>.alias: the digest last served for the alias
	partialExt = ".partial" // .<hex>.partial: a download in progress
	tempPrefix = ".tmp-"    // a pointer being written
)

// file is where version digest lives in the cache.
func (s *Syncer) file(digest string) string {
	return filepath.Join(s.dir, strings.TrimPrefix(digest, pb.DigestPrefix)+hotswap.Ext)
}

type cachedFile struct {
	digest string
	mtime  time.Time
}

// cachedFiles lists the complete versions in the cache, newest first.
func (s *Syncer) cachedFiles() []cachedFile {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	var out []cachedFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, hotswap.Ext) || strings.HasPrefix(name, ".") {
			continue
		}
		d := pb.DigestPrefix + strings.TrimSuffix(name, hotswap.Ext)
		if !pb.IsDigest(d) {
			continue // not ours
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, cachedFile{d, fi.ModTime()})
	}
	slices.SortFunc(out, func(a, b cachedFile) int {
		if c := b.mtime.Compare(a.mtime); c != 0 {
			return c
		}
		return strings.Compare(b.digest, a.digest)
	})
	return out
}

// cached lists the digests of the cached versions, newest first.
func (s *Syncer) cached() []string {
	var out []string
	for _, c := range s.cachedFiles() {
		out = append(out, c.digest)
	}
	return out
}

func withoutDigest(ds []string, d string) []string {
	return slices.DeleteFunc(slices.Clone(ds), func(x string) bool { return x == d })
}

// partialFile is where a download of version digest in progress lives.
func (s *Syncer) partialFile(digest string) string {
	return filepath.Join(s.dir, "."+strings.TrimPrefix(digest, pb.DigestPrefix)+partialExt)
}

func (s *Syncer) pointerPath() string { return filepath.Join(s.dir, s.opts.Alias+pointerExt) }

// readPointer returns the digest the alias's pointer file names, or "".
func (s *Syncer) readPointer() string {
	b, err := os.ReadFile(s.pointerPath())
	if err != nil {
		return ""
	}
	d := strings.TrimSpace(string(b))
	if !pb.IsDigest(d) {
		s.log.Warn("alias pointer in the cache is malformed; ignored", zap.String("path", s.pointerPath()))
		return ""
	}
	return d
}

// writePointer records digest in the alias's pointer file: temporary file,
// fsync, rename, fsync of the directory, so a crash leaves the old or the new.
func (s *Syncer) writePointer(digest string) error {
	tmp, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	_, err = tmp.WriteString(digest + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.pointerPath()); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// prune keeps the Keep newest versions (serving always among them) and
// removes leftovers of pointer writes and stale partial downloads. A partial
// is kept when it is the download of keepPartial; with keepPartial "" (at
// start-up, before the registry has said what it wants) the newest partial
// is kept, since it is most likely the download a restart broke and the
// alias still points at. It runs from the goroutine that downloads, so no
// download is in progress.
func (s *Syncer) prune(serving, keepPartial string) {
	kept := 1 // serving
	for _, c := range s.cachedFiles() {
		if c.digest == serving {
			continue
		}
		if kept < s.opts.Keep {
			kept++
			continue
		}
		if err := os.Remove(s.file(c.digest)); err == nil {
			s.log.Info("removed old cached version", zap.String("version", c.digest))
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	var partials []cachedFile
	for _, e := range entries {
		n := e.Name()
		switch {
		case !strings.HasPrefix(n, "."):
		case strings.HasPrefix(n, tempPrefix):
			_ = os.Remove(filepath.Join(s.dir, n))
		case strings.HasSuffix(n, partialExt):
			d := pb.DigestPrefix + strings.TrimSuffix(strings.TrimPrefix(n, "."), partialExt)
			fi, err := e.Info()
			if !pb.IsDigest(d) || err != nil {
				_ = os.Remove(filepath.Join(s.dir, n))
				continue
			}
			partials = append(partials, cachedFile{d, fi.ModTime()})
		}
	}
	if keepPartial == "" && len(partials) > 0 {
		keepPartial = slices.MaxFunc(partials, func(a, b cachedFile) int { return a.mtime.Compare(b.mtime) }).digest
	}
	for _, p := range partials {
		if p.digest == keepPartial {
			continue
		}
		if err := os.Remove(s.partialFile(p.digest)); err == nil {
			s.log.Info("removed a stale partial download", zap.String("version", p.digest))
		}
	}
}

// fileDigest hashes f from its start.
func fileDigest(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	return pb.DigestPrefix + hex.EncodeToString(h.Sum(nil)), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
