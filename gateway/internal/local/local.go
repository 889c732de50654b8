// Package local implements the pipeline's Generator and Upscaler in-process
// on the engine, with no network and no batching: the baseline the gateway's
// benchmarks compare the served pipeline with, and the real models behind the
// gateway's in-memory tests.
package local

import (
	"context"
	"sync"
	"time"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/platform/fault"
)

// Generator runs a generator network in-process (one call at a time: a
// network is not safe for concurrent use).
type Generator struct {
	mu     sync.Mutex
	net    *model.Network
	name   string
	labels []string
}

var _ pipeline.Generator = (*Generator)(nil)

// NewGenerator wraps net; name and the version "local" go into provenance.
// meta is what its weights file's metadata would be: its labels are
// model.Labels(meta) (nil: none).
func NewGenerator(net *model.Network, name string, meta map[string]string) *Generator {
	return &Generator{net: net, name: name, labels: model.Labels(meta)}
}

// Labels implements pipeline.Generator.
func (g *Generator) Labels(context.Context, pipeline.ModelRef) (pipeline.Labels, error) {
	return pipeline.Labels{Generator: pipeline.ModelRef{Name: g.name, Version: "local"}, Labels: g.labels}, nil
}

// Generate implements pipeline.Generator: one batch for all seeds. The label
// is checked as the generator service checks it.
func (g *Generator) Generate(ctx context.Context, seeds []int64, _ pipeline.ModelRef, label string, yield func(pipeline.Generated) error) error {
	if err := model.CheckLabel(g.name, label, g.labels); err != nil {
		return fault.New(fault.KindInvalid, "UNKNOWN_LABEL", "%w", err) // the generator service's reason
	}
	cfg := g.net.Config()
	latents := make([][]float32, len(seeds))
	classes := make([]int, len(seeds))
	labels := make([]string, len(seeds))
	for i, s := range seeds {
		latents[i] = model.Latent(uint64(s), cfg.Latent)
		classes[i], labels[i] = model.ClassFor(cfg.Classes, g.labels, label, latents[i])
	}
	start := time.Now()
	g.mu.Lock()
	imgs, err := g.net.GenerateLatents(ctx, latents, classes)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	took := time.Since(start)
	for i, img := range imgs {
		p := pipeline.Provenance{
			Seed: seeds[i], LatentDim: cfg.Latent, Generator: pipeline.ModelRef{Name: g.name, Version: "local"}, Label: labels[i],
			Timings: []pipeline.Timing{{Stage: "generate", Duration: took, BatchSize: len(seeds), Backend: g.net.Backend().Name()}},
		}
		if err := yield(pipeline.Generated{Index: i, Image: img, Prov: p}); err != nil {
			return err
		}
	}
	return nil
}

// Upscaler runs an upscaler network in-process, one image at a time.
type Upscaler struct {
	mu   sync.Mutex
	net  *model.Network
	name string
}

var _ pipeline.Upscaler = (*Upscaler)(nil)

// NewUpscaler wraps net; name and the version "local" go into provenance.
func NewUpscaler(net *model.Network, name string) *Upscaler {
	return &Upscaler{net: net, name: name}
}

// Upscale implements pipeline.Upscaler.
func (u *Upscaler) Upscale(ctx context.Context, img *imageio.RGB, _ pipeline.ModelRef) (*imageio.RGB, pipeline.Provenance, error) {
	start := time.Now()
	u.mu.Lock()
	out, err := u.net.Upscale(ctx, []*imageio.RGB{img})
	u.mu.Unlock()
	if err != nil {
		return nil, pipeline.Provenance{}, err
	}
	return out[0], pipeline.Provenance{
		Upscalers: []pipeline.ModelRef{{Name: u.name, Version: "local"}},
		Timings:   []pipeline.Timing{{Stage: "upscale", Duration: time.Since(start), BatchSize: 1, Backend: u.net.Backend().Name()}},
	}, nil
}
