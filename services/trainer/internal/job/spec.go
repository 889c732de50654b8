package job

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
)

// Recipe is a job preset: which engine presets to train and the default
// hyperparameters. Every Hyper field of Defaults is set.
type Recipe struct {
	Kind     registry.Kind
	Name     string // the JobSpec.preset value, e.g. "study"
	Net      string // engine preset of the network that is published
	Critic   string // engine preset of the discriminator; "" for super-resolution
	Side     int    // default training resolution
	Defaults Hyper
	// LabelSmoothing is the one-sided label smoothing of the adversarial
	// recipes (not a JobSpec field: part of the preset).
	LabelSmoothing float32
}

func ganDefaults(loss Loss, glr, dlr, ema float32) Hyper {
	return Hyper{GLR: glr, DLR: dlr, Beta1: 0.5, Beta2: 0.999, BatchSize: 64, Epochs: 100,
		CheckpointEvery: 500, SampleEvery: 200, Loss: loss, EMADecay: ema, DisableEMA: ema == 0}
}

func srDefaults(lr float32) Hyper {
	return Hyper{GLR: lr, Beta1: 0.9, Beta2: 0.999, BatchSize: 16, Epochs: 100,
		CheckpointEvery: 500, SampleEvery: 200, Loss: LossMSE, DisableEMA: true}
}

// recipes is the table of job presets (docs/training-service.md lists it).
// "study" is the study's recipe (engine/train.DefaultRecipe: DCGAN-paper Adam,
// BCE, the study's networks); "stable" is engine/train.StableRecipe on the
// BatchNorm networks (a slower D, one-sided label smoothing, EMA of G).
var recipes = []Recipe{
	{Kind: registry.KindDCGANGenerator, Name: "study", Net: "dcgan-g-study", Critic: "dcgan-d-study", Side: 32, Defaults: ganDefaults(LossBCE, 2e-4, 2e-4, 0)},
	{Kind: registry.KindDCGANGenerator, Name: "stable", Net: "dcgan-g-stable", Critic: "dcgan-d-stable", Side: 32, Defaults: ganDefaults(LossBCE, 2e-4, 1e-4, 0.999), LabelSmoothing: 0.1},
	{Kind: registry.KindUpsampler, Name: "study", Net: "upsampler-study", Critic: "upsampler-d-study", Side: 32, Defaults: ganDefaults(LossBCE, 2e-4, 2e-4, 0)},
	{Kind: registry.KindUpsampler, Name: "stable", Net: "upsampler-stable", Critic: "dcgan-d-stable", Side: 32, Defaults: ganDefaults(LossBCE, 2e-4, 1e-4, 0.999), LabelSmoothing: 0.1},
	{Kind: registry.KindSRCNN, Name: "study", Net: "srcnn-study", Side: 32, Defaults: srDefaults(1e-3)},
	{Kind: registry.KindSRCNN, Name: "classic", Net: "srcnn-classic", Side: 32, Defaults: srDefaults(1e-3)},
	{Kind: registry.KindESPCN, Name: "x2", Net: "espcn-x2", Side: 32, Defaults: srDefaults(1e-3)},
}

// LookupRecipe finds the recipe for kind and preset; the preset may be the
// short name ("study") or the engine preset name ("dcgan-g-study").
func LookupRecipe(kind registry.Kind, preset string) (Recipe, bool) {
	for _, r := range recipes {
		if r.Kind == kind && (r.Name == preset || r.Net == preset) {
			return r, true
		}
	}
	return Recipe{}, false
}

func recipeNames(kind registry.Kind) []string {
	var out []string
	for _, r := range recipes {
		if r.Kind == kind {
			out = append(out, r.Name)
		}
	}
	return out
}

// Effective returns the spec's hyperparameters with the recipe's defaults
// filled in.
func (r Recipe) Effective(h Hyper) Hyper {
	d := r.Defaults
	pick := func(v, def float32) float32 {
		if v == 0 {
			return def
		}
		return v
	}
	out := Hyper{
		GLR: pick(h.GLR, d.GLR), DLR: pick(h.DLR, d.DLR),
		Beta1: pick(h.Beta1, d.Beta1), Beta2: pick(h.Beta2, d.Beta2),
		BatchSize: h.BatchSize, Epochs: h.Epochs, Steps: h.Steps,
		CheckpointEvery: h.CheckpointEvery, SampleEvery: h.SampleEvery,
		Loss: h.Loss, EMADecay: pick(h.EMADecay, d.EMADecay), DisableEMA: h.DisableEMA || d.DisableEMA && h.EMADecay == 0,
	}
	if out.BatchSize == 0 {
		out.BatchSize = d.BatchSize
	}
	if out.Epochs == 0 && out.Steps == 0 {
		out.Epochs = d.Epochs
	}
	if out.CheckpointEvery == 0 {
		out.CheckpointEvery = d.CheckpointEvery
	}
	if out.SampleEvery == 0 {
		out.SampleEvery = d.SampleEvery
	}
	if out.Loss == LossDefault {
		out.Loss = d.Loss
	}
	if out.DisableEMA {
		out.EMADecay = 0
	}
	return out
}

