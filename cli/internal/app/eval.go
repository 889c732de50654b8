package app

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backends"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/train"
)

func evalCommand() Command {
	return Command{
		Name:    "eval",
		Summary: "measure a model: 'eval sr' (PSNR/SSIM vs bicubic) or 'eval gan' (SWD vs held-out, with floor)",
		Subs: []Command{
			{Name: "sr", Summary: "PSNR/SSIM of an upscaler against bicubic on a folder of HR images", Run: runEvalSR},
			{Name: "gan", Summary: "SWD of a generator (and upscalers) against held-out images, with the real-vs-real floor", Run: runEvalGAN},
		},
	}
}

func openModel(path, backendName string, role model.Role) (backend.Backend, *model.Network, error) {
	b, err := backends.Open(backendName)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	n, _, err := model.Open(path, b)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	if c := n.Config(); c.Role != role {
		n.Free()
		b.Close()
		return nil, nil, usagef("%s holds a %s (%s), want a %s", path, c.Role, c.Preset, role)
	}
	return b, n, nil
}

func runEvalSR(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "eval sr", "--model FILE --data DIR [--scale 2] [--limit N] [--backend NAME]")
	modelPath := fs.String("model", "", "upscaler weights (.safetensors)")
	data := fs.String("data", "", "folder of HR images (e.g. data/noto128/heldout, data/photos)")
	scale := fs.Int("scale", 2, "scale factor (a power of the model's)")
	limit := fs.Int("limit", 0, "evaluate the first N images only (0 = all)")
	quiet := fs.Bool("mean-only", false, "print the mean row only")
	backendName := fs.String("backend", "", "backend: "+backends.Describe(false))
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *data == "" {
		return usagef("--model and --data are required")
	}
	b, n, err := openModel(*modelPath, *backendName, model.Upscaler)
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
	fs := newFlags(env, "eval gan", "--model FILE --data DIR [--n 1000] [--upscaler FILE]… [--grid OUT.png]")
	modelPath := fs.String("model", "", "generator weights (.safetensors)")
	data := fs.String("data", "", "folder of held-out real images (e.g. data/noto128/heldout)")
	n := fs.Int("n", 1000, "images per set (capped at half the real images, so the floor uses the same count)")
	var ups multiFlag
	fs.Var(&ups, "upscaler", "upscaler weights applied after the generator (repeat for more stages)")
	grid := fs.String("grid", "", "write a grid of the first 64 generated images here (PNG)")
	backendName := fs.String("backend", "", "backend: "+backends.Describe(false))
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *data == "" {
		return usagef("--model and --data are required")
	}
	if *n < 1 {
		return usagef("--n %d: want at least 1", *n)
	}
	b, g, err := openModel(*modelPath, *backendName, model.Generator)
	if err != nil {
		return err
	}
	defer b.Close()
	defer g.Free()
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
	s, fake, err := evalGAN(ctx, g, chain, *data, side, *n)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "SWD ×10³ at %d px, %d images per set (levels %v)\n", side, s.N, s.SWD.Resolutions)
	fmt.Fprintf(env.Stdout, "| set | per level | mean |\n|---|---|---:|\n| model vs held-out | %s | %.2f |\n| floor (real vs real) | %s | %.2f |\n",
		levels(s.SWD), s.SWD.Mean, levels(s.Floor), s.Floor.Mean)
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

// evalGAN generates n images through the chain and scores them against held-out
// images brought to the output side.
func evalGAN(ctx context.Context, g *model.Network, chain []train.Upscaler, data string, side, n int) (train.GANScore, []*imageio.RGB, error) {
	real, err := train.LoadSquare(ctx, data, side, 2*n)
	if err != nil {
		return train.GANScore{}, nil, err
	}
	n = min(n, len(real)/2)
	if n < 1 {
		return train.GANScore{}, nil, fmt.Errorf("%s has %d usable images; SWD needs at least 2", data, len(real))
	}
	fake, err := train.Generate(ctx, g, chain, n)
	if err != nil {
		return train.GANScore{}, nil, err
	}
	s, err := train.EvalGAN(ctx, fake, real, metrics.DefaultSWD())
	return s, fake, err
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
