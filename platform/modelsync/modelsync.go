// Package modelsync keeps a serving process on the version a model-registry
// alias points at (hirez.v1.ModelRegistryService, served by the trainer).
//
// A Syncer watches one model's alias (WatchModels: a snapshot, then events;
// the stream is re-opened with backoff whenever it breaks), downloads each new
// version into a local cache (chunked; resumed from the partial file after a
// broken stream or a restart; sha256 checked against the version's digest; fsync and
// rename, so the cache only ever holds complete files under their digest) and
// hands it to a Loader — a *hotswap.Holder, which loads it fully and then swaps
// it in without dropping requests.
//
// The cache is what keeps a replica serving when the registry is not there:
// on start-up the version the alias pointed at last (a small pointer file per
// alias, written atomically) is served at once, before the registry answers,
// and a registry outage later never takes the served version away. Cached
// files are checked against their digest before they are served; a corrupt
// one is logged, removed and ignored. The cache keeps the last few versions
// (Options.Keep) and never deletes the one being served; a partial download
// stays until the alias's version is served (at start-up the newest partial
// is kept, as the one a restart most likely broke).
//
// Cache layout, per model: <cache>/<model>/<sha256 hex>.safetensors for
// versions, <cache>/<model>/<alias>.alias holding the digest last served for
// that alias, and dot-files for downloads in progress.
package modelsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hirez-ml/hirez/platform/client"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// Loader receives the versions the Syncer fetched; *hotswap.Holder implements it.
// Load must verify that path's content has digest (a mismatch wraps
// hotswap.ErrDigestMismatch) and keep the current version on any error.
type Loader interface {
	Load(ctx context.Context, path, digest string) (bool, error)
}

var _ Loader = (*hotswap.Holder[int])(nil)

// Defaults for Options.
const (
	DefaultKeep       = 3
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Options configure a Syncer.
type Options struct {
	// Registry is the gRPC target of the registry (see platform/client).
	Registry string
	// Dial holds extra client options: TLS, and bufconn dialers in tests.
	Dial []client.Option
	// Model is the model name to follow; Alias the alias (default
	// limits.AliasProduction).
	Model, Alias string
	// CacheDir holds downloaded versions (a sub-directory per model).
	CacheDir string
	// Keep is how many versions the cache keeps (the served one included);
	// 0 means DefaultKeep.
	Keep int
	// ChunkSize is the download chunk size; 0 lets the registry choose.
	ChunkSize int32
	// MinBackoff and MaxBackoff bound the wait between reconnects and download
	// retries (doubling, with jitter); 0 means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives what the Syncer does; nil logs nothing.
	Logger *zap.Logger
}

// Syncer follows one alias; see the package doc.
type Syncer struct {
	opts   Options
	conn   *grpc.ClientConn
	rc     pb.ModelRegistryServiceClient
	loader Loader
	dir    string // CacheDir/Model
	log    *zap.Logger

	mu      sync.Mutex
	serving string // digest last handed to the loader successfully
}

// New checks opts and dials the registry (lazily: New succeeds while the
// registry is down). Close the Syncer when done.
func New(loader Loader, opts Options) (*Syncer, error) {
	opts.Alias = limits.DefaultVersion(opts.Alias)
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	switch {
	case opts.Registry == "":
		return nil, errors.New("modelsync: no registry address")
	case !limits.ValidName(opts.Model):
		return nil, fmt.Errorf("modelsync: %w", limits.CheckName("model name", opts.Model))
	case !limits.ValidName(opts.Alias):
		return nil, fmt.Errorf("modelsync: %w", limits.CheckName("alias", opts.Alias))
	case opts.CacheDir == "":
		return nil, errors.New("modelsync: no cache directory")
	case opts.Keep < 1:
		return nil, fmt.Errorf("modelsync: keep %d versions: want at least 1", opts.Keep)
	case opts.ChunkSize < 0 || opts.ChunkSize > pb.MaxDownloadChunkBytes:
		return nil, fmt.Errorf("modelsync: chunk size %d: use 0..%d", opts.ChunkSize, pb.MaxDownloadChunkBytes)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	// gRPC's own reconnect backoff grows to 2 minutes; capped at ours, a
	// registry that comes back is seen within MaxBackoff, not minutes later.
	reconnect := backoff.DefaultConfig
	reconnect.BaseDelay = min(reconnect.BaseDelay, opts.MinBackoff)
	reconnect.MaxDelay = opts.MaxBackoff
	dial := append([]client.Option{
		client.WithMaxMsgSize(pb.MaxMessageBytes, pb.MaxMessageBytes),
		client.WithDialOptions(grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: 5 * time.Second})),
	}, opts.Dial...)
	conn, err := client.Dial(opts.Registry, dial...)
	if err != nil {
		return nil, fmt.Errorf("modelsync: registry: %w", err)
	}
	return &Syncer{
		opts: opts, conn: conn, rc: pb.NewModelRegistryServiceClient(conn), loader: loader,
		dir: filepath.Join(opts.CacheDir, opts.Model),
		log: log.With(zap.String("model", opts.Model), zap.String("alias", opts.Alias)),
	}, nil
}

