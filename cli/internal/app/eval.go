package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/train"
)

// evalClasses is what a generator is scored against and drawn as: an
// unconditional one against groups (all images when empty), drawing its own;
// a class-conditional one against its labels' groups, drawn in the held-out
// images' class mix (train.ClassPlan), or with label against that group only,
// every image drawn as it.
func evalClasses(cfg model.Config, labels, groups []string, label, data string, n int) ([]string, []int, error) {
	switch {
	case cfg.Classes == 0 && label != "":
		return nil, nil, usagef("--label is for a class-conditional generator; %s has no classes (use --group to score against one group)", cfg.Preset)
	case cfg.Classes == 0:
		return groups, nil, nil
	case len(groups) > 0:
		return nil, nil, usagef("--group: a class-conditional generator is scored against its own groups %q; use --label NAME for one of them", labels)
	case label != "":
		k := slices.Index(labels, label)
		if k < 0 {
			return nil, nil, usagef("--label %q: the generator's labels are %q", label, labels)
		}
		classes := make([]int, n)
		for i := range classes {
			classes[i] = k
		}
		return []string{label}, classes, nil
	}
	classes, err := train.ClassPlan(data, labels, n)
	return labels, classes, err
}

func evalCommand() Command {
	return Command{
		Name:    "eval",
		Summary: "measure a model: 'eval sr' (PSNR/SSIM vs bicubic) or 'eval gan' (SWD, KID, precision/recall, copy check vs held-out, with floors)",
		Subs: []Command{
			{Name: "sr", Summary: "PSNR/SSIM of an upscaler against bicubic on a folder of HR images", Run: runEvalSR},
			{Name: "features", Summary: "validate a feature extractor: held-out images at the floor, blurred/recoloured/noisy/blob versions worse, copies flagged", Run: runEvalFeatures},
			{Name: "gan", Summary: "a generator (and upscalers) against held-out images: SWD and feature-space KID, precision/recall, copy check, each with its floor", Run: runEvalGAN},
		},
	}
}

func openModel(path, backendName string, role model.Role) (backend.Backend, *model.Network, map[string]string, error) {
	b, err := choose.Open(backendName)
	if err != nil {
		return nil, nil, nil, usagef("%v", err)
	}
	n, meta, err := model.Open(path, b)
	if err != nil {
		b.Close()
		return nil, nil, nil, err
	}
	if c := n.Config(); c.Role != role {
		n.Free()
		b.Close()
		return nil, nil, nil, usagef("%s holds a %s (%s), want a %s", path, c.Role, c.Preset, role)
	}
	return b, n, meta, nil
}

func runEvalSR(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "eval sr", "--model FILE --data DIR [--scale 2] [--limit N] [--backend NAME]")
	modelPath := fs.String("model", "", "upscaler weights (.safetensors)")
	data := fs.String("data", "", "folder of HR images (e.g. data/noto128/heldout, data/photos)")
	scale := fs.Int("scale", 2, "scale factor (a power of the model's)")
	limit := fs.Int("limit", 0, "evaluate the first N images only (0 = all)")
	quiet := fs.Bool("mean-only", false, "print the mean row only")
	backendName := fs.String("backend", "", "backend: "+choose.Describe(false))
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *data == "" {
		return usagef("--model and --data are required")
	}
	b, n, _, err := openModel(*modelPath, *backendName, model.Upscaler)
	if err != nil {
		return err
	}
	defer b.Close()
	defer n.Free()
	names, imgs, err := train.LoadImages(*data, *limit)
	if err != nil {
		return err
	}
	scores, err := train.EvalSR(ctx, n, n.Config().Scale, *scale, names, imgs)
	if err != nil {
		return err
	}
	writeSRTable(env.Stdout, scores, *scale, *quiet)
	return nil
}

func writeSRTable(w io.Writer, scores []train.SRScore, scale int, meanOnly bool) {
	fmt.Fprintf(w, "| image | bicubic ×%d PSNR | SSIM | model PSNR | SSIM | Δ PSNR |\n|---|---:|---:|---:|---:|---:|\n", scale)
	if !meanOnly {
		for _, s := range scores {
			fmt.Fprintf(w, "| %s | %.2f | %.4f | %.2f | %.4f | %+.2f |\n", filepath.Base(s.Name),
				s.Bicubic.PSNR, s.Bicubic.SSIM, s.Model.PSNR, s.Model.SSIM, s.Model.PSNR-s.Bicubic.PSNR)
		}
	}
	bq, mq := train.MeanSR(scores)
	fmt.Fprintf(w, "| **mean of %d** | %.2f | %.4f | %.2f | %.4f | %+.2f |\n", len(scores), bq.PSNR, bq.SSIM, mq.PSNR, mq.SSIM, mq.PSNR-bq.PSNR)
}

