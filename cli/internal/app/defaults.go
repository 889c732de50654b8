package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/train"
)

func trainDefaultsCommand() Command {
	return Command{
		Name:    "train-defaults",
		Summary: "train the bundled default models (a DCGAN and an SR net) and write their model cards",
		Run:     runTrainDefaults,
	}
}

// defaultsRun trains and documents the two models `make demo` serves.
type defaultsRun struct {
	ganData, srData, ganEval, photos string
	ganVersion, srVersion            string
	out, work                        string
	ganName, srName                  string
	side                             int
	ganBudget, srBudget              time.Duration
	ganSteps, srSteps                int
	srPreset, ganModel, only         string
	srPatch, srBatch                 int
	srLR, srDecay                    float64
	n, srEval                        int
	seed                             uint64
	ganGroup, features               string
	ganConditional                   bool
	kidEvery, featuresSteps          int
}

func runTrainDefaults(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "train-defaults", "[--out models] [--gan-budget 15m] [--sr-budget 15m] [flags]")
	var r defaultsRun
	fs.StringVar(&r.ganData, "gan-data", "data/noto128/train", "DCGAN training images")
	fs.StringVar(&r.ganEval, "gan-heldout", "data/noto128/heldout", "held-out emoji: SWD of the DCGAN and in-domain PSNR of the SR net")
	fs.StringVar(&r.srData, "sr-data", "data/noto128/train", "SR training images (in-domain emoji: the generator's domain; held-out split kept apart)")
	fs.StringVar(&r.photos, "photos", "data/photos", "photos for the SR net's out-of-domain PSNR ('' skips)")
	fs.StringVar(&r.ganVersion, "gan-data-version", "Noto Color Emoji, Debian fonts-noto-color-emoji 2.042-0+deb12u1 (Apache-2.0)", "data source line of the DCGAN's card")
	fs.StringVar(&r.srVersion, "sr-data-version", "", "data source line of the SR net's card (default: the --gan-data-version line for a noto folder, Microsoft Fluent Emoji 3D via npm @lobehub/fluent-emoji-3d@1.1.0 (MIT) for a fluent one)")
	fs.StringVar(&r.out, "out", "models", "folder for <name>.safetensors and <name>.md")
	fs.StringVar(&r.work, "work", "out/train-defaults", "folder for the training runs (checkpoints; resumable)")
	fs.StringVar(&r.ganName, "gan-name", defaultGANName, "name of the generator")
	fs.StringVar(&r.ganGroup, "gan-group", defaultGANGroup, "train the generator on this Unicode emoji group only ('' = every image; with --gan-conditional a comma-separated list of groups, the classes in order)")
	fs.BoolVar(&r.ganConditional, "gan-conditional", false, "train a class-conditional generator over the --gan-group groups (two or more); it is scored in the held-out images' class mix and its contact sheet has one row per class")
	fs.StringVar(&r.features, "features", DefaultFeatures, "feature extractor: the training probe, snapshot choice and the card's KID (skipped when absent)")
	fs.IntVar(&r.kidEvery, "kid-every", 250, "generator steps between feature-space scores; the lowest-KID snapshot is the one bundled (0 = the last step)")
	fs.IntVar(&r.featuresSteps, "train-features", 0, "first train the feature extractor for this many steps into --features (0 = use it as it is; make models: 2200)")
	fs.StringVar(&r.srName, "sr-name", defaultSRName, "name of the SR net")
	fs.StringVar(&r.srPreset, "sr", defaultSRPreset, "SR preset (espcn-residual, srcnn-residual, espcn-x2, srcnn-classic, …)")
	fs.IntVar(&r.srPatch, "sr-patch", defaultSRPatch, "SR: HR patch side")
	fs.IntVar(&r.srBatch, "sr-batch", defaultSRBatch, "SR: batch size (patches)")
	fs.Float64Var(&r.srLR, "sr-lr", defaultSRLR, "SR: Adam learning rate")
	fs.Float64Var(&r.srDecay, "sr-decay", defaultSRDecay, "SR: final fraction of the run over which the learning rate falls linearly to 0")
	fs.StringVar(&r.ganModel, "gan-model", "", "an already-trained generator (.safetensors): skip DCGAN training, still score it and write its card")
	fs.IntVar(&r.side, "side", 32, "generator side")
	fs.DurationVar(&r.ganBudget, "gan-budget", 15*time.Minute, "DCGAN training time")
	fs.DurationVar(&r.srBudget, "sr-budget", 15*time.Minute, "SR training time")
	fs.IntVar(&r.ganSteps, "gan-steps", 0, "stop the DCGAN after this many steps instead (0 = budget only)")
	fs.IntVar(&r.srSteps, "sr-steps", 0, "stop the SR net after this many steps instead (0 = budget only)")
	fs.IntVar(&r.n, "n", 1000, "generated images scored (seeds 0…n−1; SWD uses at most half as many as there are held-out images)")
	fs.IntVar(&r.srEval, "sr-eval", 0, "held-out emoji for the SR PSNR (0 = all)")
	fs.Uint64Var(&r.seed, "seed", 1, "seed")
	fs.StringVar(&r.only, "only", "", "train and document only one model: gan or sr ('' = both)")
	backendName := fs.String("backend", "", "backend: "+choose.Describe(true))
	resume := fs.Bool("resume", false, "continue interrupted runs in --work")
	if err := parse(fs, args); err != nil {
		return err
	}
	if r.srVersion == "" {
		r.srVersion = fluentVersion
		if strings.Contains(strings.ToLower(r.srData), "noto") {
			r.srVersion = r.ganVersion
		}
	}
	if r.ganConditional && len(r.ganGroups()) < 2 {
		return usagef("--gan-conditional needs two or more groups in --gan-group (comma-separated), got %q", r.ganGroup)
	}
	if r.kidEvery < 0 || r.featuresSteps < 0 {
		return usagef("--kid-every %d, --train-features %d: want 0 or more", r.kidEvery, r.featuresSteps)
	}
	if r.only != "" && r.only != "gan" && r.only != "sr" {
		return usagef("--only %q: want gan or sr", r.only)
	}
	if r.ganModel != "" && r.only != "sr" {
		if _, err := os.Stat(r.ganModel); err != nil {
			return usagef("--gan-model: %v", err)
		}
	}
	for _, d := range []string{r.ganData, r.srData, r.ganEval} {
		if _, err := os.Stat(d); err != nil {
			return usagef("%v (run 'make data' first)", err)
		}
	}
	b, err := choose.OpenWith(*backendName, choose.Options{Training: true})
	if err != nil {
		return usagef("%v", err)
	}
	defer b.Close()
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return err
	}
	if r.featuresSteps > 0 && r.only != "sr" {
		if err := r.extractor(ctx, env, b, *resume); err != nil {
			return err
		}
	}
	// The SR net first: the generator's card scores the 256² chain through it.
	if r.only != "gan" {
		if err := r.upscaler(ctx, env, b, *resume); err != nil {
			return err
		}
	}
	if r.only != "sr" {
		return r.generator(ctx, env, b, *resume)
	}
	return nil
}

