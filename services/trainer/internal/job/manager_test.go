package job_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/fault"

	"github.com/hirez-ml/hirez/services/trainer/internal/job"
	"github.com/hirez-ml/hirez/services/trainer/internal/pubsub"
	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
	"github.com/hirez-ml/hirez/services/trainer/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRunner reports n progress events as fast as it can, then writes a real
// (untrained) ESPCN file, unless block is set, in which case it waits for ctx.
type fakeRunner struct {
	n     int
	block bool
	fail  error
	took  chan time.Duration
}

func (f *fakeRunner) Run(ctx context.Context, t job.Task) (job.Output, error) {
	start := time.Now()
	for i := 1; i <= f.n; i++ {
		t.Report.Progress(job.Progress{Step: int64(i), TotalSteps: int64(f.n)})
	}
	t.Report.Sample(job.Sample{Step: int64(f.n), PNG: []byte("\x89PNG"), Rows: 1, Cols: 1})
	ck := filepath.Join(t.Dir, job.CheckpointFile)
	if err := os.WriteFile(ck, nil, 0o644); err != nil {
		return job.Output{}, err
	}
	t.Report.Checkpoint(int64(f.n), ck)
	if f.took != nil {
		f.took <- time.Since(start)
	}
	if f.block {
		<-ctx.Done()
		return job.Output{}, ctx.Err()
	}
	if f.fail != nil {
		return job.Output{}, f.fail
	}
	net, err := model.Build("espcn-x2", ref.New(), model.Options{Side: 32})
	if err != nil {
		return job.Output{}, err
	}
	defer net.Free()
	p := filepath.Join(t.Dir, "model.safetensors")
	return job.Output{ModelPath: p}, net.Save(p, nil)
}

type fixture struct {
	m      *job.Manager
	reg    *registry.Registry
	cancel context.CancelFunc
	done   chan error
	dir    string
}

