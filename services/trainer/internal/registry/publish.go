// Publishing a version: copy and hash into the store, record it, point
// "candidate" at it, and prune what the retention policy no longer keeps.

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

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/atomicfile"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
)

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
