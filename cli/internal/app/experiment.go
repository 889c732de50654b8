package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/features"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/train"
)

func experimentCommand() Command {
	return Command{
		Name:    "experiment",
		Summary: "the study's comparison (single DCGAN, multi-stage GAN, DCGAN+SRCNN) at a small size",
		Run:     runExperiment,
	}
}

// experiment is the study's comparison at h → 2h: (a) one DCGAN at 2h, (b) a DCGAN
// at h and an Up Sampler h → 2h, (c) the same DCGAN at h and an SR net ×2 — once
// with equal epochs per stage and once with an equal compute budget per approach
// (split evenly between the two stages of b and c). Every adversarial stage uses
// the same recipe.
//
// The budget is process CPU time by default: the stages run one after another in
// this one process, so the CPU seconds a stage consumes (getrusage, every thread)
// measure its compute, whereas its wall-clock time also counts whatever else the
// machine is running. Both are reported.
type experiment struct {
	b                     backend.Backend
	ganData, srData, eval string
	work                  string // run folders
	gridDir, gridRel      string // where grids go, and how the report links them
	side                  int
	epochs                float64       // per stage, equal-epochs part; ≤ 0 skips it
	budget                time.Duration // per approach, equal-budget part; ≤ 0 skips it
	budgetCPU             bool          // the budget is process CPU time (else wall-clock time)
	recipe                train.Recipe
	srPreset              string
	srBatch, srPatch      int
	n                     int // SWD images per set
	srEvalLimit           int
	seed                  uint64
	log                   io.Writer
	feat                  *featureEval // nil without the extractor: SWD only
}

// stageResult is one trained stage.
type stageResult struct {
	weights string
	took    time.Duration // wall-clock training time
	cpu     time.Duration // process CPU time the stage consumed
	steps   int
}

// row is one approach in one part.
type row struct {
	name, stages string
	took, cpu    time.Duration
	swd          train.GANScore
	feat         *features.Score // nil without the extractor
	srPSNR       string
	grid         string
}

func runExperiment(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "experiment", "--gan-data DIR --heldout DIR --out DIR --report FILE [flags]")
	e := experiment{log: env.Stdout}
	fs.StringVar(&e.ganData, "gan-data", "data/noto128/train", "training images of the GANs (and of the SR net unless --sr-data)")
	fs.StringVar(&e.srData, "sr-data", "", "training images of the SR net (default: --gan-data, i.e. the emoji)")
	fs.StringVar(&e.eval, "heldout", "data/noto128/heldout", "held-out images for SWD and the SR stage's PSNR")
	fs.StringVar(&e.work, "work", "out/experiment", "folder for the runs (checkpoints, weights)")
	fs.StringVar(&e.gridDir, "grids", "docs/experiment", "folder for the sample grids (PNG)")
	report := fs.String("report", "docs/experiment.md", "the markdown report")
	fs.IntVar(&e.side, "side", 32, "h: the first stage's side (output 2h)")
	fs.Float64Var(&e.epochs, "epochs", 5, "epochs per stage in the equal-epochs part (fractions allowed; 0 skips)")
	fs.DurationVar(&e.budget, "budget", 10*time.Minute, "compute per approach in the equal-budget part, measured by --budget-clock (0 skips)")
	defaultClock := "cpu"
	if _, ok := processCPU(); !ok {
		defaultClock = "wall"
	}
	clock := fs.String("budget-clock", defaultClock, "what --budget measures: cpu (process CPU time, all threads) or wall (wall-clock time)")
	fs.IntVar(&e.n, "n", 500, "SWD images per set (capped at half the held-out images)")
	fs.IntVar(&e.srEvalLimit, "sr-eval", 200, "held-out images for the SR stage's PSNR")
	fs.StringVar(&e.srPreset, "sr", "srcnn-classic", "SR preset of approach (c)")
	fs.IntVar(&e.srPatch, "sr-patch", 48, "HR patch side of the SR training")
	fs.Uint64Var(&e.seed, "seed", 1, "seed of every run")
	batch := fs.Int("batch", 64, "GAN batch size")
	featPath := fs.String("features", DefaultFeatures, "feature extractor for KID, precision/recall and copies beside SWD (skipped when the default is absent)")
	backendName := fs.String("backend", "", "backend: "+choose.Describe(true))
	if err := parse(fs, args); err != nil {
		return err
	}
	if e.srData == "" {
		e.srData = e.ganData
	}
	switch *clock {
	case "cpu":
		if _, ok := processCPU(); !ok {
			return usagef("--budget-clock cpu: process CPU time is not available on this system; use --budget-clock wall")
		}
		e.budgetCPU = true
	case "wall":
	default:
		return usagef("--budget-clock %q: want cpu or wall", *clock)
	}
	for _, d := range []string{e.ganData, e.srData, e.eval} {
		if _, err := os.Stat(d); err != nil {
			return usagef("%v (run 'make data' first)", err)
		}
	}
	e.recipe = train.StableRecipe()
	e.recipe.Batch = *batch
	e.srBatch = 32
	var err error
	if e.b, err = choose.OpenWith(*backendName, choose.Options{Training: true}); err != nil {
		return usagef("%v", err)
	}
	defer e.b.Close()
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "features" })
	if e.feat, err = openFeatureEval(ctx, e.b, *featPath, e.eval, e.ganData, nil, explicit); err != nil {
		return err
	}
	defer e.feat.free()
	if rel, err := filepath.Rel(filepath.Dir(*report), e.gridDir); err == nil {
		e.gridRel = rel
	}
	md, err := e.run(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*report), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*report, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "report: %s\n", *report)
	return nil
}

