// The registry's values: kinds, versions and models, change events, scores
// and the promotion gate's types.

package registry

import (
	"context"
	"strconv"
	"time"
)

// Kind is what a model computes.
type Kind int

// Kinds; the numbers match hirez.v1.ModelKind for readability only.
const (
	KindUnspecified Kind = iota
	KindDCGANGenerator
	KindUpsampler
	KindSRCNN
	KindESPCN
)

var kindNames = map[Kind]string{
	KindDCGANGenerator: "dcgan-generator", KindUpsampler: "upsampler",
	KindSRCNN: "srcnn", KindESPCN: "espcn",
}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is a known, specified kind.
func (k Kind) Valid() bool { _, ok := kindNames[k]; return ok }

// Generator reports whether the kind maps a latent to an image (judged by SWD);
// the others are x2 upscalers (judged by PSNR).
func (k Kind) Generator() bool { return k == KindDCGANGenerator }

// Metadata keys the trainer writes into published files beside the engine's.
const (
	MetaDataset   = "hirez.dataset"    // dataset the model was trained on, relative to the data dir
	MetaSourceJob = "hirez.source_job" // "jobs/<id>"
	MetaKind      = "hirez.model_kind"
)

// Version is one immutable model file.
type Version struct {
	Model     string
	Digest    string // "sha256:<hex>"
	Kind      Kind
	Preset    string
	Aliases   []string
	Size      int64
	ImageSize int
	LatentDim int
	SourceJob string
	Metrics   map[string]float64
	Metadata  map[string]string
	Created   time.Time
}

// Model is a named series of versions.
type Model struct {
	Name         string
	Kind         Kind
	Aliases      map[string]string
	VersionCount int
	Created      time.Time
	Updated      time.Time
}

// EventType says what changed.
type EventType int

// Event types.
const (
	VersionCreated EventType = iota + 1
	AliasSet
	AliasRemoved
	VersionDeleted
)

// Event is one registry change.
type Event struct {
	Type     EventType
	Model    string
	Version  string
	Alias    string
	Previous string
	Time     time.Time
}

// Change is what a watcher receives: Snapshot first, then one Event each.
type Change struct {
	Snapshot []Model
	Event    *Event
}

// Score is a model's value on an evaluation set.
type Score struct {
	Metric         string
	HigherIsBetter bool
	Value          float64
}

// Evaluator scores a model file on the images in evalDir.
type Evaluator interface {
	Evaluate(ctx context.Context, v Version, path, evalDir string) (Score, error)
}

// Canary is PromoteModel's check.
type Canary struct {
	Score
	Old      *float64
	Passed   bool
	Refusal  string
	OldValue string // production digest the old value belongs to
}

// Promotion is PromoteModel's outcome.
type Promotion struct {
	Promoted bool
	Version  Version
	Previous string
	Canary   Canary
}

// InUse says why a version must be kept although no alias points at it (a
// job that has not finished starts from it), or "" when nothing needs it.
type InUse func(ctx context.Context, model, digest string) (string, error)
