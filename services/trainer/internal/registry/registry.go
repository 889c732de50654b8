// Package registry keeps versioned models: immutable safetensors files named by
// the sha256 of their bytes under <data-dir>/models/<name>/, their records and
// the aliases that point at them in SQLite, a promotion gate that evaluates a
// candidate against production on the same evaluation set, and a change feed
// for the serving services. It knows nothing of gRPC.
package registry

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/atomicfile"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/services/trainer/internal/page"
	"github.com/hirez-ml/hirez/services/trainer/internal/pubsub"
)

// Kind is what a model computes.
type Kind int

// Kinds; the numbers match hirez.v1.ModelKind for readability only.
const (
	KindUnspecified Kind = iota
	KindDCGANGenerator
	KindUpsampler
	KindSRCNN
	KindESPCN
)

var kindNames = map[Kind]string{
	KindDCGANGenerator: "dcgan-generator", KindUpsampler: "upsampler",
	KindSRCNN: "srcnn", KindESPCN: "espcn",
}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is a known, specified kind.
func (k Kind) Valid() bool { _, ok := kindNames[k]; return ok }

// Generator reports whether the kind maps a latent to an image (judged by SWD);
// the others are x2 upscalers (judged by PSNR).
func (k Kind) Generator() bool { return k == KindDCGANGenerator }

// Metadata keys the trainer writes into published files beside the engine's.
const (
	MetaDataset   = "hirez.dataset"    // dataset the model was trained on, relative to the data dir
	MetaSourceJob = "hirez.source_job" // "jobs/<id>"
	MetaKind      = "hirez.model_kind"
)

// Version is one immutable model file.
type Version struct {
	Model     string
	Digest    string // "sha256:<hex>"
	Kind      Kind
	Preset    string
	Aliases   []string
	Size      int64
	ImageSize int
	LatentDim int
	SourceJob string
	Metrics   map[string]float64
	Metadata  map[string]string
	Created   time.Time
}

// Model is a named series of versions.
type Model struct {
	Name         string
	Kind         Kind
	Aliases      map[string]string
	VersionCount int
	Created      time.Time
	Updated      time.Time
}

// EventType says what changed.
type EventType int

// Event types.
const (
	VersionCreated EventType = iota + 1
	AliasSet
	AliasRemoved
	VersionDeleted
)

// Event is one registry change.
type Event struct {
	Type     EventType
	Model    string
	Version  string
	Alias    string
	Previous string
	Time     time.Time
}

// Change is what a watcher receives: Snapshot first, then one Event each.
type Change struct {
	Snapshot []Model
	Event    *Event
}

// Score is a model's value on an evaluation set.
type Score struct {
	Metric         string
	HigherIsBetter bool
	Value          float64
}

// Evaluator scores a model file on the images in evalDir.
type Evaluator interface {
	Evaluate(ctx context.Context, v Version, path, evalDir string) (Score, error)
}

// Canary is PromoteModel's check.
type Canary struct {
	Score
	Old      *float64
	Passed   bool
	Refusal  string
	OldValue string // production digest the old value belongs to
}

// Promotion is PromoteModel's outcome.
type Promotion struct {
	Promoted bool
	Version  Version
	Previous string
	Canary   Canary
}

// Registry is the model registry. Safe for concurrent use.
type Registry struct {
	db      *sql.DB
	dataDir string
	root    string // <data-dir>/models
	eval    Evaluator
	now     func() time.Time

	mu    sync.Mutex // serialises writes with the change feed and snapshots
	topic *pubsub.Topic[Change]
	inUse InUse
	keep  int
	log   *zap.Logger
}

// InUse says why a version must be kept although no alias points at it (a
// job that has not finished starts from it), or "" when nothing needs it.
type InUse func(ctx context.Context, model, digest string) (string, error)

// Retain sets what deletion respects beyond aliases: inUse (may be nil) and
// keep, the number of newest versions of a model that Publish keeps (0 = all;
// older versions without an alias and not in use are deleted). Call it before
// the registry is used.
func (r *Registry) Retain(inUse InUse, keep int) {
	r.inUse, r.keep = inUse, keep
}

// SetLogger sets where the registry reports what fails after a change has
// been committed (retention, removing a deleted version's file): the change
// stands, so the caller gets no error. Call it before the registry is used.
func (r *Registry) SetLogger(l *zap.Logger) { r.log = l }