// Close closes the registry connection.
func (s *Syncer) Close() error { return s.conn.Close() }

// Serving returns the digest of the version last handed to the loader, or "".
func (s *Syncer) Serving() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serving
}

// Run serves the cached version, then follows the alias until ctx ends; it
// returns nil then. It returns an error only when the cache directory cannot
// be created. Call it once.
func (s *Syncer) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("model cache: %w", err)
	}
	s.log.Info("following registry alias", zap.String("registry", s.opts.Registry), zap.String("cache", s.dir), zap.Int("keep", s.opts.Keep))
	s.serveCached(ctx)
	want := make(chan string, 1)  // latest wins: the watcher replaces what the applier has not taken
	gone := make(chan string, 16) // versions deleted from the registry, for the applier to drop
	var wg sync.WaitGroup
	wg.Go(func() { s.watch(ctx, want, gone) })
	s.apply(ctx, want, gone)
	wg.Wait()
	return nil
}

// serveCached hands the loader the version the pointer file names or, when
// that is missing or corrupt, the newest other cached version that verifies.
func (s *Syncer) serveCached(ctx context.Context) {
	cands := s.cached()
	if d := s.readPointer(); d != "" {
		cands = append([]string{d}, withoutDigest(cands, d)...)
	}
	for _, d := range cands {
		path := s.file(d)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		_, err := s.loader.Load(ctx, path, d)
		if errors.Is(err, hotswap.ErrDigestMismatch) {
			s.log.Warn("cached version is corrupt; removed", zap.String("version", d), zap.Error(err))
			_ = os.Remove(path)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("cached version does not load; skipped", zap.String("version", d), zap.Error(err))
			continue
		}
		s.served(d, "") // the registry has not said what it wants yet: keep the newest partial
		s.log.Info("serving cached version until the registry says otherwise", zap.String("version", d), zap.String("path", path))
		return
	}
	s.log.Info("no usable cached version; waiting for the registry")
}

