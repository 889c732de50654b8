package modelsync

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/platform/servertest"
	"github.com/hirez-ml/hirez/platform/tlsconfig"
	"github.com/hirez-ml/hirez/platform/tlsconfig/tlstest"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const model = "gen"

// registry is a small but real ModelRegistryService over TCP: one model, real
// bytes with their real sha256 digests, a snapshot-then-events watch, chunked
// downloads with offsets. The trainer's own registry lives in
// services/trainer/internal and cannot be imported here; gateway/e2e runs
// against the real trainer binary.
type registry struct {
	pb.UnimplementedModelRegistryServiceServer

	mu       sync.Mutex
	files    map[string][]byte // digest → content
	aliases  map[string]string // alias → digest
	watchers map[chan *pb.ModelEvent]struct{}
	corrupt  int     // the next corrupt downloads get a flipped byte
	breakOne int     // the next breakOne downloads end with UNAVAILABLE after one chunk
	offsets  []int64 // offset of every DownloadModel request

	addr    string
	srvOpts []grpc.ServerOption
	srv     *servertest.Bare
}

func newRegistry(t *testing.T, opts ...grpc.ServerOption) *registry {
	t.Helper()
	r := &registry{files: map[string][]byte{}, aliases: map[string]string{}, watchers: map[chan *pb.ModelEvent]struct{}{}, srvOpts: opts}
	r.start(t, "127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

// start serves on addr (again, after stop, on the address it had).
func (r *registry) start(t *testing.T, addr string) {
	t.Helper()
	r.srv = servertest.ServeBareAt(t, addr, func(srv *grpc.Server) { pb.RegisterModelRegistryServiceServer(srv, r) }, r.srvOpts...)
	r.addr = r.srv.Addr
}

// stop takes the registry down: open streams break, connections are refused.
func (r *registry) stop() {
	if r.srv == nil {
		return
	}
	r.srv.Stop()
	r.srv = nil
}

// add stores a version and returns its digest.
func (r *registry) add(content string) string {
	d := hotswap.Digest([]byte(content))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[d] = []byte(content)
	return d
}

// setAlias points alias at digest and tells the watchers.
func (r *registry) setAlias(alias, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.aliases[alias]
	r.aliases[alias] = digest
	ev := &pb.ModelEvent{Type: pb.ModelEventType_MODEL_EVENT_TYPE_ALIAS_SET, Model: model, Alias: alias, Version: digest, PreviousVersion: prev}
	for w := range r.watchers {
		w <- ev
	}
}

// deleteVersion removes a version and tells the watchers.
func (r *registry) deleteVersion(digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.files, digest)
	ev := &pb.ModelEvent{Type: pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_DELETED, Model: model, Version: digest}
	for w := range r.watchers {
		w <- ev
	}
}

func (r *registry) downloadOffsets() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.offsets)
}

func (r *registry) WatchModels(req *pb.WatchModelsRequest, stream pb.ModelRegistryService_WatchModelsServer) error {
	ch := make(chan *pb.ModelEvent, 64)
	r.mu.Lock()
	snap := &pb.ModelsSnapshot{}
	if len(r.files) > 0 && (len(req.GetModels()) == 0 || slices.Contains(req.GetModels(), model)) {
		aliases := map[string]string{}
		for a, d := range r.aliases {
			aliases[a] = d
		}
		snap.Models = append(snap.Models, &pb.Model{Name: model, Aliases: aliases, VersionCount: int32(len(r.files))})
	}
	r.watchers[ch] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.watchers, ch)
		r.mu.Unlock()
	}()
	if err := stream.Send(&pb.WatchModelsResponse{Change: &pb.WatchModelsResponse_Snapshot{Snapshot: snap}}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev := <-ch:
			if err := stream.Send(&pb.WatchModelsResponse{Change: &pb.WatchModelsResponse_Event{Event: ev}}); err != nil {
				return err
			}
		}
	}
}

