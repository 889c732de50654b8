// Reading: resolving references, listing versions and models, opening a
// version's file and watching for changes.

package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/services/trainer/internal/page"
	"github.com/hirez-ml/hirez/services/trainer/internal/pubsub"
)

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
