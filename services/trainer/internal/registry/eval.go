package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
)

// Metric names recorded on versions.
const (
	MetricSWD  = "swd"    // generators: SWD ×10³ to the evaluation images, lower is better
	MetricPSNR = "psnr_y" // upscalers: mean PSNR on the Y channel in dB, higher is better
)

// EngineEvaluator scores models with the engine: generators render a fixed
// seed set (seeds 1..N, the same for every version) and are compared with N
// evaluation images by SWD; upscalers upscale the bicubic-downscaled
// evaluation images and are compared with the originals by PSNR on Y.
type EngineEvaluator struct {
	mu      sync.Mutex // a backend runs one network at a time here
	backend backend.Backend
	// Images is how many evaluation images (and seeds) to use; 0 means 16.
	Images int
}

// NewEngineEvaluator evaluates on b.
func NewEngineEvaluator(b backend.Backend) *EngineEvaluator { return &EngineEvaluator{backend: b} }

// swdConfig is ProGAN's SWD with fewer patches and directions: a canary on a
// few dozen images needs a stable comparison, not a publishable figure.
func swdConfig() metrics.SWDConfig {
	return metrics.SWDConfig{MinRes: 16, PatchSize: 7, PatchesPerImage: 64, DirRepeats: 2, DirsPerRepeat: 64, Seed: 1}
}

// Evaluate implements Evaluator.
func (e *EngineEvaluator) Evaluate(ctx context.Context, v Version, path, evalDir string) (Score, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.Images
	if n <= 0 {
		n = 16
	}
	net, _, err := model.Open(path, e.backend)
	if err != nil {
		return Score{}, err
	}
	defer net.Free()
	cfg := net.Config()
	if v.Kind.Generator() {
		if cfg.Role != model.Generator {
			return Score{}, fmt.Errorf("%s is a %s, not a generator", v.Digest, cfg.Role)
		}
		ref, err := loadEval(evalDir, n, cfg.Side)
		if err != nil {
			return Score{}, err
		}
		seeds := make([]uint64, len(ref))
		for i := range seeds {
			seeds[i] = uint64(i + 1)
		}
		gen, err := net.Generate(ctx, seeds)
		if err != nil {
			return Score{}, err
		}
		res, err := metrics.SWD(ctx, gen, ref, swdConfig())
		if err != nil {
			return Score{}, err
		}
		return Score{Metric: MetricSWD, Value: res.Mean}, nil
	}
	if cfg.Role != model.Upscaler {
		return Score{}, fmt.Errorf("%s is a %s, not an upscaler", v.Digest, cfg.Role)
	}
	hr, err := loadEval(evalDir, n, cfg.Side*cfg.Scale)
	if err != nil {
		return Score{}, err
	}
	lr := make([]*imageio.RGB, len(hr))
	for i, img := range hr {
		if lr[i], err = metrics.ImresizeTo(img, cfg.Side, cfg.Side); err != nil {
			return Score{}, err
		}
	}
	sr, err := net.Upscale(ctx, lr)
	if err != nil {
		return Score{}, err
	}
	sum := 0.0
	for i := range hr {
		p, err := metrics.PSNR(hr[i], sr[i], cfg.Scale)
		if err != nil {
			return Score{}, err
		}
		sum += min(p, 100) // identical images give +Inf
	}
	return Score{Metric: MetricPSNR, HigherIsBetter: true, Value: sum / float64(len(hr))}, nil
}

// loadEval reads the first n images of dir (sorted by path), centre-cropped to
// squares and resized (MATLAB bicubic) to side.
func loadEval(dir string, n, side int) ([]*imageio.RGB, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".png", ".jpg", ".jpeg", ".webp":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evaluation set: %w", err)
	}
	slices.Sort(files)
	var out []*imageio.RGB
	for _, f := range files {
		if len(out) == n {
			break
		}
		img, err := imageio.DecodeFile(f, imageio.Limits{})
		if err != nil {
			continue // a corrupt file is skipped, as the training loader does
		}
		s := min(img.W, img.H)
		if img, err = img.CenterCrop(s, s); err != nil {
			continue
		}
		if s != side {
			if img, err = metrics.ImresizeTo(img, side, side); err != nil {
				continue
			}
		}
		out = append(out, img)
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("evaluation set %s: %d usable images, need at least 2", dir, len(out))
	}
	return out, nil
}

var _ Evaluator = (*EngineEvaluator)(nil)