func (e *experiment) run(ctx context.Context) (string, error) {
	if err := os.MkdirAll(e.gridDir, 0o755); err != nil {
		return "", err
	}
	real, err := train.LoadSquare(ctx, e.eval, 2*e.side, 2*e.n)
	if err != nil {
		return "", err
	}
	var md strings.Builder
	h, h2 := e.side, 2*e.side
	fmt.Fprintf(&md, "# The study's comparison at %d → %d px\n\n", h, h2)
	fmt.Fprintf(&md, "Made by `hirez experiment` (scripts/experiment.sh) on %s, %d CPUs visible, backend `%s`, %s.\n\n",
		cpuModel(), runtime.NumCPU(), e.b.Name(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&md, "- GAN data: `%s`; SR data: `%s` (approach c's SR net is trained on these images, at their own resolution); held-out set: `%s`.\n", e.ganData, e.srData, e.eval)
	fmt.Fprintf(&md, "- Approaches: **(a)** one DCGAN at %d; **(b)** multi-stage: DCGAN at %d + Up Sampler %d→%d (`upsampler-stable`, adversarial + 10·MSE content); **(c)** DCGAN at %d + `%s` ×2 (MSE). (b) and (c) share one DCGAN at %d.\n", h2, h, h, h2, h, e.srPreset, h)
	fmt.Fprintf(&md, "- Same adversarial recipe everywhere: `dcgan-g-stable`/`dcgan-d-stable`, %s. SR: Adam 1e-3, batch %d patches of %d px.\n", e.recipe, e.srBatch, e.srPatch)
	fmt.Fprintf(&md, "- SWD ×10³ (ProGAN protocol, mean over pyramid levels) of generated %d px images vs the held-out set, beside the real-vs-real floor on sets of the same size; lower is better, the floor is the best reachable.\n", h2)
	if e.feat != nil {
		fmt.Fprintf(&md, "- Feature space (`%s`, docs/metrics.md): KID ×10³ of the same images vs the held-out set beside its floor (training images vs held-out), improved precision and recall (k = 3), and the share of images closer to a training image than any held-out image is (copies).\n", e.feat.path)
	}
	fmt.Fprintf(&md, "- SR-stage PSNR: the second stage alone on held-out images ×2 (MATLAB-bicubic LR, Y channel, %d images), Δ against bicubic.\n\n", e.srEvalLimit)
	if e.epochs > 0 {
		rows, err := e.part(ctx, "epochs", func(o *train.Options, imagesPerStep int, files int) {
			o.Steps = max(1, int(math.Ceil(e.epochs*float64(files)/float64(imagesPerStep))))
		}, real)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&md, "## Equal epochs: %g per stage\n\n", e.epochs)
		writeRows(&md, rows, e.gridRel)
	}
	if e.budget > 0 {
		rows, err := e.part(ctx, "budget", nil, real)
		if err != nil {
			return "", err
		}
		if e.budgetCPU {
			fmt.Fprintf(&md, "## Equal compute budget: %s of process CPU time per approach (b and c: half per stage)\n\n", e.budget)
			fmt.Fprintf(&md, "Each stage stops once it has consumed its share of CPU time (user + system, all threads of this process, getrusage), so a busy machine slows the stages down but does not shrink their compute; the wall-clock time is reported beside it.\n\n")
		} else {
			fmt.Fprintf(&md, "## Equal wall-clock budget: %s per approach (b and c: half per stage)\n\n", e.budget)
		}
		writeRows(&md, rows, e.gridRel)
	}
	return md.String(), nil
}

