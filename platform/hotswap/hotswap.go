// Package hotswap holds the model a serving process runs and swaps in new
// versions without dropping requests.
//
// A Holder watches a path: a weights file, or a directory whose newest
// *.safetensors file (by modification time, then name) is the one to serve. It
// polls (a stat per interval; no inotify needed), and when the content digest
// changes it loads the new version completely, then swaps it in atomically.
// Requests Acquire the current version and Release it when done, so requests
// in flight finish on the version they started with; the old version's
// buffers are released once its last request is done.
//
// A caller that decides itself which file to serve (platform/modelsync, which
// follows a model-registry alias into a local cache) hands files to Load
// instead: same load-then-swap, with the file's digest checked against the one
// the caller expects. Watch and Load may drive the same holder; loads are
// serialised.
//
// The version of a model is the sha256 digest of its file ("sha256:<hex>"),
// the form the API's provenance carries.
package hotswap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hirez-ml/hirez/platform/fault"
)

// ReasonNotLoaded is the fault reason while no model is loaded.
const ReasonNotLoaded = "MODEL_NOT_LOADED"

// ErrDigestMismatch is wrapped by Load's error when a file's content does not
// have the digest it was offered with.
var ErrDigestMismatch = errors.New("digest mismatch")

// Ext is the extension of the weights files a directory is searched for.
const Ext = ".safetensors"

// LoadFunc builds a served value from a weights file's content (read once by
// the holder, which also hashes it). path is for messages.
type LoadFunc[T any] func(ctx context.Context, path string, data []byte) (T, error)

// Version is one loaded model version.
type Version[T any] struct {
	// Value is what LoadFunc built.
	Value T
	// Digest is "sha256:" + the hex sha256 of the file.
	Digest string
	// Path is the file it was loaded from.
	Path string
	// Loaded is when it was swapped in.
	Loaded time.Time

	refs    atomic.Int64 // the holder's own reference plus one per Acquire
	release func(T)
}

// Short returns the first 12 hex digits of the digest, for logs.
func (v *Version[T]) Short() string { return ShortDigest(v.Digest) }

