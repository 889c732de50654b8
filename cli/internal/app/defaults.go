package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/engine/backends"
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
	srPreset                         string
	n, srEval                        int
	seed                             uint64
}

func runTrainDefaults(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "train-defaults", "[--out models] [--gan-budget 15m] [--sr-budget 15m] [flags]")
	var r defaultsRun
	fs.StringVar(&r.ganData, "gan-data", "data/noto128/train", "DCGAN training images")
	fs.StringVar(&r.ganEval, "gan-heldout", "data/noto128/heldout", "held-out emoji: SWD of the DCGAN and in-domain PSNR of the SR net")
	fs.StringVar(&r.srData, "sr-data", "data/fluent256/train", "SR training images")
	fs.StringVar(&r.photos, "photos", "data/photos", "photos for the SR net's out-of-domain PSNR ('' skips)")
	fs.StringVar(&r.ganVersion, "gan-data-version", "Noto Color Emoji, Debian fonts-noto-color-emoji 2.042-0+deb12u1 (Apache-2.0)", "data source line of the DCGAN's card")
	fs.StringVar(&r.srVersion, "sr-data-version", "Microsoft Fluent Emoji 3D via npm @lobehub/fluent-emoji-3d@1.1.0 (MIT)", "data source line of the SR net's card")
	fs.StringVar(&r.out, "out", "models", "folder for <name>.safetensors and <name>.md")
	fs.StringVar(&r.work, "work", "out/train-defaults", "folder for the training runs (checkpoints; resumable)")
	fs.StringVar(&r.ganName, "gan-name", "dcgan32-emoji", "name of the generator")
	fs.StringVar(&r.srName, "sr-name", "espcn-x2-emoji", "name of the SR net")
	fs.StringVar(&r.srPreset, "sr", "espcn-x2", "SR preset (espcn-x2 or srcnn-classic)")
	fs.IntVar(&r.side, "side", 32, "generator side")
	fs.DurationVar(&r.ganBudget, "gan-budget", 15*time.Minute, "DCGAN training time")
	fs.DurationVar(&r.srBudget, "sr-budget", 15*time.Minute, "SR training time")
	fs.IntVar(&r.ganSteps, "gan-steps", 0, "stop the DCGAN after this many steps instead (0 = budget only)")
	fs.IntVar(&r.srSteps, "sr-steps", 0, "stop the SR net after this many steps instead (0 = budget only)")
	fs.IntVar(&r.n, "n", 1000, "SWD images per set (capped at half the held-out images)")
	fs.IntVar(&r.srEval, "sr-eval", 0, "held-out emoji for the SR PSNR (0 = all)")
	fs.Uint64Var(&r.seed, "seed", 1, "seed")
	backendName := fs.String("backend", "", "backend (default "+backends.Default()+")")
	resume := fs.Bool("resume", false, "continue interrupted runs in --work")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, d := range []string{r.ganData, r.srData, r.ganEval} {
		if _, err := os.Stat(d); err != nil {
			return usagef("%v (run 'make data' first)", err)
		}
	}
	b, err := backends.Open(*backendName)
	if err != nil {
		return usagef("%v", err)
	}
	defer b.Close()
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return err
	}
	recipe := train.StableRecipe()

	// The generator.
	pr := newProgress(env.Stdout, r.ganName)
	gres, err := train.GAN(ctx, train.GANConfig{Generator: "dcgan-g-stable", Discriminator: "dcgan-d-stable", Side: r.side, Recipe: recipe}, train.Options{
		Backend: b, Data: r.ganData, Out: filepath.Join(r.work, r.ganName), Name: r.ganName, Resume: *resume,
		Budget: r.ganBudget, Steps: r.ganSteps, Seed: r.seed, CheckpointEvery: 500, OnProgress: pr.update,
		Meta: map[string]string{"hirez.train.data": r.ganVersion},
	})
	pr.done()
	if err != nil {
		return fmt.Errorf("train %s: %w", r.ganName, err)
	}
	g, _, err := model.Open(gres.Weights, b)
	if err != nil {
		return err
	}
	defer g.Free()
	fmt.Fprintf(env.Stdout, "scoring %s (SWD)\n", r.ganName)
	real, err := train.LoadSquare(ctx, r.ganEval, r.side, 2*r.n)
	if err != nil {
		return err
	}
	fake, err := train.Generate(ctx, g, nil, min(r.n, len(real)/2))
	if err != nil {
		return err
	}
	swd, err := train.EvalGAN(ctx, fake, real, metrics.DefaultSWD())
	if err != nil {
		return err
	}
	ganPath := filepath.Join(r.out, r.ganName+".safetensors")
	if err := copyFile(gres.Weights, ganPath); err != nil {
		return err
	}
	card := r.card(r.ganName, "generator", "dcgan-g-stable", r.side, r.ganVersion, r.ganData,
		ganLicence, fmt.Sprintf("DCGAN, `dcgan-g-stable` at %d px against `dcgan-d-stable`; %s; %d steps (%s, seed %d) on the `%s` backend.",
			r.side, recipe, gres.Steps, gres.Elapsed.Round(time.Second), r.seed, b.Name()),
		fmt.Sprintf("SWD ×10³ (ProGAN protocol) of %d generated images (seeds 0…%d) vs %d held-out emoji (`%s`) at %d px: **%.2f**; real-vs-real floor on the same count: **%.2f** (per level: model %s; floor %s).",
			swd.N, swd.N-1, swd.N, r.ganEval, r.side, swd.SWD.Mean, swd.Floor.Mean, levels(swd.SWD), levels(swd.Floor)))
	if err := os.WriteFile(filepath.Join(r.out, r.ganName+".md"), []byte(card), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: SWD %.2f (floor %.2f) → %s\n", r.ganName, swd.SWD.Mean, swd.Floor.Mean, ganPath)

	// The SR net.
	pr = newProgress(env.Stdout, r.srName)
	sres, err := train.SR(ctx, train.SRConfig{Preset: r.srPreset}, train.Options{
		Backend: b, Data: r.srData, Out: filepath.Join(r.work, r.srName), Name: r.srName, Resume: *resume,
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
	card = r.card(r.srName, "upscaler ×2", r.srPreset, 0, r.srVersion, r.srData, srLicence,
		fmt.Sprintf("`%s`, MSE on random 48 px HR patches (4 per image, flips) and their MATLAB-bicubic ×½ LR, RGB in [0, 1]; Adam 1e-3 (β 0.9, 0.999), batch 32; %d steps (%s, seed %d) on the `%s` backend.",
			r.srPreset, sres.Steps, sres.Elapsed.Round(time.Second), r.seed, b.Name()),
		metricsText.String())
	if err := os.WriteFile(filepath.Join(r.out, r.srName+".md"), []byte(card), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s → %s\n", r.srName, srPath)
	return nil
}

const (
	ganLicence = "The training images are Noto Color Emoji, © Google, licensed under the Apache License 2.0 " +
		"(data/licenses/noto-color-emoji.copyright). The weights are a derivative work distributed under Apache-2.0; " +
		"keep this attribution."
	srLicence = "The training images are Microsoft Fluent Emoji (3D), © Microsoft Corporation, MIT License, " +
		"redistributed by @lobehub/fluent-emoji-3d (data/licenses/fluent-emoji-3d.README.md). The weights are " +
		"distributed under the MIT License with this attribution. Evaluation photos are scikit-image sample data (CC0/public domain)."
)

func (r *defaultsRun) card(name, role, preset string, side int, source, dir, licence, recipe, metricsText string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\nA %s (`%s`", name, role, preset)
	if side > 0 {
		fmt.Fprintf(&b, ", %d×%d", side, side)
	}
	fmt.Fprintf(&b, ") bundled with hirez, made by `hirez train-defaults` on %s (%s).\n\n", cpuModel(), time.Now().UTC().Format("2006-01-02"))
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
