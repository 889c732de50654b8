package job

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hirez-ml/hirez/engine/safetensors"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/engine/atomicfile"
	"github.com/hirez-ml/hirez/services/trainer/internal/pubsub"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// Runner trains one attempt of a job. It returns when training has finished
// (Output.ModelPath holds the weights to publish) or ctx is cancelled. It
// writes checkpoints with CheckpointPath and reports them.
type Runner interface {
	Run(ctx context.Context, t Task) (Output, error)
}

// Task is one attempt of a job, as handed to a Runner.
type Task struct {
	JobID      string
	Spec       Spec
	Recipe     Recipe
	Hyper      Hyper  // effective hyperparameters (recipe defaults filled in)
	Dir        string // the job's directory, <data-dir>/jobs/<id>; exists
	DatasetDir string
	ResumeFrom string // Dir/CheckpointFile when it holds a valid checkpoint; "" = start at step 0
	InitFrom   string // registry file to initialise from; "" = fresh weights
	Report     Reporter
}

// Reporter receives a running job's progress. Calls never block on watchers.
type Reporter interface {
	Progress(Progress)
	Sample(Sample)
	// Checkpoint reports a checkpoint file (absolute path) the runner has
	// completely written.
	Checkpoint(step int64, path string)
}

// Output is what a finished attempt produced.
type Output struct {
	ModelPath string            // safetensors file to publish (in the job's directory)
	Metadata  map[string]string // extra metadata for the registry
}

// CheckpointFile is a job's checkpoint inside its directory. It is replaced
// atomically (temporary file, fsync, rename, fsync of the directory), so a
// kill at any moment leaves the previous complete checkpoint in place.
const CheckpointFile = "checkpoint.safetensors"

// progressSaveEvery bounds how often progress is written to the database; the
// watchers see every report.
const progressSaveEvery = 2 * time.Second

// Cancellation causes.
var (
	errCancelled = errors.New("cancelled by CancelJob")
	errShutdown  = errors.New("the trainer is shutting down")
)

// Manager queues, runs and tracks jobs: one at a time (one device per trainer).
type Manager struct {
	store  *Store
	reg    *registry.Registry
	runner Runner
	env    Env
	log    *zap.Logger
	now    func() time.Time

	wake chan struct{}

	mu       sync.Mutex // guards everything below and orders events with snapshots
	topics   map[string]*pubsub.Topic[Event]
	active   *active
	draining bool
}

type active struct {
	job      Job
	cancel   context.CancelCauseFunc
	lastSave time.Time
}

