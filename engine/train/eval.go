package train

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
)

// Upscaler is the one method evaluation needs from an upscaling network
// (*model.Network has it).
type Upscaler interface {
	Upscale(ctx context.Context, images []*imageio.RGB) ([]*imageio.RGB, error)
}

// SRScore is one image's SR verdict beside the bicubic baseline (the protocol of
// docs/metrics.md).
type SRScore struct {
	Name           string
	Bicubic, Model metrics.Quality
	Width, Height  int // of the modcropped HR image
}

// EvalSR scores an upscaler against MATLAB bicubic on HR images: modcrop, LR =
// imresize(HR, 1/scale), SR = the upscaler applied log2(scale) times (a ×2 net
// reaches ×4 in two passes), PSNR/SSIM on Y with `scale` pixels shaved.
func EvalSR(ctx context.Context, up Upscaler, netScale, scale int, names []string, hr []*imageio.RGB) ([]SRScore, error) {
	passes := 0
	for s := 1; s < scale; s *= netScale {
		passes++
	}
	if netScale < 2 || pow(netScale, passes) != scale {
		return nil, fmt.Errorf("scale %d is not a power of the network's scale %d", scale, netScale)
	}
	out := make([]SRScore, 0, len(hr))
	for i, img := range hr {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := metrics.Modcrop(img, scale)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
		bq, lr, err := metrics.BicubicBaseline(h, scale)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
		sr := lr
		for range passes {
			o, err := up.Upscale(ctx, []*imageio.RGB{sr})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", names[i], err)
			}
			sr = o[0]
		}
		if h.Gray {
			sr = toGray(sr)
		}
		mq, err := metrics.Compare(h, sr, scale)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
		out = append(out, SRScore{Name: names[i], Bicubic: bq, Model: mq, Width: h.W, Height: h.H})
	}
	return out, nil
}

// MeanSR averages scores (PSNR in dB, SSIM).
func MeanSR(s []SRScore) (bicubic, net metrics.Quality) {
	for _, x := range s {
		bicubic.PSNR += x.Bicubic.PSNR / float64(len(s))
		bicubic.SSIM += x.Bicubic.SSIM / float64(len(s))
		net.PSNR += x.Model.PSNR / float64(len(s))
		net.SSIM += x.Model.SSIM / float64(len(s))
	}
	return bicubic, net
}

func pow(a, n int) int {
	r := 1
	for range n {
		r *= a
	}
	return r
}

// toGray makes a colour output grey like its grey reference (a grey image's Y is
// its own value, docs/metrics.md step 1): the mean of the channels, flagged Gray.
func toGray(m *imageio.RGB) *imageio.RGB {
	g := m.Clone()
	for i := 0; i < len(g.Pix); i += 3 {
		v := uint8((int(g.Pix[i]) + int(g.Pix[i+1]) + int(g.Pix[i+2]) + 1) / 3)
		g.Pix[i], g.Pix[i+1], g.Pix[i+2] = v, v, v
	}
	g.Gray = true
	return g
}

// LoadImages decodes up to limit (0 = all) images of dir in file order, unchanged.
func LoadImages(dir string, limit int) (names []string, imgs []*imageio.RGB, err error) {
	return LoadGroups(dir, nil, limit)
}

// LoadGroups is LoadImages of the images whose Unicode emoji group is one of
// groups (all images when groups is empty; see dataset.Options.Groups).
func LoadGroups(dir string, groups []string, limit int) (names []string, imgs []*imageio.RGB, err error) {
	l, err := dataset.NewLoader(dataset.Options{Dir: dir, Size: 1, BatchSize: 1, Groups: groups})
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	for _, f := range l.Files() {
		if limit > 0 && len(imgs) >= limit {
			break
		}
		m, err := imageio.DecodeFile(f, imageio.DefaultLimits)
		if err != nil {
			return nil, nil, err
		}
		names, imgs = append(names, f), append(imgs, m)
	}
	return names, imgs, nil
}

// LoadSquare loads up to n images of dir in file order, centre-cropped and brought
// to side×side exactly as the GAN loops see them (box downscale), for SWD.
func LoadSquare(ctx context.Context, dir string, side, n int) ([]*imageio.RGB, error) {
	return LoadSquareGroups(ctx, dir, nil, side, n)
}

// LoadSquareGroups is LoadSquare of the images of the given Unicode emoji groups
// (all when empty).
func LoadSquareGroups(ctx context.Context, dir string, groups []string, side, n int) ([]*imageio.RGB, error) {
	l, err := dataset.NewLoader(dataset.Options{Dir: dir, Size: side, Resample: dataset.Box, Range: dataset.Range01, BatchSize: 64, Groups: groups})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var out []*imageio.RGB
	for n <= 0 || len(out) < n {
		b, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		per := 3 * side * side
		for i := 0; i < b.N && (n <= 0 || len(out) < n); i++ {
			m, err := imageio.FromCHW01(b.X[i*per:(i+1)*per], side, side)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// Generate renders n images from seeds 0…n−1 through the upscalers in order
// (the pipeline DCGAN → SR ×k). classes is nil (each seed's own draw:
// model.Generate) or the class of each image for a class-conditional
// generator (ClassPlan).
func Generate(ctx context.Context, g *model.Network, ups []Upscaler, n int, classes []int) ([]*imageio.RGB, error) {
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(i)
	}
	return Render(ctx, g, ups, seeds, classes)
}

// Render is Generate for explicit seeds: one image per seed (with its class
// when classes is not nil), in batches of 64.
func Render(ctx context.Context, g *model.Network, ups []Upscaler, seeds []uint64, classes []int) ([]*imageio.RGB, error) {
	if classes != nil && len(classes) != len(seeds) {
		return nil, fmt.Errorf("generate: %d classes for %d seeds", len(classes), len(seeds))
	}
	const batch = 64
	var out []*imageio.RGB
	for start := 0; start < len(seeds); start += batch {
		end := min(len(seeds), start+batch)
		latents := make([][]float32, 0, end-start)
		for _, s := range seeds[start:end] {
			latents = append(latents, model.Latent(s, g.Config().Latent))
		}
		imgs, err := g.GenerateLatents(ctx, latents, part(classes, start, end))
		if err != nil {
			return nil, err
		}
		for _, u := range ups {
			if imgs, err = u.Upscale(ctx, imgs); err != nil {
				return nil, err
			}
		}
		out = append(out, imgs...)
	}
	return out, nil
}

// GANScore is the SWD of generated images against real ones, with the real-versus-
// real floor on sets of the same size.
type GANScore struct {
	N          int // images per set
	SWD, Floor metrics.SWDResult
}

// EvalGAN compares fake with real: SWD(fake[:n], real[:n]) and the floor between
// two disjoint real halves, where n = min(len(fake), len(real)/2) so both use the
// same count (docs/metrics.md).
func EvalGAN(ctx context.Context, fake, real []*imageio.RGB, cfg metrics.SWDConfig) (GANScore, error) {
	n := min(len(fake), len(real)/2)
	if n < 1 {
		return GANScore{}, fmt.Errorf("SWD needs generated images and at least 2 real ones (have %d and %d)", len(fake), len(real))
	}
	sw, err := metrics.SWD(ctx, fake[:n], real[:n], cfg)
	if err != nil {
		return GANScore{}, err
	}
	fl, err := metrics.SWDFloor(ctx, real[:2*n], cfg)
	if err != nil {
		return GANScore{}, err
	}
	return GANScore{N: n, SWD: sw, Floor: fl}, nil
}