// Limits on hyperparameters beyond the API's: values past them are mistakes.
const (
	MaxLearningRate = 1.0
	MaxEpochs       = 1_000_000
	MaxSteps        = 1_000_000_000
)

// Env is what validation checks a spec against.
type Env struct {
	DataDir string
	// Unavailable says why this trainer cannot open a backend ("" when it can).
	Unavailable func(backend string) string
}

// Validate checks every field of spec and returns a fault.KindInvalid error
// whose message says which field is wrong and what would be right. It
// resolves nothing (spec.init_from is resolved and checked by Create, see
// checkInitFrom) and creates nothing.
func (e Env) Validate(ctx context.Context, s Spec) error {
	if !s.Kind.Valid() {
		return fault.Invalid("spec.model_kind is required: one of MODEL_KIND_DCGAN_GENERATOR, MODEL_KIND_UPSAMPLER, MODEL_KIND_SRCNN, MODEL_KIND_ESPCN")
	}
	if s.Preset == "" {
		return fault.Invalid("spec.preset is required for %s: one of %s", s.Kind, strings.Join(recipeNames(s.Kind), ", "))
	}
	rec, ok := LookupRecipe(s.Kind, s.Preset)
	if !ok {
		return fault.Invalid("spec.preset %q is not a preset for %s: use one of %s", s.Preset, s.Kind, strings.Join(recipeNames(s.Kind), ", "))
	}
	if _, err := e.DatasetDir(s.Dataset); err != nil {
		return err
	}
	if s.ImageSize != 0 {
		n := s.ImageSize
		if n < limits.MinImageSize || n > limits.MaxImageSize || n&(n-1) != 0 {
			return fault.Invalid("spec.image_size %d: use a power of two from %d to %d, or 0 for the preset's %d", n, limits.MinImageSize, limits.MaxImageSize, rec.Side)
		}
		if !s.Kind.Generator() && 2*n > limits.MaxImageSize {
			return fault.Invalid("spec.image_size %d: an x2 model's input side must be at most %d so that its output fits %d", n, limits.MaxImageSize/2, limits.MaxImageSize)
		}
	}
	if err := validateHyper(s.Kind, rec, s.Hyper); err != nil {
		return err
	}
	if s.Backend != "" && e.Unavailable != nil {
		if why := e.Unavailable(s.Backend); why != "" {
			return fault.Invalid("spec.backend %q: %s", s.Backend, why)
		}
	}
	if s.ModelName == "" {
		return fault.Invalid("spec.model_name is required: the registry name to publish under, e.g. \"dcgan-emoji-32\"")
	}
	if err := limits.CheckName("spec.model_name", s.ModelName); err != nil {
		return fault.Invalid("%w", err)
	}
	if s.InitFrom != nil {
		if err := limits.CheckName("spec.init_from.name", s.InitFrom.Name); err != nil {
			return fault.Invalid("%w", err)
		}
	}
	return nil
}

// checkInitFrom checks the registry version v that spec.init_from resolved to
// (Manager.Create resolves it once, holding the registry's lock) against the
// job: same kind, same network preset.
func checkInitFrom(s Spec, v registry.Version) error {
	rec, ok := LookupRecipe(s.Kind, s.Preset)
	if !ok { // Validate refused it already
		return fault.Invalid("spec.preset %q is not a preset for %s", s.Preset, s.Kind)
	}
	if v.Kind != s.Kind {
		return fault.Invalid("spec.init_from %s is a %s model; this job trains a %s", v.Model, v.Kind, s.Kind)
	}
	if v.Preset != rec.Net {
		return fault.Invalid("spec.init_from %s@%s has preset %q; this job's preset is %q", v.Model, v.Digest, v.Preset, rec.Net)
	}
	return nil
}