// NewManager returns a manager. Call Recover, then run Run in a goroutine.
func NewManager(store *Store, reg *registry.Registry, runner Runner, env Env, log *zap.Logger) *Manager {
	return &Manager{
		store: store, reg: reg, runner: runner, env: env, log: log, now: time.Now,
		wake:   make(chan struct{}, 1),
		topics: make(map[string]*pubsub.Topic[Event]),
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Recover marks jobs left RUNNING by a previous process INTERRUPTED and, with
// autoResume, queues every INTERRUPTED job again.
func (m *Manager) Recover(ctx context.Context, autoResume bool) error {
	ids, err := m.store.IDsInState(ctx, Running)
	if err != nil {
		return fmt.Errorf("recover jobs: %w", err)
	}
	for _, id := range ids {
		j, _, err := m.store.Transition(ctx, id, []State{Running}, Interrupted, func(j *Job) {
			j.Failure = "the trainer stopped while the job ran (crash or kill); ResumeJob continues from the latest checkpoint"
			j.Updated = m.now()
		})
		if err != nil {
			return fmt.Errorf("recover job %s: %w", id, err)
		}
		m.log.Warn("job interrupted by a previous trainer process", zap.String("job", id), zap.Int64("step", j.Progress.Step))
	}
	if !autoResume {
		return nil
	}
	ids, err = m.store.IDsInState(ctx, Interrupted)
	if err != nil {
		return fmt.Errorf("recover jobs: %w", err)
	}
	for _, id := range ids {
		if _, _, err := m.store.Transition(ctx, id, []State{Interrupted}, Queued, func(j *Job) {
			j.Failure = ""
			j.Updated = m.now()
		}); err != nil {
			return fmt.Errorf("resume job %s: %w", id, err)
		}
		m.log.Info("job queued again (--auto-resume)", zap.String("job", id))
	}
	m.poke()
	return nil
}

// NewJobID returns a server-chosen job id.
func NewJobID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "job-" + hex.EncodeToString(b[:])
}

// Create validates spec and queues a job. With a non-empty id it is
// idempotent: the same id and spec return the existing job.
func (m *Manager) Create(ctx context.Context, id string, spec Spec) (Job, error) {
	if id != "" {
		if err := limits.CheckName("job_id", id); err != nil {
			return Job{}, fault.Invalid("%w", err)
		}
	}
	if err := m.env.Validate(ctx, spec); err != nil {
		return Job{}, err
	}
	request := mustJSON(spec)
	if id == "" {
		id = NewJobID()
	}
	if spec.Seed == 0 {
		n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
		spec.Seed = n.Int64() + 1
	}
	var j Job
	var created bool
	insert := func() (err error) {
		now := m.now()
		j, created, err = m.store.Insert(ctx, Job{ID: id, Spec: spec, State: Queued, Created: now, Updated: now}, request)
		return err
	}
	if spec.InitFrom == nil {
		if err := insert(); err != nil {
			return Job{}, err
		}
	} else {
		// Resolve init_from once and insert the job pinned to that digest
		// while the registry holds off deletes: from then on StartsFrom
		// reports the job, so no delete or retention pass can remove the
		// version the job needs between the lookup and the insert.
		resolved := false
		_, err := m.reg.Pin(ctx, spec.InitFrom.Name, spec.InitFrom.Version, func(v registry.Version) error {
			resolved = true
			if err := checkInitFrom(spec, v); err != nil {
				return err
			}
			spec.InitFrom = &Ref{Name: v.Model, Version: v.Digest}
			return insert()
		})
		if err != nil {
			if !resolved && fault.KindOf(err) == fault.KindNotFound {
				return Job{}, fault.Invalid("spec.init_from: %v", err)
			}
			return Job{}, err
		}
	}
	if created {
		m.log.Info("job queued", zap.String("job", id), zap.String("model", spec.ModelName), zap.String("preset", spec.Preset))
		m.poke()
	}
	return j, nil
}

// Get returns a job, with the running job's latest in-memory progress.
func (m *Manager) Get(ctx context.Context, id string) (Job, error) {
	if err := checkID(id); err != nil {
		return Job{}, err
	}
	m.mu.Lock()
	if a := m.active; a != nil && a.job.ID == id {
		j := a.job
		m.mu.Unlock()
		return j, nil
	}
	m.mu.Unlock()
	return m.store.Get(ctx, id)
}

func checkID(id string) error {
	if !limits.ValidName(id) {
		return fault.Invalid("job name %q: want \"jobs/<id>\" with an id of %s", "jobs/"+id, limits.NameRule)
	}
	return nil
}

// List lists jobs newest first.
func (m *Manager) List(ctx context.Context, states []State, size int, token string) ([]Job, string, error) {
	for _, s := range states {
		if s <= StateUnspecified || s > Interrupted {
			return nil, "", fault.Invalid("states: %d is not a known JobState", int(s))
		}
	}
	jobs, next, err := m.store.List(ctx, states, size, token)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	if a := m.active; a != nil {
		for i := range jobs {
			if jobs[i].ID == a.job.ID {
				jobs[i] = a.job
			}
		}
	}
	m.mu.Unlock()
	return jobs, next, nil
}

// Cancel stops a queued, interrupted or running job; terminal jobs are
// returned unchanged. A running job moves to CANCELLED once it has stopped.
func (m *Manager) Cancel(ctx context.Context, id string) (Job, error) {
	if err := checkID(id); err != nil {
		return Job{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.active; a != nil && a.job.ID == id {
		a.cancel(errCancelled)
		return a.job, nil
	}
	var from State
	j, moved, err := m.store.Transition(ctx, id, []State{Queued, Interrupted}, Cancelled, func(j *Job) {
		from = j.State
		j.Updated, j.Ended = m.now(), m.now()
	})
	if err != nil {
		return Job{}, err
	}
	if moved {
		m.finishLocked(j, StateChange{From: from, To: Cancelled, Reason: "cancelled by CancelJob while " + from.String()})
	}
	return j, nil
}

// Resume queues an interrupted, failed or cancelled job again.
func (m *Manager) Resume(ctx context.Context, id string) (Job, error) {
	if err := checkID(id); err != nil {
		return Job{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var from State
	j, moved, err := m.store.Transition(ctx, id, []State{Interrupted, Failed, Cancelled}, Queued, func(j *Job) {
		from = j.State
		j.Failure, j.Ended, j.Updated = "", time.Time{}, m.now()
	})
	if err != nil {
		return Job{}, err
	}
	if !moved {
		return Job{}, fault.FailedPrecondition("job %s is %s; only interrupted, failed or cancelled jobs can be resumed", j.Name(), j.State)
	}
	m.publishLocked(id, Event{Time: m.now(), StateChange: &StateChange{From: from, To: Queued, Reason: "resume requested"}}, "")
	m.poke()
	return j, nil
}

// Watch subscribes to a job's events; the first is a snapshot. For a terminal
// job the subscription ends after the snapshot.
func (m *Manager) Watch(ctx context.Context, id string) (*pubsub.Subscription[Event], error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var j Job
	if a := m.active; a != nil && a.job.ID == id {
		j = a.job
	} else {
		var err error
		if j, err = m.store.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	snap := Event{Time: m.now(), Snapshot: &j}
	if j.State.Terminal() || m.draining {
		t := pubsub.New[Event]()
		t.Close()
		return t.Subscribe(snap), nil
	}
	t, ok := m.topics[id]
	if !ok {
		t = pubsub.New[Event]()
		m.topics[id] = t
	}
	return t.Subscribe(snap), nil
}

func (m *Manager) publishLocked(id string, ev Event, key string) {
	if t, ok := m.topics[id]; ok {
		t.Publish(ev, key)
	}
}

// finishLocked publishes a job's move to a terminal state and ends its watches.
func (m *Manager) finishLocked(j Job, sc StateChange) {
	m.publishLocked(j.ID, Event{Time: m.now(), StateChange: &sc}, "")
	if t, ok := m.topics[j.ID]; ok {
		t.Close()
		delete(m.topics, j.ID)
	}
}

// Drain stops the running job (it becomes INTERRUPTED) and ends every watch:
// called when the trainer begins shutting down, so that streams do not hold
// the graceful stop.
func (m *Manager) Drain() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.draining = true
	if a := m.active; a != nil {
		a.cancel(errShutdown)
	}
	for id, t := range m.topics {
		t.Close()
		delete(m.topics, id)
	}
}

// Run is the scheduler: it runs queued jobs one at a time, oldest first, until
// ctx ends. It is the owner of every attempt's goroutines.
func (m *Manager) Run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		m.mu.Lock()
		draining := m.draining
		m.mu.Unlock()
		j, ok := Job{}, false
		if !draining {
			var err error
			j, ok, err = m.store.NextQueued(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("scheduler: %w", err)
			}
		}
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-m.wake:
			}
			continue
		}
		m.runOne(ctx, j)
	}
}

func (m *Manager) runOne(ctx context.Context, queued Job) {
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	log := m.log.With(zap.String("job", queued.ID))

	m.mu.Lock()
	now := m.now()
	j, moved, err := m.store.Transition(ctx, queued.ID, []State{Queued}, Running, func(j *Job) {
		j.Attempts++
		if j.Started.IsZero() {
			j.Started = now
		}
		j.Updated, j.Failure = now, ""
	})
	if err != nil || !moved {
		m.mu.Unlock()
		if err != nil {
			log.Error("start job", zap.Error(err))
			time.Sleep(100 * time.Millisecond) // do not spin on a broken database
		}
		return
	}
	m.active = &active{job: j, cancel: cancel, lastSave: now}
	m.publishLocked(j.ID, Event{Time: now, StateChange: &StateChange{From: Queued, To: Running, Reason: fmt.Sprintf("attempt %d", j.Attempts)}}, "")
	m.mu.Unlock()
	log.Info("job started", zap.Int("attempt", j.Attempts))

	out, runErr := m.attempt(jobCtx, j)
	var ref *Ref
	if runErr == nil {
		// Publishing is short; it finishes even when shutdown has begun.
		meta := out.Metadata
		if meta == nil {
			meta = map[string]string{}
		}
		meta[registry.MetaSourceJob] = j.Name()
		if rel, err := m.env.DatasetRel(j.Spec.Dataset); err == nil {
			meta[registry.MetaDataset] = rel
		}
		v, err := m.reg.Publish(context.WithoutCancel(ctx), j.Spec.ModelName, j.Spec.Kind, out.ModelPath, j.Name(), meta)
		if err != nil {
			runErr = fmt.Errorf("publish model: %w", err)
		} else {
			ref = &Ref{Name: v.Model, Version: v.Digest}
			log.Info("model published", zap.String("model", v.Model), zap.String("version", v.Digest))
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.active.job
	m.active = nil
	now = m.now()
	cur.Updated = now
	var sc StateChange
	switch cause := context.Cause(jobCtx); {
	case runErr == nil:
		cur.State, cur.Result, cur.Ended = Succeeded, ref, now
		sc = StateChange{From: Running, To: Succeeded, Reason: "finished and published " + ref.Name + "@" + ref.Version}
	case errors.Is(cause, errCancelled):
		cur.State, cur.Ended = Cancelled, now
		sc = StateChange{From: Running, To: Cancelled, Reason: "cancelled by CancelJob"}
	case errors.Is(cause, errShutdown) || ctx.Err() != nil:
		cur.State = Interrupted
		cur.Failure = fmt.Sprintf("the trainer shut down at step %d; it resumes from the latest checkpoint", cur.Progress.Step)
		sc = StateChange{From: Running, To: Interrupted, Reason: cur.Failure}
	default:
		cur.State, cur.Ended = Failed, now
		cur.Failure = runErr.Error()
		sc = StateChange{From: Running, To: Failed, Reason: cur.Failure}
	}
	if err := m.store.Save(context.WithoutCancel(ctx), cur); err != nil {
		log.Error("save job", zap.Error(err))
	}
	log.Info("job stopped", zap.Stringer("state", cur.State), zap.String("reason", sc.Reason))
	if cur.State.Terminal() {
		m.finishLocked(cur, sc)
	} else {
		m.publishLocked(cur.ID, Event{Time: now, StateChange: &sc}, "")
	}
}

func (m *Manager) attempt(ctx context.Context, j Job) (Output, error) {
	rec, ok := LookupRecipe(j.Spec.Kind, j.Spec.Preset)
	if !ok {
		return Output{}, fmt.Errorf("preset %q for %s no longer exists", j.Spec.Preset, j.Spec.Kind)
	}
	ds, err := m.env.DatasetDir(j.Spec.Dataset)
	if err != nil {
		return Output{}, err
	}
	dir := filepath.Join(m.env.DataDir, "jobs", j.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Output{}, err
	}
	_ = atomicfile.CleanTemp(dir) // temporaries of writes a crash cut short
	t := Task{
		JobID: j.ID, Spec: j.Spec, Recipe: rec, Hyper: rec.Effective(j.Spec.Hyper),
		Dir: dir, DatasetDir: ds, ResumeFrom: LatestCheckpoint(dir),
		Report: reporter{m: m, id: j.ID},
	}
	if f := j.Spec.InitFrom; f != nil && t.ResumeFrom == "" {
		t.InitFrom = m.reg.Path(f.Name, f.Version)
		if _, err := os.Stat(t.InitFrom); err != nil {
			return Output{}, fmt.Errorf("spec.init_from %s@%s: the version is no longer in the registry (%w); create a new job from another version", f.Name, f.Version, err)
		}
	}
	return m.runner.Run(ctx, t)
}

// StartsFrom implements registry.InUse: a job that has not finished (queued,
// running or interrupted) may still need the version its spec's init_from
// pins (an attempt without a checkpoint loads it), so it may not be deleted.
func (m *Manager) StartsFrom(ctx context.Context, model, digest string) (string, error) {
	id, st, ok, err := m.store.StartingFrom(ctx, model, digest, Running, Queued, Interrupted)
	if err != nil || !ok {
		return "", err
	}
	return fmt.Sprintf("jobs/%s (%s) starts from it (init_from); cancel the job or wait until it has finished", id, st), nil
}

// LatestCheckpoint returns the job's checkpoint file when it reads back
// completely, or "". Writes are atomic, so a file that exists is complete; the
// read is a second line of defence against a damaged disk.
func LatestCheckpoint(jobDir string) string {
	p := filepath.Join(jobDir, CheckpointFile)
	if _, err := safetensors.ReadFile(p, safetensors.Options{}); err != nil {
		return ""
	}
	return p
}

// reporter forwards a running job's reports to its record and watchers.
type reporter struct {
	m  *Manager
	id string
}

func (r reporter) Progress(p Progress) {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.active
	if a == nil || a.job.ID != r.id {
		return
	}
	now := m.now()
	a.job.Progress, a.job.Updated = p, now
	m.publishLocked(r.id, Event{Time: now, Progress: &p}, "progress")
	if now.Sub(a.lastSave) >= progressSaveEvery {
		a.lastSave = now
		if err := m.store.Save(context.Background(), a.job); err != nil {
			m.log.Warn("save progress", zap.String("job", r.id), zap.Error(err))
		}
	}
}

func (r reporter) Sample(s Sample) {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publishLocked(r.id, Event{Time: m.now(), Sample: &s}, "sample")
}

func (r reporter) Checkpoint(step int64, path string) {
	m := r.m
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.active
	if a == nil || a.job.ID != r.id {
		return
	}
	rel, err := filepath.Rel(m.env.DataDir, path)
	if err != nil {
		rel = path
	}
	now := m.now()
	c := Checkpoint{Step: step, Path: rel, Time: now}
	a.job.Latest, a.job.Updated, a.lastSave = &c, now, now
	if err := m.store.Save(context.Background(), a.job); err != nil {
		m.log.Warn("save checkpoint record", zap.String("job", r.id), zap.Error(err))
		return
	}
	m.publishLocked(r.id, Event{Time: now, Checkpoint: &c}, "")
}
