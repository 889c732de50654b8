package hotswap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/platform/fault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type model struct {
	text  string
	freed bool
}

type freer struct {
	mu    sync.Mutex
	freed []string
}

func (f *freer) release(m *model) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m.freed = true
	f.freed = append(f.freed, m.text)
}

func (f *freer) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.freed...)
}

func load(_ context.Context, _ string, data []byte) (*model, error) {
	if string(data) == "broken" {
		return nil, errors.New("broken weights")
	}
	return &model{text: string(data)}, nil
}

func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireBeforeLoadIsUnavailable(t *testing.T) {
	h := New(load, nil)
	_, err := h.Acquire()
	if !errors.Is(err, fault.KindUnavailable) || fault.ReasonOf(err) != ReasonNotLoaded {
		t.Fatalf("Acquire = %v, want unavailable/%s", err, ReasonNotLoaded)
	}
}

func TestSwapWaitsForInFlightRequests(t *testing.T) {
	f := &freer{}
	h := New(load, f.release)
	v1 := h.Set(&model{text: "v1"}, "sha256:1", "a")
	ref, err := h.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	h.Set(&model{text: "v2"}, "sha256:2", "b")
	if got := f.list(); len(got) != 0 {
		t.Fatalf("freed %v while a request still held v1", got)
	}
	if ref.Value.text != "v1" || ref.Value.freed {
		t.Fatalf("in-flight request sees %+v, want live v1", ref.Value)
	}
	ref.Release()
	ref.Release() // a second release is a no-op
	if got := f.list(); len(got) != 1 || got[0] != "v1" {
		t.Fatalf("freed %v after the last request, want [v1]", got)
	}
	if !v1.Value.freed {
		t.Fatal("v1 not freed")
	}
	cur, err := h.Acquire()
	if err != nil || cur.Value.text != "v2" {
		t.Fatalf("Acquire after swap = %v, %v", cur, err)
	}
	cur.Release()
	h.Close()
	if got := f.list(); len(got) != 2 {
		t.Fatalf("Close did not free the last version: %v", got)
	}
}

func TestResolveDirectoryPicksNewest(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	write(t, filepath.Join(dir, "a.safetensors"), "a", now.Add(-time.Hour))
	write(t, filepath.Join(dir, "c.safetensors"), "c", now)
	write(t, filepath.Join(dir, "b.safetensors"), "b", now) // same mtime: the later name wins
	write(t, filepath.Join(dir, ".tmp.safetensors"), "tmp", now.Add(time.Hour))
	write(t, filepath.Join(dir, "notes.txt"), "x", now.Add(time.Hour))
	got, _, err := Resolve(dir)
	if err != nil || filepath.Base(got) != "c.safetensors" {
		t.Fatalf("Resolve = %q, %v; want c.safetensors", got, err)
	}
	if _, _, err := Resolve(t.TempDir()); err == nil {
		t.Fatal("Resolve of an empty directory succeeded")
	}
}

func TestWatchSwapsNewVersionsAndKeepsServingOnBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	write(t, filepath.Join(dir, "m1.safetensors"), "one", now.Add(-time.Minute))
	f := &freer{}
	swapped := make(chan string, 10)
	h := New(load, f.release, OnSwap(func(v *Version[*model]) { swapped <- v.Value.text }))
	errs := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Watch(ctx, dir, 5*time.Millisecond, func(err error) { errs <- err }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		h.Close()
	}()

	expect := func(want string) {
		t.Helper()
		select {
		case got := <-swapped:
			if got != want {
				t.Fatalf("swapped in %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no swap to %q", want)
		}
	}
	expect("one")
	if v := h.Current(); v.Digest != Digest([]byte("one")) || len(v.Short()) != 12 {
		t.Fatalf("digest %q short %q", v.Digest, v.Short())
	}

	write(t, filepath.Join(dir, "m2.safetensors"), "broken", now)
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("nil error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a broken file was not reported")
	}
	if v := h.Current(); v.Value.text != "one" {
		t.Fatalf("serving %q after a broken file, want still one", v.Value.text)
	}

	write(t, filepath.Join(dir, "m3.safetensors"), "three", now.Add(time.Minute))
	expect("three")
	if got := f.list(); len(got) != 1 || got[0] != "one" {
		t.Fatalf("freed %v, want [one]", got)
	}
}

func TestLoadChecksTheOfferedDigest(t *testing.T) {
	dir := t.TempDir()
	f := &freer{}
	h := New(load, f.release)
	defer h.Close()
	good := filepath.Join(dir, "good")
	write(t, good, "v1", time.Now())
	if swapped, err := h.Load(context.Background(), good, Digest([]byte("v1"))); err != nil || !swapped {
		t.Fatalf("Load(good) = %v, %v", swapped, err)
	}
	// The same content again: nothing to swap.
	if swapped, err := h.Load(context.Background(), good, ""); err != nil || swapped {
		t.Fatalf("Load(same) = %v, %v", swapped, err)
	}
	// Content that is not what the caller was promised is refused; v1 stays.
	other := filepath.Join(dir, "other")
	write(t, other, "v2", time.Now())
	_, err := h.Load(context.Background(), other, Digest([]byte("something else")))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Load(mismatch) = %v, want ErrDigestMismatch", err)
	}
	if cur := h.Current(); cur.Value.text != "v1" || cur.Path != good {
		t.Fatalf("after a refused load serving %q from %s", cur.Value.text, cur.Path)
	}
	// A file that fails to load keeps v1 too.
	broken := filepath.Join(dir, "broken")
	write(t, broken, "broken", time.Now())
	if _, err := h.Load(context.Background(), broken, Digest([]byte("broken"))); err == nil || errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Load(broken) = %v, want a load error", err)
	}
	if swapped, err := h.Load(context.Background(), other, Digest([]byte("v2"))); err != nil || !swapped {
		t.Fatalf("Load(v2) = %v, %v", swapped, err)
	}
	if cur := h.Current(); cur.Value.text != "v2" || cur.Digest != Digest([]byte("v2")) {
		t.Fatalf("serving %q %s, want v2", cur.Value.text, cur.Digest)
	}
	if got := f.list(); len(got) != 1 || got[0] != "v1" {
		t.Fatalf("freed %v, want [v1]", got)
	}
}
