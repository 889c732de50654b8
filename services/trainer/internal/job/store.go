package job

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/platform/fault"

	"github.com/hirez-ml/hirez/services/trainer/internal/page"
)

// Store keeps job records in SQLite (table jobs, see package store).
type Store struct {
	db *sql.DB
}

// NewStore returns a store on db.
func NewStore(db *sql.DB) *Store { return &Store{db: db} }

const jobCols = `seq, id, spec, state, failure, progress, checkpoint, result, attempts, create_ns, start_ns, update_ns, end_ns`

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func timeNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func scanJob(sc interface{ Scan(...any) error }) (Job, int64, error) {
	var j Job
	var seq, c, s, u, e int64
	var spec, prog, ckpt, res string
	if err := sc.Scan(&seq, &j.ID, &spec, &j.State, &j.Failure, &prog, &ckpt, &res, &j.Attempts, &c, &s, &u, &e); err != nil {
		return Job{}, 0, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return Job{}, 0, fmt.Errorf("job %s: spec: %w", j.ID, err)
	}
	_ = json.Unmarshal([]byte(prog), &j.Progress)
	if ckpt != "" {
		j.Latest = new(Checkpoint)
		_ = json.Unmarshal([]byte(ckpt), j.Latest)
	}
	if res != "" {
		j.Result = new(Ref)
		_ = json.Unmarshal([]byte(res), j.Result)
	}
	j.Created, j.Started, j.Updated, j.Ended = nsTime(c), nsTime(s), nsTime(u), nsTime(e)
	return j, seq, nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v) // domain structs always marshal
	return string(b)
}

// Insert adds a QUEUED job. When id exists already it returns the existing job
// and created = false if request (the canonical requested spec) matches, and an
// AlreadyExists fault otherwise.
func (s *Store) Insert(ctx context.Context, j Job, request string) (Job, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Job{}, false, err
	}
	defer tx.Rollback()
	var existing string
	switch err := tx.QueryRowContext(ctx, `SELECT request FROM jobs WHERE id = ?`, j.ID).Scan(&existing); {
	case err == nil:
		if existing != request {
			return Job{}, false, fault.AlreadyExists("job %q exists with a different spec; pick another job_id", j.ID)
		}
		// Read through the transaction: the pool has one connection.
		got, _, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, j.ID))
		return got, false, err
	case !errors.Is(err, sql.ErrNoRows):
		return Job{}, false, err
	}
	now := timeNS(j.Created)
	if _, err := tx.ExecContext(ctx, `INSERT INTO jobs(id, request, spec, state, progress, queued_ns, create_ns, update_ns)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?)`, j.ID, request, mustJSON(j.Spec), j.State, mustJSON(j.Progress), now, now, now); err != nil {
		return Job{}, false, err
	}
	if err := tx.Commit(); err != nil {
		return Job{}, false, err
	}
	got, err := s.Get(ctx, j.ID)
	return got, true, err
}

// Get returns one job.
func (s *Store) Get(ctx context.Context, id string) (Job, error) {
	j, _, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fault.NotFound("job %q not found", "jobs/"+id)
	}
	return j, err
}

// List returns jobs newest first, filtered by states (none = all).
func (s *Store) List(ctx context.Context, states []State, size int, token string) ([]Job, string, error) {
	var keys []string
	for _, st := range states {
		keys = append(keys, strconv.Itoa(int(st)))
	}
	filter := strings.Join(keys, ",")
	tok, err := page.Decode(token, filter)
	if err != nil {
		return nil, "", err
	}
	after := int64(1 << 62)
	if token != "" {
		after = tok.After
	}
	q := `SELECT ` + jobCols + ` FROM jobs WHERE seq < ?`
	args := []any{after}
	if len(states) > 0 {
		q += ` AND state IN (` + strings.TrimSuffix(strings.Repeat("?,", len(states)), ",") + `)`
		for _, st := range states {
			args = append(args, st)
		}
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY seq DESC LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []Job
	var seqs []int64
	for rows.Next() {
		j, seq, err := scanJob(rows)
		if err != nil {
			return nil, "", err
		}
		out, seqs = append(out, j), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		next = page.Encode(page.Token{After: seqs[size-1], Filter: filter})
	}
	return out, next, nil
}

// NextQueued returns the job queued longest ago, or ok = false.
func (s *Store) NextQueued(ctx context.Context) (Job, bool, error) {
	j, _, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE state = ? ORDER BY queued_ns, seq LIMIT 1`, Queued))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, false, nil
	}
	return j, err == nil, err
}

// StartingFrom returns a job in one of states whose spec starts from the
// registry version model@digest (init_from), or ok = false.
func (s *Store) StartingFrom(ctx context.Context, model, digest string, states ...State) (id string, st State, ok bool, err error) {
	for _, want := range states {
		err = s.db.QueryRowContext(ctx, `SELECT id, state FROM jobs WHERE state = ?
			AND json_extract(spec, '$.InitFrom.Name') = ? AND json_extract(spec, '$.InitFrom.Version') = ? ORDER BY seq LIMIT 1`,
			want, model, digest).Scan(&id, &st)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		return id, st, err == nil, err
	}
	return "", 0, false, nil
}

// IDsInState lists the ids of jobs in state st.
func (s *Store) IDsInState(ctx context.Context, st State) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM jobs WHERE state = ? ORDER BY seq`, st)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Transition moves job id from one of states from to state to, applying
// mutate to the record first; it reports whether the job was in one of from.
func (s *Store) Transition(ctx context.Context, id string, from []State, to State, mutate func(*Job)) (Job, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Job{}, false, err
	}
	defer tx.Rollback()
	j, _, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, false, fault.NotFound("job %q not found", "jobs/"+id)
	}
	if err != nil {
		return Job{}, false, err
	}
	ok := false
	for _, f := range from {
		ok = ok || j.State == f
	}
	if !ok {
		return j, false, nil
	}
	j.State = to
	if mutate != nil {
		mutate(&j)
	}
	queued := ""
	args := []any{}
	if to == Queued {
		queued = `, queued_ns = ?`
		args = append(args, timeNS(j.Updated))
	}
	if err := s.write(ctx, tx, j, queued, args); err != nil {
		return Job{}, false, err
	}
	return j, true, tx.Commit()
}

// Save writes the mutable fields of j (progress, checkpoint, ...).
func (s *Store) Save(ctx context.Context, j Job) error {
	return s.write(ctx, s.db, j, "", nil)
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func (s *Store) write(ctx context.Context, ex execer, j Job, extra string, extraArgs []any) error {
	ckpt, res := "", ""
	if j.Latest != nil {
		ckpt = mustJSON(j.Latest)
	}
	if j.Result != nil {
		res = mustJSON(j.Result)
	}
	args := []any{j.State, j.Failure, mustJSON(j.Progress), ckpt, res, j.Attempts, timeNS(j.Started), timeNS(j.Updated), timeNS(j.Ended), mustJSON(j.Spec)}
	args = append(args, extraArgs...)
	args = append(args, j.ID)
	_, err := ex.ExecContext(ctx, `UPDATE jobs SET state = ?, failure = ?, progress = ?, checkpoint = ?, result = ?, attempts = ?,
		start_ns = ?, update_ns = ?, end_ns = ?, spec = ?`+extra+` WHERE id = ?`, args...)
	return err
}