// extractor trains the feature extractor into --features (its card, with the
// validation 'hirez eval features' prints, is written by hand: models/emoji-features.md).
func (r *defaultsRun) extractor(ctx context.Context, env Env, b backend.Backend, resume bool) error {
	c, err := featuresConfig(r.ganData, "subgroup", "", trainFlags{})
	if err != nil {
		return err
	}
	pr := newProgress(env.Stdout, "features")
	res, err := train.Features(ctx, c, train.Options{
		Backend: b, Data: r.ganData, Out: filepath.Join(r.work, "features"), Resume: resume,
		Steps: r.featuresSteps, Seed: r.seed, CheckpointEvery: 500, OnProgress: pr.update,
		Meta: map[string]string{"hirez.train.data": r.ganVersion},
	})
	pr.done()
	if err != nil {
		return fmt.Errorf("train the feature extractor: %w", err)
	}
	if err := copyFile(res.Weights, r.features); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "features → %s (validate it: hirez eval features --features %s)\n", r.features, r.features)
	return nil
}

// generator trains (or takes from --gan-model) the DCGAN, scores it by SWD and in
// feature space and writes it, a contact sheet and its card.
func (r *defaultsRun) generator(ctx context.Context, env Env, b backend.Backend, resume bool) error {
	recipe := train.SmallDataRecipe()
	groups := r.ganGroups()
	_, featErr := os.Stat(r.features)
	var err error

	// The generator: trained here, or taken from --gan-model.
	var gres train.Result
	ganRecipe, chosen := "", ""
	if r.ganModel != "" {
		gres.Weights = r.ganModel
	} else {
		pr := newProgress(env.Stdout, r.ganName)
		work := filepath.Join(r.work, r.ganName)
		c := train.GANConfig{Generator: "dcgan-g-stable", Discriminator: "dcgan-d-sn", Side: r.side, Recipe: recipe}
		if r.ganConditional {
			c.Classes = groups
		}
		best := filepath.Join(work, "best.safetensors")
		if r.kidEvery > 0 && featErr == nil {
			c.Features = &train.FeatureProbe{Every: r.kidEvery, Extractor: r.features, Heldout: r.ganEval, Train: r.ganData, Groups: groups,
				Best: best, OnEval: func(p train.FeaturePoint) {
					pr.done()
					fmt.Fprintf(env.Stdout, "kid step %d: %v\n", p.Step, p.Score)
				}}
		}
		meta := map[string]string{"hirez.train.data": r.ganVersion}
		if len(groups) > 0 {
			meta[model.MetaTrainGroups] = strings.Join(groups, ", ")
		}
		gres, err = train.GAN(ctx, c, train.Options{
			Backend: b, Data: r.ganData, Groups: groups, Out: work, Name: r.ganName, Resume: resume,
			Budget: r.ganBudget, Steps: r.ganSteps, Seed: r.seed, CheckpointEvery: 250, OnProgress: pr.update, Meta: meta,
		})
		pr.done()
		if err != nil {
			return fmt.Errorf("train %s: %w", r.ganName, err)
		}
		chosen = "the weights of the last step"
		if c.Features != nil {
			if _, err := os.Stat(best); err == nil {
				gres.Weights, chosen = best, "the lowest-KID snapshot the training probe kept" // its step is in the file
			}
		}
	}
	g, gmeta, err := model.Open(gres.Weights, b)
	if err != nil {
		return err
	}
	defer g.Free()
	if gc := g.Config(); gc.Role != model.Generator {
		return usagef("--gan-model %s is a %s, not a generator", r.ganModel, gc.Role)
	} else if r.ganModel != "" {
		r.side = gc.Side
		ganRecipe = fmt.Sprintf("DCGAN, `%s` at %d px, trained beforehand (not by this command) and taken from `%s`%s.",
			gc.Preset, gc.Side, r.ganModel, fileProvenance(gmeta))
	}
	ganPreset := g.Config().Preset
	fmt.Fprintf(env.Stdout, "scoring %s (SWD)\n", r.ganName)
	real, err := train.LoadSquareGroups(ctx, r.ganEval, groups, r.side, 2*r.n)
	if err != nil {
		return err
	}
	if g.Config().Classes > 0 && !slices.Equal(model.Labels(gmeta), groups) {
		return usagef("%s is class-conditional over %q; pass them as --gan-group (comma-separated) with --gan-conditional", gres.Weights, model.Labels(gmeta))
	}
	// A class-conditional generator is scored in the held-out images' class mix.
	var classes []int
	if g.Config().Classes > 0 {
		if classes, err = train.ClassPlan(r.ganEval, groups, r.n); err != nil {
			return err
		}
	}
	// SWD uses as many as half the real images (train.EvalGAN); the feature
	// scores use all r.n.
	fake, err := train.Generate(ctx, g, nil, r.n, classes)
	if err != nil {
		return err
	}
	swd, err := train.EvalGAN(ctx, fake, real, metrics.DefaultSWD())
	if err != nil {
		return err
	}
	featText, err := r.generatorFeatures(ctx, env, b, g, groups, classes, fake)
	if err != nil {
		return err
	}
	ganPath := filepath.Join(r.out, r.ganName+".safetensors")
	if len(groups) > 0 && gmeta[model.MetaTrainGroups] == "" {
		// A generator trained beforehand whose file does not say its group: the
		// served model's labels come from this key (model.Labels).
		if gmeta == nil {
			gmeta = map[string]string{}
		}
		gmeta[model.MetaTrainGroups] = strings.Join(groups, ", ")
		if err := g.Save(ganPath, gmeta); err != nil {
			return err
		}
	} else if !samePath(gres.Weights, ganPath) {
		if err := copyFile(gres.Weights, ganPath); err != nil {
			return err
		}
	}
	if ganRecipe == "" {
		ganRecipe = fmt.Sprintf("DCGAN, `dcgan-g-stable` at %d px against `dcgan-d-sn` on %s; %s; %d steps (%s, seed %d) on the `%s` backend; bundled: %s%s.",
			r.side, groupText(groups, r.ganConditional), recipe, gres.Steps, gres.Elapsed.Round(time.Second), r.seed, b.Name(), chosen, fileProvenance(gmeta))
	}
	card := r.card(r.ganName, "generator", ganPreset, r.side, r.ganVersion, r.ganData,
		ganLicence, ganRecipe,
		fmt.Sprintf("SWD ×10³ (ProGAN protocol) of %d generated images (seeds 0…%d) vs %d held-out emoji (`%s`, %s) at %d px: **%.2f**; real-vs-real floor on the same count: **%.2f** (per level: model %s; floor %s).\n%s",
			swd.N, swd.N-1, swd.N, r.ganEval, groupText(groups, r.ganConditional), r.side, swd.SWD.Mean, swd.Floor.Mean, levels(swd.SWD), levels(swd.Floor), featText))
	if err := os.WriteFile(filepath.Join(r.out, r.ganName+".md"), []byte(card), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: SWD %.2f (floor %.2f) → %s\n", r.ganName, swd.SWD.Mean, swd.Floor.Mean, ganPath)
	return nil
}

// upscaler trains the SR net, scores it against bicubic and writes it and its card.
func (r *defaultsRun) upscaler(ctx context.Context, env Env, b backend.Backend, resume bool) error {
	pr := newProgress(env.Stdout, r.srName)
	sres, err := train.SR(ctx, train.SRConfig{Preset: r.srPreset, Patch: r.srPatch, Batch: r.srBatch, LR: float32(r.srLR), Decay: float32(r.srDecay)}, train.Options{
		Backend: b, Data: r.srData, Out: filepath.Join(r.work, r.srName), Name: r.srName, Resume: resume,
		Budget: r.srBudget, Steps: r.srSteps, Seed: r.seed, CheckpointEvery: 2000, OnProgress: pr.update,
		Meta: map[string]string{"hirez.train.data": r.srVersion},
	})
	pr.done()
	if err != nil {
		return fmt.Errorf("train %s: %w", r.srName, err)
	}
	u, _, err := model.Open(sres.Weights, b)
	if err != nil {
		return err
	}
	defer u.Free()
	var metricsText strings.Builder
	for _, set := range []struct{ name, dir string }{{"held-out emoji", r.ganEval}, {"photos", r.photos}} {
		if set.dir == "" {
			continue
		}
		if _, err := os.Stat(set.dir); err != nil {
			continue
		}
		fmt.Fprintf(env.Stdout, "scoring %s on %s\n", r.srName, set.dir)
		limit := r.srEval
		if set.name == "photos" {
			limit = 0
		}
		names, imgs, err := train.LoadImages(set.dir, limit)
		if err != nil {
			return err
		}
		sc, err := train.EvalSR(ctx, u, 2, 2, names, imgs)
		if err != nil {
			return err
		}
		bq, mq := train.MeanSR(sc)
		fmt.Fprintf(&metricsText, "\n%s (`%s`, %d images), ×2, PSNR/SSIM on Y, %d px shaved, LR = MATLAB bicubic:\n\n", set.name, set.dir, len(sc), 2)
		writeSRTable(&metricsText, sc, 2, set.name != "photos")
		fmt.Fprintf(env.Stdout, "%s on %s: %.2f dB vs bicubic %.2f (%+.2f)\n", r.srName, set.name, mq.PSNR, bq.PSNR, mq.PSNR-bq.PSNR)
	}
	srPath := filepath.Join(r.out, r.srName+".safetensors")
	if err := copyFile(sres.Weights, srPath); err != nil {
		return err
	}
	card := r.card(r.srName, "upscaler ×2", r.srPreset, 0, r.srVersion, r.srData, srLicenceFor(r.srData),
		fmt.Sprintf("`%s` (%s), MSE on random %d px HR patches (4 per image, horizontal flips) and their MATLAB-bicubic ×½ LR, RGB in [0, 1]; Adam %g (β 0.9, 0.999) falling linearly to 0 over the last %.0f%% of the run, batch %d; %d steps (%s, seed %d) on the `%s` backend.",
			r.srPreset, presetReading(r.srPreset), r.srPatch, r.srLR, 100*r.srDecay, r.srBatch, sres.Steps, sres.Elapsed.Round(time.Second), r.seed, b.Name()),
		metricsText.String())
	if err := os.WriteFile(filepath.Join(r.out, r.srName+".md"), []byte(card), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s → %s\n", r.srName, srPath)
	return nil
}

// generatorFeatures scores the generator in feature space at its own side and,
// when the bundled SR net is in --out, as the 256² chain the demo serves, and
// writes the chain's contact sheet (16 fixed seeds) beside the card. It returns
// the card's text ("" without the extractor).
func (r *defaultsRun) generatorFeatures(ctx context.Context, env Env, b backend.Backend, g *model.Network, groups []string, classes []int, fake []*imageio.RGB) (string, error) {
	fe, err := openFeatureEval(ctx, b, r.features, r.ganEval, r.ganData, groups, false)
	if err != nil || fe == nil {
		return "", err
	}
	defer fe.free()
	var text strings.Builder
	s, err := fe.score(ctx, fake)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&text, "\nAt %d px (the generator's output, resized to the extractor's 64 px by bicubic):\n\n", r.side)
	fe.write(&text, s)
	agreement := func(imgs []*imageio.RGB) error {
		if g.Config().Classes == 0 {
			return nil
		}
		return fe.writeAgreement(ctx, &text, imgs, classes, groups)
	}
	if err := agreement(fake); err != nil {
		return "", err
	}
	sr := filepath.Join(r.out, r.srName+".safetensors")
	if _, err := os.Stat(sr); err != nil {
		return text.String(), nil
	}
	u, _, err := model.Open(sr, b)
	if err != nil {
		return "", err
	}
	defer u.Free()
	var chain []train.Upscaler
	side := r.side
	for side < 256 {
		chain, side = append(chain, u), side*u.Config().Scale
	}
	fmt.Fprintf(env.Stdout, "scoring %s + %s ×%d (%d px)\n", r.ganName, r.srName, len(chain), side)
	big, err := train.Generate(ctx, g, chain, len(fake), classes)
	if err != nil {
		return "", err
	}
	if s, err = fe.score(ctx, big); err != nil {
		return "", err
	}
	fmt.Fprintf(&text, "\nThe %d px chain (`%s` + `%s` ×%d, what GenerateImages returns), resized to 64 px:\n\n", side, r.ganName, r.srName, len(chain))
	fe.write(&text, s)
	if err := agreement(big); err != nil {
		return "", err
	}
	shown, what := big[:min(16, len(big))], "seeds 0…15 through the chain"
	if k := g.Config().Classes; k > 0 {
		// One row per class, seeds 0…3, so a reader can check each label.
		var seeds []uint64
		var sheetClasses []int
		for c := range k {
			seeds, sheetClasses = append(seeds, 0, 1, 2, 3), append(sheetClasses, c, c, c, c)
		}
		if shown, err = train.Render(ctx, g, chain, seeds, sheetClasses); err != nil {
			return "", err
		}
		what = fmt.Sprintf("one row per class, in the order %q, seeds 0…3 in each", groups)
	}
	sheet, err := imageio.Grid(shown, imageio.GridOptions{Cols: 4, Pad: 4})
	if err != nil {
		return "", err
	}
	path := filepath.Join(r.out, r.ganName+"-sheet.png")
	if err := imageio.WritePNGFile(path, sheet); err != nil {
		return "", err
	}
	fmt.Fprintf(&text, "\nContact sheet: `%s` (%s). Look at it and say here what a person sees.\n", filepath.Base(path), what)
	return text.String(), nil
}

func groupText(groups []string, conditional bool) string {
	switch {
	case len(groups) == 0:
		return "every training image"
	case conditional:
		return fmt.Sprintf("the Unicode groups %q as classes (class-conditional)", groups)
	case len(groups) == 1:
		return fmt.Sprintf("the Unicode group %q", groups[0])
	}
	return fmt.Sprintf("the Unicode groups %q", groups)
}

// ganGroups is --gan-group as a list: one group, or with --gan-conditional a
// comma-separated list of them (group names hold no comma).
func (r *defaultsRun) ganGroups() []string {
	if r.ganGroup == "" {
		return nil
	}
	if !r.ganConditional {
		return []string{r.ganGroup}
	}
	var out []string
	for g := range strings.SplitSeq(r.ganGroup, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// The generator train-defaults makes unless told otherwise (issue #13's
// ablation, docs/models.md): one coherent Unicode group, the small-data recipe.
const (
	defaultGANName  = "dcgan32-smileys"
	defaultGANGroup = "Smileys & Emotion"
)

// The SR recipe train-defaults uses unless told otherwise (pilots in
// docs/training.md): a residual net that starts at bicubic.
const (
	defaultSRPreset = "espcn-residual"
	defaultSRName   = "espcn-residual-x2-emoji"
	defaultSRPatch  = 48
	defaultSRBatch  = 32
	defaultSRLR     = 5e-4
	defaultSRDecay  = 0.3
	fluentVersion   = "Microsoft Fluent Emoji 3D via npm @lobehub/fluent-emoji-3d@1.1.0 (MIT)"
)

// presetReading is the preset's one-paragraph description for a model card.
func presetReading(name string) string {
	if p, ok := model.Lookup(name); ok {
		return p.Reading
	}
	return "custom config"
}

// fileProvenance describes a weights file's own training metadata, if any.
func fileProvenance(meta map[string]string) string {
	var parts []string
	for _, k := range []string{"hirez.train.data", "hirez.train.steps", "hirez.train.elapsed", "hirez.train.seed", "hirez.train.recipe"} {
		if v := meta[k]; v != "" {
			parts = append(parts, fmt.Sprintf("%s `%s`", strings.TrimPrefix(k, "hirez.train."), v))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; its file records " + strings.Join(parts, ", ")
}

func samePath(a, b string) bool {
	x, err1 := filepath.Abs(a)
	y, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && x == y
}

const (
	ganLicence = "The training images are Noto Color Emoji, © Google, licensed under the Apache License 2.0 " +
		"(data/licenses/noto-color-emoji.copyright). The weights are a derivative work distributed under Apache-2.0; " +
		"keep this attribution."
	srLicence = "The training images are Microsoft Fluent Emoji (3D), © Microsoft Corporation, MIT License, " +
		"redistributed by @lobehub/fluent-emoji-3d (data/licenses/fluent-emoji-3d.README.md). The weights are " +
		"distributed under the MIT License with this attribution. " + photosNote
	photosNote = "Evaluation photos are scikit-image sample data (CC0/public domain)."
)

// srLicenceFor is the SR card's licence text for its training data: the Noto set
// (Apache-2.0) or Fluent (MIT).
func srLicenceFor(dir string) string {
	if strings.Contains(strings.ToLower(dir), "noto") {
		return ganLicence + " " + photosNote
	}
	return srLicence
}

func (r *defaultsRun) card(name, role, preset string, side int, source, dir, licence, recipe, metricsText string) string {
	var b strings.Builder
	article := "A"
	if strings.ContainsRune("aeiou", rune(role[0])) {
		article = "An"
	}
	fmt.Fprintf(&b, "# %s\n\n%s %s (`%s`", name, article, role, preset)
	if side > 0 {
		fmt.Fprintf(&b, ", %d×%d", side, side)
	}
	made := "made by `hirez train-defaults`"
	if role == "generator" && r.ganModel != "" {
		made = "trained by `hirez train-local` (see Recipe), scored and documented by `hirez train-defaults`"
	}
	fmt.Fprintf(&b, ") bundled with hirez, %s on %s (%s).\n\n", made, cpuModel(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "## Data\n\n%s; training split `%s` (held-out split by a hash of the emoji key, skin-tone variants on one side).\n\n", source, dir)
	fmt.Fprintf(&b, "## Licence and attribution\n\n%s\n\n", licence)
	fmt.Fprintf(&b, "## Recipe\n\n%s\n\n", recipe)
	fmt.Fprintf(&b, "## Metrics\n\n%s\n", metricsText)
	return b.String()
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
