// Aliases and promotion: pointing an alias at a version, and the gate that
// moves "production" only when the candidate scores at least as well.

package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
)

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