func runEvalGAN(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "eval gan", "--model FILE --data DIR [--n 1000] [--upscaler FILE]… [--group NAME… | --label NAME] [--features FILE] [--grid OUT.png]")
	modelPath := fs.String("model", "", "generator weights (.safetensors)")
	data := fs.String("data", "", "folder of held-out real images (e.g. data/noto128/heldout)")
	n := fs.Int("n", 1000, "images generated (seeds 0…n−1); SWD uses at most half as many as there are real images, so its floor has the same count; the feature scores use all")
	var ups multiFlag
	fs.Var(&ups, "upscaler", "upscaler weights applied after the generator (repeat for more stages)")
	grid := fs.String("grid", "", "write a grid of the first 64 generated images here (PNG)")
	backendName := fs.String("backend", "", "backend: "+choose.Describe(false))
	featPath := fs.String("features", DefaultFeatures, "feature extractor for KID, precision/recall and the copy check (skipped when the default is absent)")
	trainData := fs.String("train-data", "", "the generator's training images, for the copy check (default: the train folder beside --data)")
	var groups multiFlag
	fs.Var(&groups, "group", "score against this Unicode emoji group only, as the generator was trained (repeat for more; a class-conditional generator is scored against its own groups, or --label's)")
	label := fs.String("label", "", "class-conditional generator: draw every image as this label (one of its groups) and score against that group's images; default: all its groups, drawn in the held-out images' proportions")
	if err := parse(fs, args); err != nil {
		return err
	}
	explicitFeatures := false
	fs.Visit(func(f *flag.Flag) { explicitFeatures = explicitFeatures || f.Name == "features" })
	if *modelPath == "" || *data == "" {
		return usagef("--model and --data are required")
	}
	if *n < 1 {
		return usagef("--n %d: want at least 1", *n)
	}
	if _, err := os.Stat(*featPath); err != nil && explicitFeatures {
		return usagef("--features: %v", err)
	}
	b, g, meta, err := openModel(*modelPath, *backendName, model.Generator)
	if err != nil {
		return err
	}
	defer b.Close()
	defer g.Free()
	groups, classes, err := evalClasses(g.Config(), model.Labels(meta), groups, *label, *data, *n)
	if err != nil {
		return err
	}
	var chain []train.Upscaler
	side := g.Config().Side
	for _, p := range ups {
		u, _, err := model.Open(p, b)
		if err != nil {
			return err
		}
		defer u.Free()
		if u.Config().Role != model.Upscaler {
			return usagef("--upscaler %s holds a %s", p, u.Config().Role)
		}
		chain = append(chain, u)
		side *= u.Config().Scale
	}
	fe, err := openFeatureEval(ctx, b, *featPath, *data, *trainData, groups, explicitFeatures)
	if err != nil {
		return err
	}
	defer fe.free()
	s, swdSide, fake, err := evalGAN(ctx, g, chain, *data, groups, classes, side, *n)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "SWD ×10³ at %d px, %d images per set (levels %v)\n", swdSide, s.N, s.SWD.Resolutions)
	fmt.Fprintf(env.Stdout, "| set | per level | mean |\n|---|---|---:|\n| model vs held-out | %s | %.2f |\n| floor (real vs real) | %s | %.2f |\n",
		levels(s.SWD), s.SWD.Mean, levels(s.Floor), s.Floor.Mean)
	if fe == nil {
		fmt.Fprintf(env.Stdout, "feature-space scores skipped: no %s (make models trains it)\n", *featPath)
	} else {
		fs, err := fe.score(ctx, fake)
		if err != nil {
			return err
		}
		fe.write(env.Stdout, fs)
		if g.Config().Classes > 0 {
			if err := fe.writeAgreement(ctx, env.Stdout, fake, classes, model.Labels(meta)); err != nil {
				return err
			}
		}
	}
	if *grid != "" {
		gi, err := imageio.Grid(fake[:min(64, len(fake))], imageio.GridOptions{Pad: 2})
		if err != nil {
			return err
		}
		if err := imageio.WritePNGFile(*grid, gi); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "grid: %s\n", *grid)
	}
	return nil
}

// evalGAN generates n images through the chain and scores the first ones by SWD
// (as many as half the real images, see train.EvalGAN) against
// held-out images at the output side, or at the held-out images' own side when
// they are smaller (a 256² chain output against 128² emoji is brought to 128² by
// MATLAB bicubic: upscaling the real images would only blur them). It returns
// the generated images at the output side.
func evalGAN(ctx context.Context, g *model.Network, chain []train.Upscaler, data string, groups []string, classes []int, side, n int) (_ train.GANScore, swdSide int, _ []*imageio.RGB, _ error) {
	_, first, err := train.LoadGroups(data, groups, 1)
	if err != nil {
		return train.GANScore{}, 0, nil, err
	}
	swdSide = min(side, first[0].W, first[0].H)
	real, err := train.LoadSquareGroups(ctx, data, groups, swdSide, 2*n)
	if err != nil {
		return train.GANScore{}, 0, nil, err
	}
	if len(real) < 2 {
		return train.GANScore{}, 0, nil, fmt.Errorf("%s has %d usable images; SWD needs at least 2", data, len(real))
	}
	fake, err := train.Generate(ctx, g, chain, n, classes)
	if err != nil {
		return train.GANScore{}, 0, nil, err
	}
	scored := fake
	if swdSide != side {
		scored = make([]*imageio.RGB, len(fake))
		for i, m := range fake {
			if scored[i], err = metrics.ImresizeTo(m, swdSide, swdSide); err != nil {
				return train.GANScore{}, 0, nil, err
			}
		}
	}
	s, err := train.EvalGAN(ctx, scored, real, metrics.DefaultSWD())
	return s, swdSide, fake, err
}

func levels(r metrics.SWDResult) string {
	parts := make([]string, len(r.PerLevel))
	for i, v := range r.PerLevel {
		parts[i] = fmt.Sprintf("%d:%.2f", r.Resolutions[i], v)
	}
	return strings.Join(parts, " ")
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