func (r *registry) DownloadModel(req *pb.DownloadModelRequest, stream pb.ModelRegistryService_DownloadModelServer) error {
	r.mu.Lock()
	data, ok := r.files[req.GetRef().GetVersion()]
	corrupt, breakOne := r.corrupt > 0, r.breakOne > 0
	if corrupt {
		r.corrupt--
	}
	if breakOne {
		r.breakOne--
	}
	r.offsets = append(r.offsets, req.GetOffset())
	r.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "no version %s", req.GetRef().GetVersion())
	}
	off := req.GetOffset()
	if off < 0 || off > int64(len(data)) {
		return status.Errorf(codes.InvalidArgument, "offset %d is outside the file", off)
	}
	if corrupt {
		data = slices.Clone(data)
		data[len(data)-1] ^= 0xff
	}
	chunk := int64(req.GetChunkSize())
	if chunk == 0 {
		chunk = 1 << 10
	}
	sum := strings.TrimPrefix(req.GetRef().GetVersion(), pb.DigestPrefix)
	for first := true; first || off < int64(len(data)); first = false {
		end := min(off+chunk, int64(len(data)))
		if err := stream.Send(&pb.DownloadModelResponse{Offset: off, Data: data[off:end], TotalSize: int64(len(data)), Sha256: sum}); err != nil {
			return err
		}
		off = end
		if breakOne {
			return status.Error(codes.Unavailable, "connection lost (test)")
		}
	}
	return nil
}

// loads records every content the holder built a model from.
type loads struct {
	mu   sync.Mutex
	seen []string
}

func (l *loads) load(_ context.Context, _ string, data []byte) (string, error) {
	if strings.HasPrefix(string(data), "unloadable") {
		return "", errors.New("not a model")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, string(data))
	return string(data), nil
}

func (l *loads) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// syncer is a running Syncer feeding a real hotswap.Holder.
type syncer struct {
	*Syncer
	holder *hotswap.Holder[string]
	loads  *loads
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	done   chan error
}