// watch keeps a WatchModels stream open and offers every digest the alias
// moves to; it reconnects with backoff and logs an outage once.
func (s *Syncer) watch(ctx context.Context, want, gone chan string) {
	backoff := s.opts.MinBackoff
	down := false
	up := func() {
		if down {
			s.log.Info("registry reachable again", zap.String("registry", s.opts.Registry))
		}
		down = false
		backoff = s.opts.MinBackoff
	}
	for {
		err := s.watchOnce(ctx, want, gone, up)
		if ctx.Err() != nil {
			return
		}
		if !down {
			s.log.Warn("registry unreachable; retrying (the served version, if any, stays)",
				zap.String("registry", s.opts.Registry), zap.String("serving", s.Serving()), zap.Error(err))
			down = true
		} else {
			s.log.Debug("registry still unreachable", zap.Error(err))
		}
		if !sleep(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// watchOnce runs one stream until it breaks; up is called on its snapshot.
func (s *Syncer) watchOnce(ctx context.Context, want, gone chan string, up func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.rc.WatchModels(ctx, &pb.WatchModelsRequest{Models: []string{s.opts.Model}})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errors.New("the registry ended the watch stream")
		}
		if err != nil {
			return err
		}
		switch c := msg.GetChange().(type) {
		case *pb.WatchModelsResponse_Snapshot:
			up()
			digest := ""
			for _, m := range c.Snapshot.GetModels() {
				if m.GetName() == s.opts.Model {
					digest = m.GetAliases()[s.opts.Alias]
				}
			}
			if digest == "" {
				s.log.Warn("the registry has no such model or alias yet; waiting for it")
				continue
			}
			s.offer(want, digest)
		case *pb.WatchModelsResponse_Event:
			e := c.Event
			if e.GetModel() == s.opts.Model && e.GetType() == pb.ModelEventType_MODEL_EVENT_TYPE_VERSION_DELETED {
				select {
				case gone <- e.GetVersion():
				default: // the cache bound removes it later
				}
				continue
			}
			if e.GetModel() != s.opts.Model || e.GetAlias() != s.opts.Alias {
				continue
			}
			switch e.GetType() {
			case pb.ModelEventType_MODEL_EVENT_TYPE_ALIAS_SET:
				s.log.Info("alias moved", zap.String("version", e.GetVersion()), zap.String("previous", e.GetPreviousVersion()))
				s.offer(want, e.GetVersion())
			case pb.ModelEventType_MODEL_EVENT_TYPE_ALIAS_REMOVED:
				s.log.Warn("alias removed; keeping the current version", zap.String("serving", s.Serving()))
			}
		}
	}
}

// offer puts digest in the one-slot mailbox, replacing what is there.
func (s *Syncer) offer(want chan string, digest string) {
	if !pb.IsDigest(digest) {
		s.log.Warn("the registry sent a malformed version digest; ignored", zap.String("version", digest))
		return
	}
	select {
	case <-want:
	default:
	}
	want <- digest // the watcher is the only sender, so the slot is free now
}

// errUnloadable marks a verified file the loader refused: retrying it cannot
// help, so it is not retried until the alias moves again.
var errUnloadable = errors.New("unloadable")

// apply fetches and loads the digests the watcher offers, retrying failures
// with backoff until they succeed or a newer digest arrives.
func (s *Syncer) apply(ctx context.Context, want, gone chan string) {
	var (
		pending, refused string
		backoff          = s.opts.MinBackoff
		failures         int
		retry            *time.Timer
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var retryC <-chan time.Time
		if retry != nil {
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			return
		case d := <-want:
			if d != pending {
				pending, backoff, failures = d, s.opts.MinBackoff, 0
			}
			if d != refused {
				refused = "" // the alias moved on: a later move back tries it again
			}
		case d := <-gone:
			s.forget(d)
			continue
		case <-retryC:
		}
		if retry != nil {
			retry.Stop()
			retry = nil
		}
		if pending == "" || pending == s.Serving() || pending == refused {
			pending = ""
			continue
		}
		err := s.fetchAndLoad(ctx, pending)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if failures > 0 {
				s.log.Info("version fetched after retries", zap.String("version", pending), zap.Int("failures", failures))
			}
			pending = ""
		case errors.Is(err, errUnloadable):
			s.log.Error("version does not load; keeping the current one until the alias moves",
				zap.String("version", pending), zap.String("serving", s.Serving()), zap.Error(err))
			refused, pending = pending, ""
		default:
			failures++
			lvl := zap.WarnLevel
			if failures > 1 {
				lvl = zap.DebugLevel // said once per version; the watcher reports outages
			}
			s.log.Log(lvl, "fetching version failed; keeping the current one and retrying",
				zap.String("version", pending), zap.String("serving", s.Serving()), zap.Int("failures", failures), zap.Error(err))
			retry = time.NewTimer(jitter(backoff))
			backoff = min(2*backoff, s.opts.MaxBackoff)
		}
	}
}

// forget drops a version the registry deleted from the cache, unless it is
// the one being served: that stays, file included, as the fallback for a
// restart until the alias moves to a version that can be fetched.
func (s *Syncer) forget(digest string) {
	if !pb.IsDigest(digest) {
		return
	}
	if digest == s.Serving() {
		s.log.Warn("the served version was deleted from the registry; keeping it", zap.String("version", digest))
		return
	}
	_ = os.Remove(s.partialFile(digest))
	if err := os.Remove(s.file(digest)); err == nil {
		s.log.Info("removed cached version deleted from the registry", zap.String("version", digest))
	}
}