// part trains and scores the three approaches. limit sets a stage's limit from its
// images per step and the data's file count; nil means the equal-budget part.
func (e *experiment) part(ctx context.Context, tag string, limit func(*train.Options, int, int), real []*imageio.RGB) ([]row, error) {
	files := func(dir string) int {
		names, _, err := train.LoadImages(dir, -1)
		if err != nil {
			return 1
		}
		return max(1, len(names))
	}
	gFiles, sFiles := files(e.ganData), files(e.srData)
	// stageSpec is a stage's options and its CPU budget (0: none; the loop's own
	// limits stop it).
	type stageSpec struct {
		o   train.Options
		cpu time.Duration
	}
	opts := func(name string, stageBudget time.Duration, imagesPerStep, nfiles int) stageSpec {
		o := train.Options{Backend: e.b, Out: filepath.Join(e.work, tag, name), Seed: e.seed, Data: e.ganData, Samples: 16}
		pr := newProgress(e.log, tag+"/"+name)
		pr.every = 30 * time.Second
		o.OnProgress = pr.update
		var cpuLimit time.Duration
		switch {
		case limit != nil:
			limit(&o, imagesPerStep, nfiles)
		case e.budgetCPU:
			// The loop needs a limit of its own; the CPU watchdog (stage) stops it
			// first. A wall-clock cap of 20× the share only guards against a hang.
			cpuLimit, o.Budget = stageBudget, 20*stageBudget
		default:
			o.Budget = stageBudget
		}
		return stageSpec{o, cpuLimit}
	}
	stage := func(name string, f func(ctx context.Context, o train.Options) (train.Result, error), sp stageSpec) (stageResult, error) {
		fmt.Fprintf(e.log, "== %s/%s\n", tag, name)
		cpu0, _ := processCPU()
		res, err := trainCPU(ctx, f, sp.o, sp.cpu, cpu0)
		if err != nil {
			return stageResult{}, fmt.Errorf("%s/%s: %w", tag, name, err)
		}
		cpu1, _ := processCPU()
		fmt.Fprintf(e.log, "%s/%s: %d steps in %s wall, %s CPU\n", tag, name, res.Steps, res.Elapsed.Round(time.Second), (cpu1 - cpu0).Round(time.Second))
		return stageResult{weights: res.Weights, took: res.Elapsed, cpu: cpu1 - cpu0, steps: res.Steps}, nil
	}
	gan := func(side int) train.GANConfig {
		return train.GANConfig{Generator: "dcgan-g-stable", Discriminator: "dcgan-d-stable", Side: side, Recipe: e.recipe}
	}
	half := max(e.budget/2, time.Nanosecond)
	b := e.recipe.Batch
	a, err := stage("a-dcgan64", func(ctx context.Context, o train.Options) (train.Result, error) {
		return train.GAN(ctx, gan(2*e.side), o)
	}, opts("a-dcgan", e.budget, b, gFiles))
	if err != nil {
		return nil, err
	}
	g32, err := stage("dcgan32", func(ctx context.Context, o train.Options) (train.Result, error) {
		return train.GAN(ctx, gan(e.side), o)
	}, opts("dcgan-h", half, b, gFiles))
	if err != nil {
		return nil, err
	}
	up, err := stage("b-upsampler", func(ctx context.Context, o train.Options) (train.Result, error) {
		return train.MultiStage(ctx, train.MultiStageConfig{Upsampler: "upsampler-stable", Discriminator: "dcgan-d-stable", Side: e.side, Recipe: e.recipe, ContentWeight: 10}, o)
	}, opts("b-upsampler", half, b, gFiles))
	if err != nil {
		return nil, err
	}
	sr, err := stage("c-sr", func(ctx context.Context, o train.Options) (train.Result, error) {
		o.Data = e.srData
		return train.SR(ctx, train.SRConfig{Preset: e.srPreset, Batch: e.srBatch, Patch: e.srPatch, PatchesPerImage: 4}, o)
	}, opts("c-sr", half, e.srBatch/4, sFiles))
	if err != nil {
		return nil, err
	}
	score := func(name, stages string, took, cpu time.Duration, gen string, upscaler string) (row, error) {
		fmt.Fprintf(e.log, "scoring %s/%s\n", tag, name)
		g, _, err := model.Open(gen, e.b)
		if err != nil {
			return row{}, err
		}
		defer g.Free()
		var chain []train.Upscaler
		r := row{name: name, stages: stages, took: took, cpu: cpu, srPSNR: "—"}
		if upscaler != "" {
			u, _, err := model.Open(upscaler, e.b)
			if err != nil {
				return row{}, err
			}
			defer u.Free()
			chain = append(chain, u)
			names, imgs, err := train.LoadImages(e.eval, e.srEvalLimit)
			if err != nil {
				return row{}, err
			}
			sc, err := train.EvalSR(ctx, u, 2, 2, names, imgs)
			if err != nil {
				return row{}, err
			}
			bq, mq := train.MeanSR(sc)
			r.srPSNR = fmt.Sprintf("%.2f (%+.2f vs bicubic %.2f)", mq.PSNR, mq.PSNR-bq.PSNR, bq.PSNR)
		}
		fake, err := train.Generate(ctx, g, chain, min(e.n, len(real)/2), nil)
		if err != nil {
			return row{}, err
		}
		if r.swd, err = train.EvalGAN(ctx, fake, real, metrics.DefaultSWD()); err != nil {
			return row{}, err
		}
		if e.feat != nil {
			fs, err := e.feat.score(ctx, fake)
			if err != nil {
				return row{}, err
			}
			r.feat = &fs
		}
		gi, err := imageio.Grid(fake[:min(16, len(fake))], imageio.GridOptions{Cols: 8, Pad: 2})
		if err != nil {
			return row{}, err
		}
		r.grid = fmt.Sprintf("%s-%s.png", tag, name[:1])
		if err := imageio.WritePNGFile(filepath.Join(e.gridDir, r.grid), gi); err != nil {
			return row{}, err
		}
		return r, nil
	}
	var rows []row
	for _, x := range []struct {
		name, stages string
		took, cpu    time.Duration
		gen, up      string
	}{
		{"a: single DCGAN", fmt.Sprintf("DCGAN %d (%d steps)", 2*e.side, a.steps), a.took, a.cpu, a.weights, ""},
		{"b: multi-stage GAN", fmt.Sprintf("DCGAN %d (%d) + Up Sampler (%d)", e.side, g32.steps, up.steps), g32.took + up.took, g32.cpu + up.cpu, g32.weights, up.weights},
		{"c: DCGAN + SR", fmt.Sprintf("DCGAN %d (%d) + %s (%d)", e.side, g32.steps, e.srPreset, sr.steps), g32.took + sr.took, g32.cpu + sr.cpu, g32.weights, sr.weights},
	} {
		r, err := score(x.name, x.stages, x.took, x.cpu, x.gen, x.up)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func writeRows(w io.Writer, rows []row, gridRel string) {
	feat := len(rows) > 0 && rows[0].feat != nil
	fmt.Fprintf(w, "| approach | stages (steps) | CPU time | wall time | SWD ×10³ | floor |")
	if feat {
		fmt.Fprintf(w, " KID ×10³ | KID floor | precision | recall | copies |")
	}
	align := "|---|---|---:|---:|---:|---:|"
	if feat {
		align += strings.Repeat("---:|", 5)
	}
	fmt.Fprintf(w, " SR-stage PSNR dB ×2 | samples |\n%s---|---|\n", align)
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %.2f |", r.name, r.stages, r.cpu.Round(time.Second), r.took.Round(time.Second), r.swd.SWD.Mean, r.swd.Floor.Mean)
		if f := r.feat; feat && f != nil {
			fmt.Fprintf(w, " %.2f ± %.2f | %.2f | %.3f | %.3f | %.1f %% |", f.KID.Mean, f.KID.Std, f.Floor.Mean, f.Precision, f.Recall, 100*f.CopyShare)
		}
		fmt.Fprintf(w, " %s | ![](%s) |\n", r.srPSNR, filepath.ToSlash(filepath.Join(gridRel, r.grid)))
	}
	if len(rows) > 0 {
		fmt.Fprintf(w, "\nSWD on %d images per set.\n\n", rows[0].swd.N)
	}
}

// cpuModel is the CPU's model name as lscpu prints it.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// trainCPU runs a training stage; with limit > 0 it stops the stage once the
// process has consumed limit of CPU time since cpu0. The loop has no CPU limit of
// its own, so a watchdog in OnProgress (called after every step) cancels the run,
// which checkpoints and returns; a resume with the steps reached as its step limit
// then ends it the ordinary way (final checkpoint, published weights). Resuming is
// exact (engine/train), so this is the run that would have stopped at that step.
func trainCPU(ctx context.Context, f func(context.Context, train.Options) (train.Result, error), o train.Options, limit, cpu0 time.Duration) (train.Result, error) {
	if limit <= 0 {
		return f(ctx, o)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	report := o.OnProgress
	o.ProgressEvery = 1
	o.OnProgress = func(p train.Progress) {
		if report != nil {
			report(p)
		}
		if now, _ := processCPU(); now-cpu0 >= limit {
			stop()
		}
	}
	res, err := f(wctx, o)
	if err == nil || ctx.Err() != nil || wctx.Err() == nil {
		return res, err // finished within the limit, failed, or cancelled from outside
	}
	if res.Steps == 0 {
		return res, fmt.Errorf("the CPU budget %s ran out before the first step", limit)
	}
	o.OnProgress, o.Resume, o.Steps, o.Budget, o.Epochs = report, true, res.Steps, 0, 0
	return f(ctx, o)
}
