package app

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backends"
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
// with equal epochs per stage and once with an equal wall-clock budget per approach
// (split evenly between the two stages of b and c). Every adversarial stage uses
// the same recipe.
type experiment struct {
	b                     backend.Backend
	ganData, srData, eval string
	work                  string // run folders
	gridDir, gridRel      string // where grids go, and how the report links them
	side                  int
	epochs                float64       // per stage, equal-epochs part; ≤ 0 skips it
	budget                time.Duration // per approach, equal-budget part; ≤ 0 skips it
	recipe                train.Recipe
	srPreset              string
	srBatch, srPatch      int
	n                     int // SWD images per set
	srEvalLimit           int
	seed                  uint64
	log                   io.Writer
}

// stageResult is one trained stage.
type stageResult struct {
	weights string
	took    time.Duration
	steps   int
}

// row is one approach in one part.
type row struct {
	name, stages string
	took         time.Duration
	swd          train.GANScore
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
	fs.DurationVar(&e.budget, "budget", 10*time.Minute, "training time per approach in the equal-budget part (0 skips)")
	fs.IntVar(&e.n, "n", 500, "SWD images per set (capped at half the held-out images)")
	fs.IntVar(&e.srEvalLimit, "sr-eval", 200, "held-out images for the SR stage's PSNR")
	fs.StringVar(&e.srPreset, "sr", "srcnn-classic", "SR preset of approach (c)")
	fs.IntVar(&e.srPatch, "sr-patch", 48, "HR patch side of the SR training")
	fs.Uint64Var(&e.seed, "seed", 1, "seed of every run")
	batch := fs.Int("batch", 64, "GAN batch size")
	backendName := fs.String("backend", "", "backend (default "+backends.Default()+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	if e.srData == "" {
		e.srData = e.ganData
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
	if e.b, err = backends.Open(*backendName); err != nil {
		return usagef("%v", err)
	}
	defer e.b.Close()
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
	fmt.Fprintf(&md, "- Approaches: **(a)** one DCGAN at %d; **(b)** multi-stage: DCGAN at %d + Up Sampler %d→%d (`upsampler-study`, adversarial + 10·MSE content); **(c)** DCGAN at %d + `%s` ×2 (MSE). (b) and (c) share one DCGAN at %d.\n", h2, h, h, h2, h, e.srPreset, h)
	fmt.Fprintf(&md, "- Same adversarial recipe everywhere: `dcgan-g-stable`/`dcgan-d-stable`, %s. SR: Adam 1e-3, batch %d patches of %d px.\n", e.recipe, e.srBatch, e.srPatch)
	fmt.Fprintf(&md, "- SWD ×10³ (ProGAN protocol, mean over pyramid levels) of generated %d px images vs the held-out set, beside the real-vs-real floor on sets of the same size; lower is better, the floor is the best reachable.\n", h2)
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
		fmt.Fprintf(&md, "## Equal wall-clock budget: %s per approach (b and c: half per stage)\n\n", e.budget)
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
	opts := func(name string, stageBudget time.Duration, imagesPerStep, nfiles int) train.Options {
		o := train.Options{Backend: e.b, Out: filepath.Join(e.work, tag, name), Seed: e.seed, Data: e.ganData, Samples: 16}
		pr := newProgress(e.log, tag+"/"+name)
		pr.every = 30 * time.Second
		o.OnProgress = pr.update
		if limit != nil {
			limit(&o, imagesPerStep, nfiles)
		} else {
			o.Budget = stageBudget
		}
		return o
	}
	stage := func(name string, f func() (train.Result, error)) (stageResult, error) {
		fmt.Fprintf(e.log, "== %s/%s\n", tag, name)
		res, err := f()
		if err != nil {
			return stageResult{}, fmt.Errorf("%s/%s: %w", tag, name, err)
		}
		fmt.Fprintf(e.log, "%s/%s: %d steps in %s\n", tag, name, res.Steps, res.Elapsed.Round(time.Second))
		return stageResult{weights: res.Weights, took: res.Elapsed, steps: res.Steps}, nil
	}
	gan := func(side int) train.GANConfig {
		return train.GANConfig{Generator: "dcgan-g-stable", Discriminator: "dcgan-d-stable", Side: side, Recipe: e.recipe}
	}
	half := max(e.budget/2, time.Nanosecond)
	b := e.recipe.Batch
	a, err := stage("a-dcgan64", func() (train.Result, error) {
		return train.GAN(ctx, gan(2*e.side), opts("a-dcgan", e.budget, b, gFiles))
	})
	if err != nil {
		return nil, err
	}
	g32, err := stage("dcgan32", func() (train.Result, error) {
		return train.GAN(ctx, gan(e.side), opts("dcgan-h", half, b, gFiles))
	})
	if err != nil {
		return nil, err
	}
	up, err := stage("b-upsampler", func() (train.Result, error) {
		return train.MultiStage(ctx, train.MultiStageConfig{Upsampler: "upsampler-study", Discriminator: "dcgan-d-stable", Side: e.side, Recipe: e.recipe, ContentWeight: 10},
			opts("b-upsampler", half, b, gFiles))
	})
	if err != nil {
		return nil, err
	}
	sr, err := stage("c-sr", func() (train.Result, error) {
		o := opts("c-sr", half, e.srBatch/4, sFiles)
		o.Data = e.srData
		return train.SR(ctx, train.SRConfig{Preset: e.srPreset, Batch: e.srBatch, Patch: e.srPatch, PatchesPerImage: 4}, o)
	})
	if err != nil {
		return nil, err
	}
	score := func(name, stages string, took time.Duration, gen string, upscaler string) (row, error) {
		fmt.Fprintf(e.log, "scoring %s/%s\n", tag, name)
		g, _, err := model.Open(gen, e.b)
		if err != nil {
			return row{}, err
		}
		defer g.Free()
		var chain []train.Upscaler
		r := row{name: name, stages: stages, took: took, srPSNR: "—"}
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
		fake, err := train.Generate(ctx, g, chain, min(e.n, len(real)/2))
		if err != nil {
			return row{}, err
		}
		if r.swd, err = train.EvalGAN(ctx, fake, real, metrics.DefaultSWD()); err != nil {
			return row{}, err
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
		took         time.Duration
		gen, up      string
	}{
		{"a: single DCGAN", fmt.Sprintf("DCGAN %d (%d steps)", 2*e.side, a.steps), a.took, a.weights, ""},
		{"b: multi-stage GAN", fmt.Sprintf("DCGAN %d (%d) + Up Sampler (%d)", e.side, g32.steps, up.steps), g32.took + up.took, g32.weights, up.weights},
		{"c: DCGAN + SR", fmt.Sprintf("DCGAN %d (%d) + %s (%d)", e.side, g32.steps, e.srPreset, sr.steps), g32.took + sr.took, g32.weights, sr.weights},
	} {
		r, err := score(x.name, x.stages, x.took, x.gen, x.up)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func writeRows(w io.Writer, rows []row, gridRel string) {
	fmt.Fprintf(w, "| approach | stages (steps) | training time | SWD ×10³ | floor | SR-stage PSNR dB ×2 | samples |\n|---|---|---:|---:|---:|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %.2f | %s | ![](%s) |\n", r.name, r.stages, r.took.Round(time.Second),
			r.swd.SWD.Mean, r.swd.Floor.Mean, r.srPSNR, filepath.ToSlash(filepath.Join(gridRel, r.grid)))
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