func validateHyper(kind registry.Kind, rec Recipe, h Hyper) error {
	rate := func(field string, v float32) error {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > MaxLearningRate {
			return fault.Invalid("spec.hyperparameters.%s %v: use a finite value in (0, %g], or 0 for the preset's", field, v, MaxLearningRate)
		}
		return nil
	}
	unit := func(field string, v float32) error {
		f := float64(v)
		if math.IsNaN(f) || f < 0 || f >= 1 {
			return fault.Invalid("spec.hyperparameters.%s %v: use a value in [0, 1)", field, v)
		}
		return nil
	}
	for _, err := range []error{
		rate("generator_learning_rate", h.GLR), rate("discriminator_learning_rate", h.DLR),
		unit("beta1", h.Beta1), unit("beta2", h.Beta2), unit("ema_decay", h.EMADecay),
	} {
		if err != nil {
			return err
		}
	}
	if h.DLR != 0 && rec.Critic == "" {
		return fault.Invalid("spec.hyperparameters.discriminator_learning_rate: %s has no discriminator; leave it 0", kind)
	}
	switch {
	case h.BatchSize < 0 || h.BatchSize > limits.MaxTrainBatchSize:
		return fault.Invalid("spec.hyperparameters.batch_size %d: use 1..%d, or 0 for the preset's %d", h.BatchSize, limits.MaxTrainBatchSize, rec.Defaults.BatchSize)
	case h.Epochs < 0 || h.Epochs > MaxEpochs:
		return fault.Invalid("spec.hyperparameters.epochs %d: use 1..%d, or 0", h.Epochs, MaxEpochs)
	case h.Steps < 0 || h.Steps > MaxSteps:
		return fault.Invalid("spec.hyperparameters.steps %d: use 1..%d, or 0", h.Steps, MaxSteps)
	case h.Epochs > 0 && h.Steps > 0:
		return fault.Invalid("spec.hyperparameters: set epochs (%d) or steps (%d), not both", h.Epochs, h.Steps)
	case h.CheckpointEvery < 0 || h.CheckpointEvery > MaxSteps:
		return fault.Invalid("spec.hyperparameters.checkpoint_interval_steps %d: use 1..%d, or 0 for the preset's", h.CheckpointEvery, MaxSteps)
	case h.SampleEvery < 0 || h.SampleEvery > MaxSteps:
		return fault.Invalid("spec.hyperparameters.sample_interval_steps %d: use 1..%d, or 0 for the preset's", h.SampleEvery, MaxSteps)
	}
	switch h.Loss {
	case LossDefault:
	case LossMSE:
		if rec.Critic != "" {
			return fault.Invalid("spec.hyperparameters.loss LOSS_MSE is for super-resolution kinds; %s is adversarial: use LOSS_BCE or LOSS_HINGE", kind)
		}
	case LossBCE, LossHinge:
		if rec.Critic == "" {
			return fault.Invalid("spec.hyperparameters.loss %s is for adversarial kinds; %s trains with LOSS_MSE", strings.ToUpper("LOSS_"+h.Loss.String()), kind)
		}
	default:
		return fault.Invalid("spec.hyperparameters.loss %d is not a known Loss", int(h.Loss))
	}
	return nil
}

// DatasetDir resolves a JobSpec.dataset: a name under <data-dir>/datasets, or
// a path relative to the data dir that stays inside it.
func (e Env) DatasetDir(ds string) (string, error) {
	if ds == "" {
		return "", fault.Invalid("spec.dataset is required: a dataset name (%s) or a directory relative to the data dir", e.knownDatasets())
	}
	if filepath.IsAbs(ds) || strings.HasPrefix(ds, "/") {
		return "", fault.Invalid("spec.dataset %q is an absolute path; give a path relative to the trainer's data dir", ds)
	}
	if slices.Contains(strings.FieldsFunc(ds, func(r rune) bool { return r == '/' || r == '\\' }), "..") {
		return "", fault.Invalid("spec.dataset %q contains \"..\"; give a path inside the trainer's data dir", ds)
	}
	if !filepath.IsLocal(ds) {
		return "", fault.Invalid("spec.dataset %q is not a plain relative path inside the data dir", ds)
	}
	var cands []string
	if limits.ValidName(ds) {
		cands = append(cands, filepath.Join(e.DataDir, "datasets", ds))
	}
	cands = append(cands, filepath.Join(e.DataDir, ds))
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c, nil
		}
	}
	return "", fault.Invalid("spec.dataset %q: no such directory in the data dir (known datasets: %s)", ds, e.knownDatasets())
}

// DatasetRel is DatasetDir relative to the data dir (what the registry records).
func (e Env) DatasetRel(ds string) (string, error) {
	dir, err := e.DatasetDir(ds)
	if err != nil {
		return "", err
	}
	return filepath.Rel(e.DataDir, dir)
}

func (e Env) knownDatasets() string {
	entries, _ := os.ReadDir(filepath.Join(e.DataDir, "datasets"))
	var names []string
	for _, en := range entries {
		if en.IsDir() {
			names = append(names, en.Name())
		}
	}
	if len(names) == 0 {
		return "none under datasets/"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
