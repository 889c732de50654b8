// Package registry keeps versioned models: immutable safetensors files named by
// the sha256 of their bytes under <data-dir>/models/<name>/, their records and
// the aliases that point at them in SQLite, a promotion gate that evaluates a
// candidate against production on the same evaluation set, and a change feed
// for the serving services. It knows nothing of gRPC.
//
// One file per concern: registry.go the Registry and its storage paths,
// types.go its values, publish.go publishing and retention, read.go
// resolving, listing, opening and watching, promote.go aliases and the
// promotion gate, delete.go deletion, eval.go the evaluator.
package registry

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/services/trainer/internal/pubsub"
)

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

func (r *Registry) rel(p string) string {
	if rel, err := filepath.Rel(r.dataDir, p); err == nil {
		return rel
	}
	return p
}