// New returns a registry on db storing files under dataDir/models.
func New(db *sql.DB, dataDir string, eval Evaluator) (*Registry, error) {
	root := filepath.Join(dataDir, "models")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Registry{db: db, dataDir: dataDir, root: root, eval: eval, now: time.Now, topic: pubsub.New[Change](), log: zap.NewNop()}, nil
}

// Close ends every watch.
func (r *Registry) Close() { r.topic.Close() }

// Path is where a version's file lives.
func (r *Registry) Path(name, digest string) string {
	return filepath.Join(r.root, name, strings.TrimPrefix(digest, limits.DigestPrefix)+".safetensors")
}

// Publish copies the safetensors file src into the registry as a version of
// name (created with kind when new), moves the "candidate" alias to it and
// returns it. Publishing the same bytes again returns the existing version.
func (r *Registry) Publish(ctx context.Context, name string, kind Kind, src, sourceJob string, meta map[string]string) (Version, error) {
	if err := limits.CheckName("model name", name); err != nil {
		return Version{}, fault.Invalid("%w", err)
	}
	f, err := safetensors.ReadFile(src, safetensors.Options{CheckFinite: true})
	if err != nil {
		return Version{}, fmt.Errorf("publish %s: %w", name, err)
	}
	cfg, err := model.ParseConfig(f.Metadata[model.MetaConfig])
	if err != nil {
		return Version{}, fmt.Errorf("publish %s: %w", name, err)
	}
	dir := filepath.Join(r.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Version{}, fmt.Errorf("publish %s: %w", name, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return Version{}, fmt.Errorf("publish %s: %w", name, err)
	}
	defer in.Close()
	// Copy and hash in one pass into a temporary file, then rename it to its digest.
	tmp, err := atomicfile.CreateTemp(dir, "publish")
	if err != nil {
		return Version{}, fmt.Errorf("publish %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Version{}, fmt.Errorf("publish %s: copy: %w", name, err)
	}
	digest := limits.DigestPrefix + hex.EncodeToString(h.Sum(nil))

	md := map[string]string{}
	for k, v := range f.Metadata {
		md[k] = v
	}
	for k, v := range meta {
		md[k] = v
	}
	md[MetaKind] = kind.String()
	latent := 0
	if cfg.Role == model.Generator {
		latent = cfg.Latent
	}
	mdJSON, _ := json.Marshal(md)

	// The file goes into place under r.mu, as deleteLocked removes it: a
	// delete of the same digest (deterministic training republishes the same
	// bytes) then runs wholly before (and this puts file and record back) or
	// wholly after (and sees the record), never between rename and insert.
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := os.Rename(tmp.Name(), r.Path(name, digest)); err != nil {
		return Version{}, fmt.Errorf("publish %s: %w", name, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return Version{}, err
	}
	now := r.now()
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return Version{}, err
	}
	defer tx.Rollback()
	var existingKind Kind
	switch err := tx.QueryRowContext(ctx, `SELECT kind FROM models WHERE name = ?`, name).Scan(&existingKind); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO models(name, kind, create_ns, update_ns) VALUES(?, ?, ?, ?)`, name, kind, now.UnixNano(), now.UnixNano()); err != nil {
			return Version{}, err
		}
	case err != nil:
		return Version{}, err
	case existingKind != kind:
		return Version{}, fault.FailedPrecondition("model %q holds %s versions; a %s cannot be published under that name", name, existingKind, kind)
	}
	var events []Event
	res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO versions(model, digest, kind, preset, size, image_size, latent_dim, source_job, metadata, create_ns)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, name, digest, kind, cfg.Preset, size, cfg.Side, latent, sourceJob, string(mdJSON), now.UnixNano())
	if err != nil {
		return Version{}, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		events = append(events, Event{Type: VersionCreated, Model: name, Version: digest, Time: now})
	}
	prev, err := setAliasTx(ctx, tx, name, limits.AliasCandidate, digest, now)
	if err != nil {
		return Version{}, err
	}
	if prev != digest {
		events = append(events, Event{Type: AliasSet, Model: name, Version: digest, Alias: limits.AliasCandidate, Previous: prev, Time: now})
	}
	if err := tx.Commit(); err != nil {
		return Version{}, err
	}
	for _, e := range events {
		r.topic.Publish(Change{Event: &e}, "")
	}
	v, err := r.version(ctx, name, digest)
	if err != nil {
		return Version{}, err
	}
	// The version is committed and announced: a failing retention pass
	// (--keep-versions) leaves old versions behind, it does not undo this one.
	if err := r.pruneLocked(ctx, name); err != nil {
		r.log.Error("retention after publish failed; older versions are kept until the next publish",
			zap.String("model", name), zap.String("version", digest), zap.Int("keep", r.keep), zap.Error(err))
	}
	return v, nil
}

// pruneLocked deletes the versions of name beyond the newest r.keep that no
// alias points at and nothing uses.
func (r *Registry) pruneLocked(ctx context.Context, name string) error {
	if r.keep <= 0 {
		return nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT `+versionCols+` FROM versions WHERE model = ? ORDER BY seq DESC LIMIT -1 OFFSET ?`, name, r.keep)
	if err != nil {
		return err
	}
	var old []Version
	for rows.Next() {
		v, _, err := scanVersion(rows)
		if err != nil {
			rows.Close()
			return err
		}
		old = append(old, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, v := range old {
		if v.Aliases, err = r.aliasesOf(ctx, name, v.Digest); err != nil {
			return err
		}
		if _, err := r.deleteLocked(ctx, v); err != nil && fault.KindOf(err) != fault.KindFailedPrecondition {
			return err
		}
	}
	return nil
}

// Delete removes a version (given by digest): its record, then its file. A
// version an alias points at, or one in use, is refused (FailedPrecondition
// naming the alias or the user).
func (r *Registry) Delete(ctx context.Context, name, digest string) (Version, error) {
	if err := limits.CheckDigest("version", digest); err != nil {
		return Version{}, fault.Invalid("%w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.Resolve(ctx, name, digest)
	if err != nil {
		return Version{}, err
	}
	return r.deleteLocked(ctx, v)
}

func (r *Registry) deleteLocked(ctx context.Context, v Version) (Version, error) {
	ref := v.Model + "@" + v.Digest
	switch len(v.Aliases) {
	case 0:
	case 1:
		return Version{}, fault.FailedPrecondition("%s is what alias %q of %s points at; point the alias at another version (SetAlias) before deleting this one",
			ref, v.Aliases[0], v.Model)
	default:
		return Version{}, fault.FailedPrecondition("%s is what aliases \"%s\" of %s point at; point them at another version (SetAlias) before deleting this one",
			ref, strings.Join(v.Aliases, `", "`), v.Model)
	}
	if r.inUse != nil {
		why, err := r.inUse(ctx, v.Model, v.Digest)
		if err != nil {
			return Version{}, err
		}
		if why != "" {
			return Version{}, fault.FailedPrecondition("%s is in use: %s", ref, why)
		}
	}
	now := r.now()
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return Version{}, err
	}
	defer tx.Rollback()
	// Aliases only move under r.mu, so none can point at v now; the NOT EXISTS
	// guard keeps the invariant even so.
	res, err := tx.ExecContext(ctx, `DELETE FROM versions WHERE model = ? AND digest = ?
		AND NOT EXISTS (SELECT 1 FROM aliases WHERE model = ? AND digest = ?)`, v.Model, v.Digest, v.Model, v.Digest)
	if err != nil {
		return Version{}, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Version{}, fault.FailedPrecondition("%s: an alias points at it or it is gone; nothing deleted", ref)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE models SET update_ns = ? WHERE name = ?`, now.UnixNano(), v.Model); err != nil {
		return Version{}, err
	}
	if err := tx.Commit(); err != nil {
		return Version{}, err
	}
	// The record is gone first: a crash now leaves an unreferenced file, never
	// a record without its file. The deletion is committed, so watchers hear
	// of it whatever happens to the file; a file left behind is only disk
	// space (a later publish of the same bytes replaces it). Open descriptors
	// (downloads) keep reading.
	r.topic.Publish(Change{Event: &Event{Type: VersionDeleted, Model: v.Model, Version: v.Digest, Time: now}}, "")
	path := r.Path(v.Model, v.Digest)
	err = os.Remove(path)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		err = atomicfile.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		r.log.Error("version deleted but its file could not be removed; remove it by hand",
			zap.String("model", v.Model), zap.String("version", v.Digest), zap.String("path", path), zap.Error(err))
	}
	return v, nil
}

func setAliasTx(ctx context.Context, tx *sql.Tx, name, alias, digest string, now time.Time) (string, error) {
	var prev string
	err := tx.QueryRowContext(ctx, `SELECT digest FROM aliases WHERE model = ? AND alias = ?`, name, alias).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO aliases(model, alias, digest) VALUES(?, ?, ?)
		ON CONFLICT(model, alias) DO UPDATE SET digest = excluded.digest`, name, alias, digest); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE models SET update_ns = ? WHERE name = ?`, now.UnixNano(), name); err != nil {
		return "", err
	}
	return prev, nil
}

// Pin resolves ref as Resolve does and calls record with the version while
// holding the lock that deletes and retention take: what record writes (a
// queued job that starts from the version, which InUse then reports) is in
// place before any delete can look, so the version cannot go between the
// lookup and the record. record must not call back into the registry.
func (r *Registry) Pin(ctx context.Context, name, ref string, record func(Version) error) (Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return Version{}, err
	}
	if err := record(v); err != nil {
		return Version{}, err
	}
	return v, nil
}

// Resolve returns the version ref names: a digest, an alias, or "" for production.
func (r *Registry) Resolve(ctx context.Context, name, ref string) (Version, error) {
	if err := limits.CheckName("model name", name); err != nil {
		return Version{}, fault.Invalid("%w", err)
	}
	ref = limits.DefaultVersion(ref)
	if err := limits.CheckVersion("version", ref); err != nil {
		return Version{}, fault.Invalid("%w", err)
	}
	if err := r.db.QueryRowContext(ctx, `SELECT 1 FROM models WHERE name = ?`, name).Scan(new(int)); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Version{}, fault.NotFound("model %q is not in the registry", name)
		}
		return Version{}, err
	}
	digest := ref
	if !limits.IsDigest(ref) {
		err := r.db.QueryRowContext(ctx, `SELECT digest FROM aliases WHERE model = ? AND alias = ?`, name, ref).Scan(&digest)
		if errors.Is(err, sql.ErrNoRows) {
			return Version{}, fault.NotFound("model %q has no alias %q", name, ref)
		}
		if err != nil {
			return Version{}, err
		}
	}
	return r.version(ctx, name, digest)
}

const versionCols = `seq, model, digest, kind, preset, size, image_size, latent_dim, source_job, metrics, metadata, create_ns`

func scanVersion(sc interface{ Scan(...any) error }) (Version, int64, error) {
	var v Version
	var seq, created int64
	var metrics, meta string
	if err := sc.Scan(&seq, &v.Model, &v.Digest, &v.Kind, &v.Preset, &v.Size, &v.ImageSize, &v.LatentDim, &v.SourceJob, &metrics, &meta, &created); err != nil {
		return Version{}, 0, err
	}
	_ = json.Unmarshal([]byte(metrics), &v.Metrics)
	_ = json.Unmarshal([]byte(meta), &v.Metadata)
	v.Created = time.Unix(0, created)
	return v, seq, nil
}

func (r *Registry) version(ctx context.Context, name, digest string) (Version, error) {
	v, _, err := scanVersion(r.db.QueryRowContext(ctx, `SELECT `+versionCols+` FROM versions WHERE model = ? AND digest = ?`, name, digest))
	if errors.Is(err, sql.ErrNoRows) {
		return Version{}, fault.NotFound("model %q has no version %s", name, digest)
	}
	if err != nil {
		return Version{}, err
	}
	if v.Aliases, err = r.aliasesOf(ctx, name, digest); err != nil {
		return Version{}, err
	}
	return v, nil
}

func (r *Registry) aliasesOf(ctx context.Context, name, digest string) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT alias FROM aliases WHERE model = ? AND digest = ? ORDER BY alias`, name, digest)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ListVersions lists a model's versions newest first.
func (r *Registry) ListVersions(ctx context.Context, name string, size int, token string) ([]Version, string, error) {
	if err := limits.CheckName("model name", name); err != nil {
		return nil, "", fault.Invalid("%w", err)
	}
	tok, err := page.Decode(token, "versions:"+name)
	if err != nil {
		return nil, "", err
	}
	if err := r.db.QueryRowContext(ctx, `SELECT 1 FROM models WHERE name = ?`, name).Scan(new(int)); errors.Is(err, sql.ErrNoRows) {
		return nil, "", fault.NotFound("model %q is not in the registry", name)
	}
	after := tok.After
	if token == "" {
		after = 1 << 62
	}
	rows, err := r.db.QueryContext(ctx, `SELECT `+versionCols+` FROM versions WHERE model = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, name, after, size+1)
	if err != nil {
		return nil, "", err
	}
	var out []Version
	var seqs []int64
	for rows.Next() {
		v, seq, err := scanVersion(rows)
		if err != nil {
			rows.Close()
			return nil, "", err
		}
		out, seqs = append(out, v), append(seqs, seq)
	}
	rows.Close()
	next := ""
	if len(out) > size {
		out = out[:size]
		next = page.Encode(page.Token{After: seqs[size-1], Filter: "versions:" + name})
	}
	for i := range out {
		if out[i].Aliases, err = r.aliasesOf(ctx, name, out[i].Digest); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}

// ListModels lists models by name; kind 0 = all.
func (r *Registry) ListModels(ctx context.Context, kind Kind, size int, token string) ([]Model, string, error) {
	filter := "models:" + strconv.Itoa(int(kind))
	tok, err := page.Decode(token, filter)
	if err != nil {
		return nil, "", err
	}
	q := `SELECT name FROM models WHERE name > ?`
	args := []any{tok.Name}
	if kind != KindUnspecified {
		q += ` AND kind = ?`
		args = append(args, kind)
	}
	rows, err := r.db.QueryContext(ctx, q+` ORDER BY name LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, "", err
		}
		names = append(names, n)
	}
	rows.Close()
	next := ""
	if len(names) > size {
		names = names[:size]
		next = page.Encode(page.Token{Name: names[size-1], Filter: filter})
	}
	out := make([]Model, 0, len(names))
	for _, n := range names {
		m, err := r.model(ctx, n)
		if err != nil {
			return nil, "", err
		}
		out = append(out, m)
	}
	return out, next, nil
}

func (r *Registry) model(ctx context.Context, name string) (Model, error) {
	m := Model{Name: name, Aliases: map[string]string{}}
	var created, updated int64
	err := r.db.QueryRowContext(ctx, `SELECT kind, create_ns, update_ns, (SELECT COUNT(*) FROM versions WHERE model = ?) FROM models WHERE name = ?`, name, name).
		Scan(&m.Kind, &created, &updated, &m.VersionCount)
	if errors.Is(err, sql.ErrNoRows) {
		return Model{}, fault.NotFound("model %q is not in the registry", name)
	}
	if err != nil {
		return Model{}, err
	}
	m.Created, m.Updated = time.Unix(0, created), time.Unix(0, updated)
	rows, err := r.db.QueryContext(ctx, `SELECT alias, digest FROM aliases WHERE model = ?`, name)
	if err != nil {
		return Model{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var a, d string
		if err := rows.Scan(&a, &d); err != nil {
			return Model{}, err
		}
		m.Aliases[a] = d
	}
	return m, rows.Err()
}

// SetAlias points alias at digest unconditionally and returns the version and
// the digest it pointed at before ("" if new).
func (r *Registry) SetAlias(ctx context.Context, name, alias, digest string) (Version, string, error) {
	if err := limits.CheckName("alias", alias); err != nil {
		return Version{}, "", fault.Invalid("%w", err)
	}
	if err := limits.CheckDigest("version", digest); err != nil {
		return Version{}, "", fault.Invalid("%w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.Resolve(ctx, name, digest)
	if err != nil {
		return Version{}, "", err
	}
	prev, err := r.setAliasLocked(ctx, name, alias, digest)
	if err != nil {
		return Version{}, "", err
	}
	v, err = r.version(ctx, name, v.Digest)
	return v, prev, err
}

func (r *Registry) setAliasLocked(ctx context.Context, name, alias, digest string) (string, error) {
	now := r.now()
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	prev, err := setAliasTx(ctx, tx, name, alias, digest, now)
	if err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", err
	}
	if prev != digest {
		r.topic.Publish(Change{Event: &Event{Type: AliasSet, Model: name, Version: digest, Alias: alias, Previous: prev, Time: now}}, "")
	}
	return prev, nil
}

// Promote points "production" at ref (default "candidate") if its score on the
// evaluation set is at least as good as production's, or when force is set.
// A refusal is a result, not an error.
func (r *Registry) Promote(ctx context.Context, name, ref string, force bool) (Promotion, error) {
	if ref == "" {
		ref = limits.AliasCandidate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cand, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return Promotion{}, err
	}
	var prod *Version
	if p, err := r.Resolve(ctx, name, limits.AliasProduction); err == nil {
		prod = &p
	} else if !errors.Is(err, fault.KindNotFound) {
		return Promotion{}, err
	}
	evalDir, err := r.evalDir(cand)
	if err != nil {
		return Promotion{}, err
	}
	score, err := r.eval.Evaluate(ctx, cand, r.Path(name, cand.Digest), evalDir)
	if err != nil {
		return Promotion{}, fmt.Errorf("evaluate %s@%s: %w", name, cand.Digest, err)
	}
	out := Promotion{Version: cand, Canary: Canary{Score: score, Passed: true}}
	if err := r.recordMetric(ctx, cand, score); err != nil {
		return Promotion{}, err
	}
	if prod != nil {
		out.Previous = prod.Digest
		old, err := r.eval.Evaluate(ctx, *prod, r.Path(name, prod.Digest), evalDir)
		if err != nil {
			return Promotion{}, fmt.Errorf("evaluate production %s@%s: %w", name, prod.Digest, err)
		}
		out.Canary.Old = &old.Value
		if score.HigherIsBetter {
			out.Canary.Passed = score.Value >= old.Value
		} else {
			out.Canary.Passed = score.Value <= old.Value
		}
		if !out.Canary.Passed {
			by := score.Value - old.Value
			if by < 0 {
				by = -by
			}
			dir := "higher"
			if score.HigherIsBetter {
				dir = "lower"
			}
			out.Canary.Refusal = fmt.Sprintf("%s %.4f is %.4f %s (worse) than production %s's %.4f on %s",
				score.Metric, score.Value, by, dir, prod.Digest, old.Value, r.rel(evalDir))
			if !force {
				out.Canary.Refusal += "; promote with force to override"
				return out, nil
			}
		}
	}
	if _, err := r.setAliasLocked(ctx, name, limits.AliasProduction, cand.Digest); err != nil {
		return Promotion{}, err
	}
	out.Promoted = true
	if out.Version, err = r.version(ctx, name, cand.Digest); err != nil {
		return Promotion{}, err
	}
	return out, nil
}

func (r *Registry) rel(p string) string {
	if rel, err := filepath.Rel(r.dataDir, p); err == nil {
		return rel
	}
	return p
}

// evalDir is the evaluation set of a promotion: <data-dir>/eval/<model> when
// it exists, else the dataset the candidate was trained on.
func (r *Registry) evalDir(v Version) (string, error) {
	fixed := filepath.Join(r.dataDir, "eval", v.Model)
	if st, err := os.Stat(fixed); err == nil && st.IsDir() {
		return fixed, nil
	}
	if ds := v.Metadata[MetaDataset]; ds != "" && filepath.IsLocal(ds) {
		p := filepath.Join(r.dataDir, ds)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, nil
		}
	}
	return "", fault.FailedPrecondition("no evaluation set for model %q: create %s with reference images", v.Model, fixed)
}

func (r *Registry) recordMetric(ctx context.Context, v Version, s Score) error {
	m := map[string]float64{}
	for k, val := range v.Metrics {
		m[k] = val
	}
	m[s.Metric] = s.Value
	b, _ := json.Marshal(m)
	_, err := r.db.ExecContext(ctx, `UPDATE versions SET metrics = ? WHERE model = ? AND digest = ?`, string(b), v.Model, v.Digest)
	return err
}

// Open opens a version's file for reading, after resolving ref once.
func (r *Registry) Open(ctx context.Context, name, ref string) (*os.File, Version, error) {
	v, err := r.Resolve(ctx, name, ref)
	if err != nil {
		return nil, Version{}, err
	}
	f, err := os.Open(r.Path(name, v.Digest))
	if err != nil {
		return nil, Version{}, fmt.Errorf("open %s@%s: %w", name, v.Digest, err)
	}
	return f, v, nil
}

// Watch subscribes to changes of the named models (all when empty); the
// first Change is a snapshot of them. Unknown names simply have no models yet.
func (r *Registry) Watch(ctx context.Context, names []string) (*pubsub.Subscription[Change], error) {
	for _, n := range names {
		if err := limits.CheckName("model name", n); err != nil {
			return nil, fault.Invalid("%w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var snap []Model
	tok := ""
	for {
		ms, next, err := r.ListModels(ctx, KindUnspecified, limits.MaxPageSize, tok)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if len(names) == 0 || slices.Contains(names, m.Name) {
				snap = append(snap, m)
			}
		}
		if next == "" {
			break
		}
		tok = next
	}
	return r.topic.Subscribe(Change{Snapshot: snap}), nil
}