// ShortDigest returns the first 12 hex digits of a "sha256:<hex>" digest.
func ShortDigest(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

func (v *Version[T]) unref() {
	if v.refs.Add(-1) == 0 && v.release != nil {
		v.release(v.Value)
	}
}

// Ref is an acquired version; Release it exactly once when done.
type Ref[T any] struct {
	*Version[T]
	once sync.Once
}

// Release gives the version back; the last release of a replaced version frees it.
func (r *Ref[T]) Release() { r.once.Do(r.Version.unref) }

// Holder holds the current version; see the package doc.
type Holder[T any] struct {
	load    LoadFunc[T]
	release func(T)
	onSwap  func(*Version[T])

	mu  sync.RWMutex // guards cur against a swap between reading it and taking a reference
	cur *Version[T]

	checkMu  sync.Mutex // one Check at a time
	lastStat statKey    // the stat of the file last looked at, to skip re-hashing
}

type statKey struct {
	path  string
	size  int64
	mtime time.Time
}

// Option configures a Holder.
type Option[T any] func(*Holder[T])

// OnSwap calls f (from the goroutine that loaded it) after each new version is
// swapped in: services flip their health to SERVING and log the version here.
func OnSwap[T any](f func(*Version[T])) Option[T] { return func(h *Holder[T]) { h.onSwap = f } }

// New returns an empty holder; release frees a value once no request uses it
// (nil: nothing to free).
func New[T any](load LoadFunc[T], release func(T), opts ...Option[T]) *Holder[T] {
	h := &Holder[T]{load: load, release: release}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Acquire returns the current version, or a fault.KindUnavailable error while
// none is loaded (UNAVAILABLE on the wire: another replica may have one).
func (h *Holder[T]) Acquire() (*Ref[T], error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.cur == nil {
		return nil, fault.New(fault.KindUnavailable, ReasonNotLoaded, "no model loaded yet")
	}
	h.cur.refs.Add(1)
	return &Ref[T]{Version: h.cur}, nil
}

// Current returns the current version without acquiring it (for metadata
// only: its Value may be released at any time), or nil.
func (h *Holder[T]) Current() *Version[T] {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cur
}

// Set swaps in value as a new version (tests and in-process use); the previous
// version is released once its requests finish.
func (h *Holder[T]) Set(value T, digest, path string) *Version[T] {
	v := &Version[T]{Value: value, Digest: digest, Path: path, Loaded: time.Now(), release: h.release}
	v.refs.Store(1)
	h.mu.Lock()
	old := h.cur
	h.cur = v
	h.mu.Unlock()
	if old != nil {
		old.unref()
	}
	if h.onSwap != nil {
		h.onSwap(v)
	}
	return v
}

// Close drops the holder's reference to the current version: it is released
// once its last request finishes. Acquire fails afterwards.
func (h *Holder[T]) Close() {
	h.mu.Lock()
	old := h.cur
	h.cur = nil
	h.mu.Unlock()
	if old != nil {
		old.unref()
	}
}

// Resolve returns the weights file path names: path itself when it is a file,
// else the newest *.safetensors in the directory (by modification time, then
// by name, so v2 beats v1 written in the same second).
func Resolve(path string) (string, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", nil, err
	}
	if !fi.IsDir() {
		return path, fi, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", nil, err
	}
	type cand struct {
		name string
		fi   fs.FileInfo
	}
	var cands []cand
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), Ext) || strings.HasPrefix(e.Name(), ".") {
			continue // dot files: temporaries of an atomic write in progress
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		cands = append(cands, cand{e.Name(), info})
	}
	if len(cands) == 0 {
		return "", nil, fmt.Errorf("no %s file in directory %s", Ext, path)
	}
	best := slices.MaxFunc(cands, func(a, b cand) int {
		if c := a.fi.ModTime().Compare(b.fi.ModTime()); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return filepath.Join(path, best.name), best.fi, nil
}

// Digest returns "sha256:<hex>" of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Check loads the model at path (see Resolve) if it differs from the current
// version, and reports whether it swapped. A file whose size and modification
// time have not changed since the last look is not read again.
func (h *Holder[T]) Check(ctx context.Context, path string) (bool, error) {
	h.checkMu.Lock()
	defer h.checkMu.Unlock()
	file, fi, err := Resolve(path)
	if err != nil {
		return false, fmt.Errorf("model %s: %w", path, err)
	}
	key := statKey{path: file, size: fi.Size(), mtime: fi.ModTime()}
	if cur := h.Current(); cur != nil && key == h.lastStat {
		return false, nil
	}
	swapped, err := h.loadLocked(ctx, file, "")
	if err == nil {
		h.lastStat = key
	}
	return swapped, err
}

// Load swaps in the weights file at path (a file, not a directory) unless its
// content is already the current version, and reports whether it swapped.
// When digest is not empty the content must have that digest
// ("sha256:<hex>"); a file that does not is refused with an error wrapping
// ErrDigestMismatch. Whatever the error, the current version keeps serving.
func (h *Holder[T]) Load(ctx context.Context, path, digest string) (bool, error) {
	h.checkMu.Lock()
	defer h.checkMu.Unlock()
	h.lastStat = statKey{} // a later Check must look at its path afresh
	return h.loadLocked(ctx, path, digest)
}

// loadLocked reads, hashes and loads file; checkMu is held.
func (h *Holder[T]) loadLocked(ctx context.Context, file, want string) (bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return false, fmt.Errorf("model %s: %w", file, err)
	}
	digest := Digest(data)
	if want != "" && digest != want {
		return false, fmt.Errorf("model %s: content is %s, want %s: %w", file, digest, want, ErrDigestMismatch)
	}
	if cur := h.Current(); cur != nil && cur.Digest == digest {
		return false, nil
	}
	value, err := h.load(ctx, file, data)
	if err != nil {
		return false, fmt.Errorf("load model %s: %w", file, err)
	}
	h.Set(value, digest, file)
	return true, nil
}

// Watch loads the model at path, then polls it every interval and swaps in
// each new version, until ctx ends. A failed load is reported to onErr (a
// logger) and retried at the next poll, so a half-written or broken file never
// takes the served version away. Watch returns nil when ctx ends.
func (h *Holder[T]) Watch(ctx context.Context, path string, interval time.Duration, onErr func(error)) error {
	if interval <= 0 {
		return errors.New("hotswap: watch interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		if _, err := h.Check(ctx, path); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if onErr != nil && err.Error() != lastErr { // say it once, not every poll
				onErr(err)
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
