// Command hzquality measures what a reduced-precision backend (cpu-bf16) costs
// in image quality: for each upscaler weights file and folder of HR images it
// runs the `hirez eval sr` protocol (train.EvalSR: modcrop, MATLAB-bicubic LR,
// PSNR/SSIM on Y with the scale shaved) on the base backend and on the
// candidate, and prints both means to 4 decimals with their difference, plus how
// far the two outputs are from each other (PSNR between them, largest 8-bit
// level difference, share of differing pixels).
//
//	hzquality -model models/espcn-residual-x2-emoji.safetensors -data data/noto128/heldout,data/photos
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/train"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hzquality:", err)
		os.Exit(1)
	}
}

func run() error {
	models := flag.String("model", "", "comma-separated upscaler weights files")
	data := flag.String("data", "", "comma-separated folders of HR images")
	base := flag.String("base", "cpu", "reference backend")
	cand := flag.String("backend", "cpu-bf16", "backend under test")
	limit := flag.Int("limit", 0, "first N images of each folder (0 = all)")
	threads := flag.Int("threads", 2, "threads per backend")
	flag.Parse()
	if *models == "" || *data == "" {
		return errors.New("-model and -data are required")
	}
	var bk [2]backend.Backend
	for i, name := range []string{*base, *cand} {
		b, err := choose.OpenWith(name, choose.Options{Threads: *threads})
		if err != nil {
			return err
		}
		defer b.Close()
		bk[i] = b
	}
	fmt.Printf("| model | images | %s PSNR | %s PSNR | Δ PSNR | Δ SSIM | worst image Δ | outputs' PSNR | max level diff | pixels differing |\n", *base, *cand)
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, path := range strings.Split(*models, ",") {
		var nets [2]*model.Network
		for i, b := range bk {
			n, _, err := model.Open(path, b)
			if err != nil {
				return err
			}
			defer n.Free()
			if n.Config().Role != model.Upscaler {
				return fmt.Errorf("%s is a %s, not an upscaler", path, n.Config().Role)
			}
			nets[i] = n
		}
		for _, dir := range strings.Split(*data, ",") {
			if err := compare(nets, path, dir, *limit); err != nil {
				return fmt.Errorf("%s on %s: %w", path, dir, err)
			}
		}
	}
	return nil
}

func compare(nets [2]*model.Network, path, dir string, limit int) error {
	ctx := context.Background()
	names, imgs, err := train.LoadImages(dir, limit)
	if err != nil {
		return err
	}
	scale := nets[0].Config().Scale
	var scores [2][]train.SRScore
	for i, n := range nets {
		if scores[i], err = train.EvalSR(ctx, n, scale, scale, names, imgs); err != nil {
			return err
		}
	}
	worst := 0.0
	for i := range scores[0] {
		if d := scores[1][i].Model.PSNR - scores[0][i].Model.PSNR; math.Abs(d) > math.Abs(worst) {
			worst = d
		}
	}
	// The two outputs against each other, on the same LR inputs.
	var sumSq, count, differ float64
	maxDiff := 0
	for _, img := range imgs {
		hr, err := metrics.Modcrop(img, scale)
		if err != nil {
			return err
		}
		_, lr, err := metrics.BicubicBaseline(hr, scale)
		if err != nil {
			return err
		}
		var out [2]*imageio.RGB
		for i, n := range nets {
			o, err := n.Upscale(ctx, []*imageio.RGB{lr})
			if err != nil {
				return err
			}
			out[i] = o[0]
		}
		for k, a := range out[0].Pix {
			d := int(a) - int(out[1].Pix[k])
			sumSq += float64(d * d)
			count++
			if d != 0 {
				differ++
			}
			maxDiff = max(maxDiff, d, -d)
		}
	}
	agree := "∞"
	if sumSq > 0 {
		agree = fmt.Sprintf("%.1f dB", 10*math.Log10(255*255/(sumSq/count)))
	}
	_, q0 := train.MeanSR(scores[0])
	_, q1 := train.MeanSR(scores[1])
	fmt.Printf("| %s | %s (%d) | %.4f | %.4f | %+.4f | %+.5f | %+.4f | %s | %d | %.2f %% |\n",
		baseName(path), dir, len(imgs), q0.PSNR, q1.PSNR, q1.PSNR-q0.PSNR, q1.SSIM-q0.SSIM, worst, agree, maxDiff, 100*differ/count)
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