// fetchAndLoad makes digest the served version: from the cache when a
// verified copy is there, else downloaded.
func (s *Syncer) fetchAndLoad(ctx context.Context, digest string) error {
	path := s.file(digest)
	if _, err := os.Stat(path); err == nil {
		_, err := s.loader.Load(ctx, path, digest)
		switch {
		case err == nil:
			s.served(digest, digest)
			s.log.Info("swapped to cached version", zap.String("version", digest))
			return nil
		case errors.Is(err, hotswap.ErrDigestMismatch):
			s.log.Warn("cached version is corrupt; downloading it again", zap.String("version", digest), zap.Error(err))
			_ = os.Remove(path)
		default:
			return fmt.Errorf("%w: %w", errUnloadable, err)
		}
	}
	start := time.Now()
	size, err := s.download(ctx, digest, path)
	if err != nil {
		return err
	}
	s.log.Info("downloaded version", zap.String("version", digest), zap.Int64("bytes", size), zap.Duration("took", time.Since(start)))
	if _, err := s.loader.Load(ctx, path, digest); err != nil {
		if errors.Is(err, hotswap.ErrDigestMismatch) { // changed on disk since it was verified
			_ = os.Remove(path)
			return err
		}
		return fmt.Errorf("%w: %w", errUnloadable, err)
	}
	s.served(digest, digest)
	s.log.Info("swapped", zap.String("version", digest))
	return nil
}

// served records digest as the served version: the pointer file names it, its
// file counts as the newest, and the cache is trimmed (see prune for
// keepPartial: once the alias's version is served, other partials are stale).
// Serving changes last, once the cache is in its new state.
func (s *Syncer) served(digest, keepPartial string) {
	now := time.Now()
	_ = os.Chtimes(s.file(digest), now, now) // recency for the cache bound
	if err := s.writePointer(digest); err != nil {
		s.log.Warn("cannot record the served version in the cache", zap.Error(err))
	}
	s.prune(digest, keepPartial)
	s.mu.Lock()
	s.serving = digest
	s.mu.Unlock()
}

// download fetches digest into path, resuming from a partial file left by a
// broken stream; it returns the size.
func (s *Syncer) download(ctx context.Context, digest, path string) (int64, error) {
	part := s.partialFile(digest)
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	off := fi.Size()
	total, err := s.fetch(ctx, digest, f, off)
	if err != nil {
		if status.Code(err) == codes.InvalidArgument && off > 0 {
			_ = f.Truncate(0) // the offset no longer fits: start over next time
		}
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	got, err := fileDigest(f)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	if got != digest {
		_ = os.Remove(part) // start over: a resumed part may be what was wrong
		return 0, fmt.Errorf("download %s: content is %s: %w", digest, got, hotswap.ErrDigestMismatch)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	if err := os.Rename(part, path); err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	if err := syncDir(s.dir); err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	return total, nil
}

// fetch streams digest from offset off into f and returns the file size.
func (s *Syncer) fetch(ctx context.Context, digest string, f *os.File, off int64) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.rc.DownloadModel(ctx, &pb.DownloadModelRequest{
		Ref: &pb.ModelRef{Name: s.opts.Model, Version: digest}, Offset: off, ChunkSize: s.opts.ChunkSize})
	if err != nil {
		return 0, err
	}
	hexsum := strings.TrimPrefix(digest, pb.DigestPrefix)
	total := int64(-1)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if total >= 0 && off == total {
				return total, nil
			}
			return 0, fmt.Errorf("stream ended at byte %d of %d", off, total)
		}
		if err != nil {
			return 0, err
		}
		switch {
		case msg.GetSha256() != hexsum:
			return 0, fmt.Errorf("the registry sent sha256 %q for %s: %w", msg.GetSha256(), digest, hotswap.ErrDigestMismatch)
		case total >= 0 && msg.GetTotalSize() != total:
			return 0, fmt.Errorf("total size changed from %d to %d mid-stream", total, msg.GetTotalSize())
		case msg.GetOffset() != off:
			return 0, fmt.Errorf("chunk at byte %d, want %d", msg.GetOffset(), off)
		case off+int64(len(msg.GetData())) > msg.GetTotalSize():
			return 0, fmt.Errorf("chunk at byte %d of %d bytes runs past the end (%d)", off, len(msg.GetData()), msg.GetTotalSize())
		}
		total = msg.GetTotalSize()
		if _, err := f.WriteAt(msg.GetData(), off); err != nil {
			return 0, err
		}
		off += int64(len(msg.GetData()))
	}
}

// jitter spreads d over [d/2, d) so that replicas do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