func startSyncer(t *testing.T, addr, cache string, mod func(*Options)) *syncer {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	l := &loads{}
	h := hotswap.New(l.load, nil)
	opts := Options{Registry: addr, Model: model, CacheDir: cache, ChunkSize: 7,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: zap.New(core)}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncer{Syncer: s, holder: h, loads: l, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { out.done <- s.Run(ctx) }()
	t.Cleanup(out.stop)
	return out
}

func (s *syncer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	<-s.done
	s.Close()
	s.holder.Close()
}

// serving returns what the holder serves now ("" for nothing).
func (s *syncer) serving() string {
	ref, err := s.holder.Acquire()
	if err != nil {
		return ""
	}
	defer ref.Release()
	return ref.Value
}

func (s *syncer) waitServing(t *testing.T, content string) {
	t.Helper()
	d := hotswap.Digest([]byte(content))
	waitFor(t, "serving "+content, func() bool { return s.serving() == content && s.Serving() == d })
}

func (s *syncer) count(msg string) int { return s.logs.FilterMessage(msg).Len() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cacheFiles(t *testing.T, cache string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(cache, model))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func versionFile(cache, digest string) string {
	return filepath.Join(cache, model, strings.TrimPrefix(digest, pb.DigestPrefix)+hotswap.Ext)
}

func TestFollowsTheAliasAndSwaps(t *testing.T) {
	r := newRegistry(t)
	v1 := r.add("version one, a few chunks long")
	r.setAlias(pb.AliasProduction, v1)
	r.setAlias(pb.AliasCandidate, r.add("a candidate nobody promoted"))
	cache := t.TempDir()
	s := startSyncer(t, r.addr, cache, nil)
	s.waitServing(t, "version one, a few chunks long")
	if s.holder.Current().Digest != v1 || s.Serving() != v1 {
		t.Fatalf("holder %s, syncer %s; want %s", s.holder.Current().Digest, s.Serving(), v1)
	}

	v2 := r.add("version two")
	r.setAlias(pb.AliasProduction, v2)
	s.waitServing(t, "version two")
	ptr, err := os.ReadFile(filepath.Join(cache, model, "production.alias"))
	if err != nil || strings.TrimSpace(string(ptr)) != v2 {
		t.Fatalf("pointer file %q, %v; want %s", ptr, err, v2)
	}
	for _, d := range []string{v1, v2} {
		if _, err := os.Stat(versionFile(cache, d)); err != nil {
			t.Fatalf("cached version: %v", err)
		}
	}
	// Other aliases are none of its business.
	r.setAlias(pb.AliasCandidate, r.add("another candidate"))
	// Back to v1 (a rollback): served from the cache, not downloaded again.
	downloads := len(r.downloadOffsets())
	r.setAlias(pb.AliasProduction, v1)
	s.waitServing(t, "version one, a few chunks long")
	if got := len(r.downloadOffsets()); got != downloads {
		t.Fatalf("%d downloads after a rollback to a cached version, want %d", got, downloads)
	}
	if got := s.loads.list(); !slices.Equal(got, []string{"version one, a few chunks long", "version two", "version one, a few chunks long"}) {
		t.Fatalf("loaded %q", got)
	}
	for _, msg := range []string{"following registry alias", "downloaded version", "swapped", "swapped to cached version"} {
		if s.count(msg) == 0 {
			t.Errorf("no %q log", msg)
		}
	}
	if n := s.count("registry unreachable; retrying (the served version, if any, stays)"); n != 0 {
		t.Errorf("%d outage logs with the registry up", n)
	}
}

func TestRegistryDownAtStartServesTheCache(t *testing.T) {
	r := newRegistry(t)
	v1 := r.add("cached one")
	r.setAlias(pb.AliasProduction, v1)
	cache := t.TempDir()
	first := startSyncer(t, r.addr, cache, nil)
	first.waitServing(t, "cached one")
	first.stop()
	addr := r.addr
	r.stop()

	// A restart with the registry down: the cached version is served at once,
	// the outage is logged once however many retries it takes.
	s := startSyncer(t, addr, cache, nil)
	s.waitServing(t, "cached one")
	waitFor(t, "a few retries", func() bool { return s.count("registry still unreachable") >= 3 })
	if n := s.count("registry unreachable; retrying (the served version, if any, stays)"); n != 1 {
		t.Fatalf("%d outage logs, want 1", n)
	}

	// The registry comes back with the alias moved: the syncer catches up.
	v2 := r.add("newer one")
	r.mu.Lock()
	r.aliases[pb.AliasProduction] = v2 // moved while the syncer could not see it
	r.mu.Unlock()
	r.start(t, addr)
	s.waitServing(t, "newer one")
	if s.count("registry reachable again") != 1 {
		t.Fatal("no log of the registry coming back")
	}
	if s.holder.Current().Digest != v2 {
		t.Fatalf("serving %s, want %s", s.holder.Current().Digest, v2)
	}
}

func TestCorruptCacheIsIgnored(t *testing.T) {
	r := newRegistry(t)
	v1, v2 := r.add("good old"), r.add("good new")
	r.setAlias(pb.AliasProduction, v1)
	cache := t.TempDir()
	first := startSyncer(t, r.addr, cache, nil)
	first.waitServing(t, "good old")
	r.setAlias(pb.AliasProduction, v2)
	first.waitServing(t, "good new")
	first.stop()
	addr := r.addr
	r.stop()

	// The newest (pointed-at) file is damaged on disk: the older good one is
	// served and the damaged one removed.
	if err := os.WriteFile(versionFile(cache, v2), []byte("good nex"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSyncer(t, addr, cache, nil)
	s.waitServing(t, "good old")
	if _, err := os.Stat(versionFile(cache, v2)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt cached file still there: %v", err)
	}
	if s.count("cached version is corrupt; removed") != 1 {
		t.Fatal("corrupt cache file not logged")
	}
	s.stop()

	// Only a damaged file: nothing is served (NOT_SERVING), nothing corrupt loaded.
	if err := os.WriteFile(versionFile(cache, v1), []byte("bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = startSyncer(t, addr, cache, nil)
	waitFor(t, "the outage log", func() bool { return s.count("registry unreachable; retrying (the served version, if any, stays)") == 1 })
	if got := s.serving(); got != "" {
		t.Fatalf("serving %q from a corrupt cache", got)
	}
	if got := s.loads.list(); len(got) != 0 {
		t.Fatalf("loaded %q", got)
	}
	// And when the registry is back, the good version is downloaded again.
	r.start(t, addr)
	s.waitServing(t, "good new")
}

func TestRegistryGoesDownMidRunAndRecovers(t *testing.T) {
	r := newRegistry(t)
	v1 := r.add("first")
	r.setAlias(pb.AliasProduction, v1)
	s := startSyncer(t, r.addr, t.TempDir(), nil)
	s.waitServing(t, "first")
	addr := r.addr
	r.stop()
	waitFor(t, "a few retries", func() bool { return s.count("registry still unreachable") >= 3 })
	if got := s.serving(); got != "first" {
		t.Fatalf("serving %q during the outage", got)
	}
	if n := s.count("registry unreachable; retrying (the served version, if any, stays)"); n != 1 {
		t.Fatalf("%d outage logs, want 1", n)
	}
	r.start(t, addr)
	waitFor(t, "reconnect", func() bool { return s.count("registry reachable again") == 1 })
	r.setAlias(pb.AliasProduction, r.add("second"))
	s.waitServing(t, "second")

	// A second outage is logged once more.
	r.stop()
	waitFor(t, "the second outage log", func() bool {
		return s.count("registry unreachable; retrying (the served version, if any, stays)") == 2
	})
	if got := s.serving(); got != "second" {
		t.Fatalf("serving %q during the second outage", got)
	}
}

func TestCorruptDownloadIsNotSwappedAndIsRetried(t *testing.T) {
	r := newRegistry(t)
	v1 := r.add("trusted")
	r.setAlias(pb.AliasProduction, v1)
	cache := t.TempDir()
	s := startSyncer(t, r.addr, cache, nil)
	s.waitServing(t, "trusted")

	r.mu.Lock()
	r.corrupt = 2
	r.mu.Unlock()
	v2 := r.add("replacement, arrives damaged twice")
	r.setAlias(pb.AliasProduction, v2)
	s.waitServing(t, "replacement, arrives damaged twice")
	if got := s.loads.list(); !slices.Equal(got, []string{"trusted", "replacement, arrives damaged twice"}) {
		t.Fatalf("loaded %q: a damaged download reached the holder", got)
	}
	failed := s.logs.FilterMessage("fetching version failed; keeping the current one and retrying").All()
	if len(failed) != 2 || !strings.Contains(fmt.Sprint(failed[0].ContextMap()["error"]), "digest mismatch") {
		t.Fatalf("failure logs %v", failed)
	}
	if failed[0].Level != zapcore.WarnLevel || failed[1].Level != zapcore.DebugLevel {
		t.Fatalf("failure log levels %v, %v: want the first at warn, repeats at debug", failed[0].Level, failed[1].Level)
	}
	if len(r.downloadOffsets()) != 1+3 {
		t.Fatalf("downloads at %v, want 4", r.downloadOffsets())
	}
	for _, n := range cacheFiles(t, cache) {
		if strings.HasSuffix(n, partialExt) {
			t.Fatalf("partial download %s left in the cache", n)
		}
	}
}

func TestBrokenDownloadResumes(t *testing.T) {
	r := newRegistry(t)
	r.mu.Lock()
	r.breakOne = 2
	r.mu.Unlock()
	content := "twenty-one bytes long"
	r.setAlias(pb.AliasProduction, r.add(content))
	s := startSyncer(t, r.addr, t.TempDir(), nil)
	s.waitServing(t, content)
	// Chunks of 7: two broken streams of one chunk each, then the rest.
	if got := r.downloadOffsets(); !slices.Equal(got, []int64{0, 7, 14}) {
		t.Fatalf("download offsets %v, want [0 7 14]", got)
	}
}

// TestRestartResumesThePartialDownload: a download broken by a restart (not
// just by a stream) is resumed from the partial file the previous process
// left, although the restart first serves the cached version and trims the
// cache; a stale partial (an older download the alias moved away from) is
// removed.
func TestRestartResumesThePartialDownload(t *testing.T) {
	r := newRegistry(t)
	r.setAlias(pb.AliasProduction, r.add("served before"))
	cache := t.TempDir()
	// A retry backoff far longer than the test: after its broken download the
	// first process waits, and is stopped, with the partial file on disk.
	first := startSyncer(t, r.addr, cache, func(o *Options) { o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour })
	first.waitServing(t, "served before")
	r.mu.Lock()
	r.breakOne = 1
	r.mu.Unlock()
	content := "twenty-one bytes long"
	v2 := r.add(content)
	r.setAlias(pb.AliasProduction, v2)
	waitFor(t, "the broken download", func() bool {
		return first.count("fetching version failed; keeping the current one and retrying") == 1
	})
	first.stop()
	part := filepath.Join(cache, model, "."+strings.TrimPrefix(v2, pb.DigestPrefix)+partialExt)
	if fi, err := os.Stat(part); err != nil || fi.Size() != 7 {
		t.Fatalf("partial file after the broken download: %v, %v; want 7 bytes", fi, err)
	}
	stale := filepath.Join(cache, model, "."+strings.TrimPrefix(hotswap.Digest([]byte("abandoned")), pb.DigestPrefix)+partialExt)
	if err := os.WriteFile(stale, []byte("aban"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	s := startSyncer(t, r.addr, cache, nil)
	s.waitServing(t, content)
	// The first process fetched v1 from 0 and v2's first chunk; the restart
	// asks for the rest of v2 only.
	if got := r.downloadOffsets(); !slices.Equal(got, []int64{0, 0, 7}) {
		t.Fatalf("download offsets %v, want [0 0 7]: the restart did not resume the partial file", got)
	}
	for _, n := range cacheFiles(t, cache) {
		if strings.HasSuffix(n, partialExt) {
			t.Fatalf("partial download %s left in the cache after the alias's version is served", n)
		}
	}
	if s.count("removed a stale partial download") != 1 {
		t.Fatal("the stale partial was not removed (or not logged)")
	}
}

func TestUnloadableVersionIsNotRetriedUntilTheAliasMoves(t *testing.T) {
	r := newRegistry(t)
	r.setAlias(pb.AliasProduction, r.add("ok"))
	s := startSyncer(t, r.addr, t.TempDir(), nil)
	s.waitServing(t, "ok")
	bad := r.add("unloadable: wrong kind of model")
	r.setAlias(pb.AliasProduction, bad)
	const refused = "version does not load; keeping the current one until the alias moves"
	waitFor(t, "the refusal log", func() bool { return s.count(refused) == 1 })
	if got := s.serving(); got != "ok" {
		t.Fatalf("serving %q", got)
	}
	r.setAlias(pb.AliasProduction, r.add("fixed"))
	s.waitServing(t, "fixed")
	if n := len(r.downloadOffsets()); n != 3 {
		t.Fatalf("%d downloads, want 3 (the unloadable one once)", n)
	}
	// Moved back to it, it is tried again (from the cache) and refused again.
	r.setAlias(pb.AliasProduction, bad)
	waitFor(t, "the second refusal log", func() bool { return s.count(refused) == 2 })
	if got := s.serving(); got != "fixed" {
		t.Fatalf("serving %q", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	r := newRegistry(t)
	cache := t.TempDir()
	var digests []string
	var s *syncer
	for i := range 5 {
		content := fmt.Sprintf("version %d", i)
		d := r.add(content)
		digests = append(digests, d)
		r.setAlias(pb.AliasProduction, d)
		if s == nil {
			s = startSyncer(t, r.addr, cache, func(o *Options) { o.Keep = 2 })
		}
		s.waitServing(t, content)
		var versions []string
		for _, n := range cacheFiles(t, cache) {
			if strings.HasSuffix(n, hotswap.Ext) {
				versions = append(versions, n)
			}
		}
		want := []string{filepath.Base(versionFile(cache, d))}
		if i > 0 {
			want = append(want, filepath.Base(versionFile(cache, digests[i-1])))
		}
		slices.Sort(want)
		if !slices.Equal(versions, want) {
			t.Fatalf("after version %d the cache holds %v, want %v", i, versions, want)
		}
	}
}

func TestMutualTLSFromFlags(t *testing.T) {
	pki := tlstest.New(t)
	tc, err := tlsconfig.Server(pki.ServerCert, pki.ServerKey, pki.CA) // client certificates required
	if err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, grpc.Creds(credentials.NewTLS(tc)))
	r.setAlias(pb.AliasProduction, r.add("over mTLS"))
	flagOpts := func(args ...string) func(*Options) {
		return func(o *Options) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			f := RegisterFlags(fs)
			if err := fs.Parse(append([]string{"--registry", r.addr, "--model-name", model, "--model-cache", o.CacheDir}, args...)); err != nil {
				t.Fatal(err)
			}
			if err := f.Validate(); err != nil {
				t.Fatal(err)
			}
			fo := f.Options(o.Logger)
			o.Dial = fo.Dial
		}
	}
	s := startSyncer(t, r.addr, t.TempDir(), flagOpts("--registry-tls-ca", pki.CA, "--registry-tls-cert", pki.ClientCert, "--registry-tls-key", pki.ClientKey))
	s.waitServing(t, "over mTLS")

	// Without a client certificate the registry refuses the connection: an
	// outage, logged, nothing served.
	anon := startSyncer(t, r.addr, t.TempDir(), flagOpts("--registry-tls-ca", pki.CA))
	waitFor(t, "the outage log", func() bool {
		return anon.count("registry unreachable; retrying (the served version, if any, stays)") == 1
	})
	if got := anon.serving(); got != "" {
		t.Fatalf("served %q without a client certificate", got)
	}
}

func TestDeletedVersionsLeaveTheCache(t *testing.T) {
	r := newRegistry(t)
	v1, v2 := r.add("one"), r.add("two")
	r.setAlias(pb.AliasProduction, v1)
	cache := t.TempDir()
	s := startSyncer(t, r.addr, cache, nil)
	s.waitServing(t, "one")
	r.setAlias(pb.AliasProduction, v2)
	s.waitServing(t, "two")
	r.deleteVersion(v1)
	waitFor(t, "v1 removed from the cache", func() bool {
		_, err := os.Stat(versionFile(cache, v1))
		return errors.Is(err, os.ErrNotExist)
	})
	// The served version stays, file and all, even when the registry drops it.
	r.deleteVersion(v2)
	waitFor(t, "the log", func() bool { return s.count("the served version was deleted from the registry; keeping it") == 1 })
	if _, err := os.Stat(versionFile(cache, v2)); err != nil {
		t.Fatalf("served version's file: %v", err)
	}
	if got := s.serving(); got != "two" {
		t.Fatalf("serving %q", got)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // substring of the error; "" = valid
	}{
		{"off", nil, ""},
		{"on", []string{"--registry", "trainer:9003", "--model-name", "dcgan", "--model-cache", "/tmp/c"}, ""},
		{"name without registry", []string{"--model-name", "dcgan"}, "--model-name (HIREZ_MODEL_NAME) is set but --registry is not"},
		{"no name", []string{"--registry", "t:1", "--model-cache", "/c"}, "--model-name (HIREZ_MODEL_NAME) is required"},
		{"bad name", []string{"--registry", "t:1", "--model-name", "../x", "--model-cache", "/c"}, `"../x"`},
		{"bad alias", []string{"--registry", "t:1", "--model-name", "g", "--model-alias", "Prod", "--model-cache", "/c"}, "--model-alias"},
		{"no cache", []string{"--registry", "t:1", "--model-name", "g"}, "--model-cache (HIREZ_MODEL_CACHE) is required"},
		{"keep 0", []string{"--registry", "t:1", "--model-name", "g", "--model-cache", "/c", "--model-cache-keep", "0"}, "keep at least 1"},
		{"cert without key", []string{"--registry", "t:1", "--model-name", "g", "--model-cache", "/c", "--registry-tls-cert", "c.pem"}, "must be given together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			f := RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := f.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