func newFixture(t *testing.T, r job.Runner, dir string) *fixture {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "datasets", "tiny"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := job.Env{DataDir: dir}
	m := job.NewManager(job.NewStore(db), reg, r, env, zaptest.NewLogger(t))
	if err := m.Recover(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{m: m, reg: reg, cancel: cancel, done: make(chan error, 1), dir: dir}
	go func() { f.done <- m.Run(ctx) }()
	t.Cleanup(func() { f.stop(t); db.Close() })
	return f
}

func (f *fixture) stop(t *testing.T) {
	if f.cancel == nil {
		return
	}
	f.m.Drain()
	f.reg.Close()
	f.cancel()
	if err := <-f.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	f.cancel = nil
}

func spec() job.Spec {
	return job.Spec{Kind: registry.KindESPCN, Preset: "x2", Dataset: "tiny", ModelName: "espcn-t", Hyper: job.Hyper{Steps: 10}}
}

func collect(t *testing.T, s *pubsub.Subscription[job.Event]) []job.Event {
	t.Helper()
	var out []job.Event
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		ev, err := s.Next(ctx)
		if errors.Is(err, pubsub.ErrClosed) {
			return out
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		out = append(out, ev)
	}
}

// A watcher that reads nothing while 200k progress reports go by neither slows
// the run nor misses the checkpoint and the final state.
func TestSlowWatcherNeverSlowsTraining(t *testing.T) {
	r := &fakeRunner{n: 200_000, took: make(chan time.Duration, 1)}
	f := newFixture(t, r, "")
	ctx := context.Background()
	j, err := f.m.Create(ctx, "slow-watch", spec())
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.m.Watch(ctx, j.ID) // subscribed, then not read until the end
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	select {
	case d := <-r.took:
		t.Logf("200k reports in %v", d)
	case <-time.After(30 * time.Second):
		t.Fatal("runner stalled behind a watcher that reads nothing")
	}
	evs := collect(t, w)
	if evs[0].Snapshot == nil {
		t.Fatal("first event is not a snapshot")
	}
	var progress, checkpoints int
	var last *job.StateChange
	for _, e := range evs {
		switch {
		case e.Progress != nil:
			progress++
		case e.Checkpoint != nil:
			checkpoints++
		case e.StateChange != nil:
			last = e.StateChange
		}
	}
	if progress > 10 || checkpoints != 1 || last == nil || last.To != job.Succeeded {
		t.Fatalf("%d progress (coalesced: want few), %d checkpoints, final %+v", progress, checkpoints, last)
	}
	got, err := f.m.Get(ctx, j.ID)
	if err != nil || got.State != job.Succeeded || got.Result == nil || got.Progress.Step != 200_000 {
		t.Fatalf("job %+v, %v", got, err)
	}
	if v, err := f.reg.Resolve(ctx, "espcn-t", "candidate"); err != nil || v.Digest != got.Result.Version || v.Metadata[registry.MetaDataset] != "datasets/tiny" {
		t.Fatalf("candidate %+v, %v", v, err)
	}
}

func TestCancelRunningAndResume(t *testing.T) {
	r := &fakeRunner{n: 3, block: true}
	f := newFixture(t, r, "")
	ctx := context.Background()
	if _, err := f.m.Create(ctx, "c", spec()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.m, "c", job.Running)
	j, err := f.m.Cancel(ctx, "c")
	if err != nil || j.State != job.Running {
		t.Fatalf("cancel running = %v, %v (the response may still say RUNNING)", j.State, err)
	}
	waitFor(t, f.m, "c", job.Cancelled)
	if _, err := f.m.Resume(ctx, "nope"); fault.KindOf(err) != fault.KindNotFound {
		t.Fatalf("resume unknown = %v", err)
	}
	r.block = false
	if j, err := f.m.Resume(ctx, "c"); err != nil || j.State != job.Queued {
		t.Fatalf("resume = %v, %v", j.State, err)
	}
	j = waitFor(t, f.m, "c", job.Succeeded)
	if j.Attempts != 2 {
		t.Fatalf("attempts %d", j.Attempts)
	}
	if _, err := f.m.Resume(ctx, "c"); fault.KindOf(err) != fault.KindFailedPrecondition {
		t.Fatalf("resume succeeded job = %v, want FailedPrecondition", err)
	}
	if j2, err := f.m.Cancel(ctx, "c"); err != nil || j2.State != job.Succeeded {
		t.Fatalf("cancel terminal = %v, %v (want unchanged)", j2.State, err)
	}
}

func TestFailureIsRecorded(t *testing.T) {
	f := newFixture(t, &fakeRunner{n: 1, fail: errors.New("training diverged: loss d is NaN")}, "")
	if _, err := f.m.Create(context.Background(), "bad", spec()); err != nil {
		t.Fatal(err)
	}
	j := waitFor(t, f.m, "bad", job.Failed)
	if j.Failure != "training diverged: loss d is NaN" || j.Ended.IsZero() {
		t.Fatalf("failed job %+v", j)
	}
}

// A trainer stopping mid-job leaves it INTERRUPTED; the next start resumes it
// with autoResume.
func TestShutdownInterruptsAndAutoResumes(t *testing.T) {
	f := newFixture(t, &fakeRunner{n: 2, block: true}, "")
	if _, err := f.m.Create(context.Background(), "i", spec()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.m, "i", job.Running)
	f.stop(t)
	dir := f.dir
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.NewStore(db).Get(context.Background(), "i")
	db.Close()
	if err != nil || j.State != job.Interrupted || j.Latest == nil {
		t.Fatalf("after shutdown: %+v, %v", j, err)
	}
	g := newFixtureAuto(t, &fakeRunner{n: 2}, dir)
	j = waitFor(t, g, "i", job.Succeeded)
	if j.Attempts != 2 {
		t.Fatalf("attempts %d", j.Attempts)
	}
}

func newFixtureAuto(t *testing.T, r job.Runner, dir string) *job.Manager {
	t.Helper()
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := job.NewManager(job.NewStore(db), reg, r, job.Env{DataDir: dir}, zaptest.NewLogger(t))
	if err := m.Recover(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		m.Drain()
		reg.Close()
		cancel()
		<-done
		db.Close()
	})
	return m
}

func waitFor(t *testing.T, m *job.Manager, id string, want job.State) job.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		j, err := m.Get(context.Background(), id)
		if err == nil && j.State == want {
			return j
		}
		time.Sleep(10 * time.Millisecond)
	}
	j, _ := m.Get(context.Background(), id)
	t.Fatalf("job %s is %v (%s), want %v", id, j.State, j.Failure, want)
	return job.Job{}
}
