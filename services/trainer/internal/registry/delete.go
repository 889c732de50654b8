// Deleting a version: its record and aliases, then its file.

package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/atomicfile"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
)

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
