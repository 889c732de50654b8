// Package store opens the trainer's embedded SQLite database (pure Go,
// modernc.org/sqlite) in the data directory and creates its schema: job records
// and the model registry's versions and aliases live in one file so that a job
// finishing and its model being published can share a transaction.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file inside the data directory.
const FileName = "trainer.db"

const schema = `
CREATE TABLE IF NOT EXISTS jobs (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT NOT NULL UNIQUE,
	request     TEXT NOT NULL, -- the spec as requested (canonical JSON), for idempotent retries
	spec        TEXT NOT NULL, -- the spec with trainer-chosen values filled in
	state       INTEGER NOT NULL,
	failure     TEXT NOT NULL DEFAULT '',
	progress    TEXT NOT NULL DEFAULT '{}',
	checkpoint  TEXT NOT NULL DEFAULT '',
	result      TEXT NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0,
	queued_ns   INTEGER NOT NULL, -- when the job was last queued: the scheduler's order
	create_ns   INTEGER NOT NULL,
	start_ns    INTEGER NOT NULL DEFAULT 0,
	update_ns   INTEGER NOT NULL,
	end_ns      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, queued_ns);
CREATE TABLE IF NOT EXISTS models (
	name       TEXT PRIMARY KEY,
	kind       INTEGER NOT NULL,
	create_ns  INTEGER NOT NULL,
	update_ns  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	model       TEXT NOT NULL REFERENCES models(name),
	digest      TEXT NOT NULL,
	kind        INTEGER NOT NULL,
	preset      TEXT NOT NULL,
	size        INTEGER NOT NULL,
	image_size  INTEGER NOT NULL,
	latent_dim  INTEGER NOT NULL,
	source_job  TEXT NOT NULL,
	metrics     TEXT NOT NULL DEFAULT '{}',
	metadata    TEXT NOT NULL DEFAULT '{}',
	create_ns   INTEGER NOT NULL,
	UNIQUE(model, digest)
);
CREATE TABLE IF NOT EXISTS aliases (
	model   TEXT NOT NULL REFERENCES models(name),
	alias   TEXT NOT NULL,
	digest  TEXT NOT NULL,
	PRIMARY KEY(model, alias)
);
`

// Open opens (creating when needed) the database in dir and applies the schema.
// One connection: SQLite serialises writers anyway, and a single connection
// keeps transactions from tripping over SQLITE_BUSY.
func Open(ctx context.Context, dir string) (*sql.DB, error) {
	path := filepath.Join(dir, FileName)
	// WAL + synchronous=FULL: a committed transaction survives a crash or power loss.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	return db, nil
}
