// Package job is the trainer's domain: job specs and their validation, job
// records persisted in SQLite, and the Manager that queues jobs, runs one at a
// time per device through a Runner, checkpoints, resumes after crashes,
// publishes the result to the registry and streams events to watchers. It
// knows nothing of gRPC.
package job

import (
	"time"

	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// State is a job's lifecycle state.
type State int

// States; the numbers match hirez.v1.JobState.
const (
	StateUnspecified State = iota
	Queued
	Running
	Succeeded
	Failed
	Cancelled
	Interrupted
)

var stateNames = [...]string{"unspecified", "queued", "running", "succeeded", "failed", "cancelled", "interrupted"}

func (s State) String() string {
	if int(s) < len(stateNames) && s >= 0 {
		return stateNames[s]
	}
	return "state?"
}

// Terminal reports whether the job has stopped for good (until a resume).
func (s State) Terminal() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Loss is the training loss.
type Loss int

// Losses; the numbers match hirez.v1.Loss.
const (
	LossDefault Loss = iota
	LossBCE
	LossHinge
	LossMSE
)

func (l Loss) String() string {
	switch l {
	case LossBCE:
		return "bce"
	case LossHinge:
		return "hinge"
	case LossMSE:
		return "mse"
	}
	return "default"
}

// Hyper are hyperparameter overrides; zero means "the preset's value".
type Hyper struct {
	GLR, DLR        float32
	Beta1, Beta2    float32
	BatchSize       int
	Epochs          int
	Steps           int64
	CheckpointEvery int64
	SampleEvery     int64
	Loss            Loss
	EMADecay        float32
	DisableEMA      bool
}

// Ref names a registry model version (Version: digest or alias).
type Ref struct {
	Name    string
	Version string
}

// Spec is what a job trains; fixed at creation.
type Spec struct {
	Kind      registry.Kind
	Preset    string
	Dataset   string
	ImageSize int
	Hyper     Hyper
	Backend   string
	ModelName string
	Seed      int64
	InitFrom  *Ref
}

// Progress is the latest measured progress.
type Progress struct {
	Step         int64
	TotalSteps   int64
	Epoch        int
	Losses       map[string]float32
	ImagesPerSec float32
	ETA          time.Duration
}

// Checkpoint is a checkpoint written by a job.
type Checkpoint struct {
	Step int64
	Path string // relative to the data dir
	Time time.Time
}

// Sample is a sample grid.
type Sample struct {
	Step       int64
	PNG        []byte
	Rows, Cols int
}

// Job is a training job.
type Job struct {
	ID       string
	Spec     Spec
	State    State
	Failure  string
	Progress Progress
	Latest   *Checkpoint
	Result   *Ref // published version (digest)
	Attempts int
	Created  time.Time
	Started  time.Time
	Updated  time.Time
	Ended    time.Time
}

// Name is the job's resource name.
func (j Job) Name() string { return "jobs/" + j.ID }

// StateChange is a state transition.
type StateChange struct {
	From, To State
	Reason   string
}

// Event is one thing a watcher sees; exactly one field besides Time is set.
type Event struct {
	Time        time.Time
	Snapshot    *Job
	Progress    *Progress
	Sample      *Sample
	Checkpoint  *Checkpoint
	StateChange *StateChange
}
