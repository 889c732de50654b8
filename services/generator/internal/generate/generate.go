package generate

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/batch"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/hotswap"
	"github.com/hirez-ml/hirez/proto/hirez/limits"
)

// Limits of one request; the transport passes the API's constants.
type Limits struct {
	// MaxCount is the most seeds or latents in one request.
	MaxCount int
	// MaxLatentDim bounds the length of an explicit latent.
	MaxLatentDim int
}

// ModelRef picks a model: empty Name means the served model; empty Version or
// "production" (limits.IsProduction) means the current version; a digest
// must match it.
type ModelRef struct {
	Name, Version string
}

// Request asks for one image per seed or per latent (exactly one of them).
type Request struct {
	Seeds   []int64
	Latents [][]float32
	Model   ModelRef
	// Label is "" (no constraint) or one of the serving version's labels.
	Label string
}

// Count is the number of images asked for.
func (r Request) Count() int { return len(r.Seeds) + len(r.Latents) }

// Image is one generated image and how it was made.
type Image struct {
	Index      int
	Seed       int64 // 0 with FromLatent
	FromLatent bool
	RGB        *imageio.RGB
	Model      ModelInfo
	// Label is the request's label, accepted by the model ("" for none).
	Label string
	// Compute is the wall time of the batch the image was part of, Queue the
	// time it waited before that batch started.
	Compute, Queue time.Duration
	BatchSize      int
}

// ModelInfo identifies the version that made an image.
type ModelInfo struct {
	Name, Preset, Version, Backend string
	LatentDim, Side                int
	// Labels are the labels the version knows (see Model.Labels).
	Labels []string
}

// ReasonUnknownLabel is the ErrorInfo reason of a request whose label the
// serving model does not know (INVALID_ARGUMENT).
const ReasonUnknownLabel = "UNKNOWN_LABEL"

// Service generates images; build it with New.
type Service struct {
	holder  *hotswap.Holder[*Model]
	batcher *batch.Batcher[job, output]
	lim     Limits
}

type job struct {
	m        *Model
	digest   string
	z        []float32
	class    int // model.NoClass for an unconditional model
	enqueued time.Time
}

type output struct {
	img            *imageio.RGB
	compute, queue time.Duration
	batch          int
}

// New returns a service generating with the holder's current model, batching
// as cfg says. obs may be nil.
func New(holder *hotswap.Holder[*Model], cfg batch.Config, lim Limits, obs batch.Observer) (*Service, error) {
	if lim.MaxCount < 1 || lim.MaxLatentDim < 1 {
		return nil, fmt.Errorf("generate: limits %+v must be positive", lim)
	}
	s := &Service{holder: holder, lim: lim}
	opts := []batch.Option[job]{batch.WithKey(func(j job) string { return j.digest })}
	if obs != nil {
		opts = append(opts, batch.WithObserver[job](obs))
	}
	b, err := batch.New(cfg, s.run, opts...)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	s.batcher = b
	return s, nil
}

// Close stops the batcher, draining queued work until ctx ends.
func (s *Service) Close(ctx context.Context) error { return s.batcher.Close(ctx) }

// run computes one batch; every job of a batch shares one model version
// (the batch key is its digest).
func (s *Service) run(ctx context.Context, jobs []job) ([]output, error) {
	start := time.Now()
	zs := make([][]float32, len(jobs))
	classes := make([]int, len(jobs))
	for i, j := range jobs {
		zs[i], classes[i] = j.z, j.class
	}
	imgs, err := jobs[0].m.generate(ctx, zs, classes)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	out := make([]output, len(jobs))
	for i, j := range jobs {
		out[i] = output{img: imgs[i], compute: took, queue: start.Sub(j.enqueued), batch: len(jobs)}
	}
	return out, nil
}

// Validate checks what can be checked without a model: the count and that
// exactly one of seeds and latents is given.
func (s *Service) Validate(r Request) error {
	switch {
	case len(r.Seeds) > 0 && len(r.Latents) > 0:
		return fault.Invalid("give seeds or latents, not both (got %d seeds and %d latents)", len(r.Seeds), len(r.Latents))
	case r.Count() < 1 || r.Count() > s.lim.MaxCount:
		return fault.Invalid("the number of seeds or latents must be between 1 and %d, got %d", s.lim.MaxCount, r.Count())
	}
	for i, z := range r.Latents {
		if len(z) > s.lim.MaxLatentDim {
			return fault.Invalid("latents[%d] has %d values; at most %d are allowed", i, len(z), s.lim.MaxLatentDim)
		}
		for k, v := range z {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fault.Invalid("latents[%d].values[%d] is %v; every value must be finite", i, k, v)
			}
		}
	}
	return nil
}

// Acquire pins the model version ref names; Release the result when done.
func (s *Service) Acquire(ref ModelRef) (*hotswap.Ref[*Model], error) {
	v, err := s.holder.Acquire()
	if err != nil {
		return nil, err
	}
	m := v.Value
	if ref.Name != "" && ref.Name != m.Name {
		v.Release()
		return nil, fault.NotFound("model %q is not served here; this generator serves %q", ref.Name, m.Name)
	}
	if !limits.IsProduction(ref.Version) && ref.Version != v.Digest {
		v.Release()
		return nil, fault.NotFound("version %q of model %q is not served here; the current version is %s", ref.Version, m.Name, v.Digest)
	}
	return v, nil
}

// Info describes a held version.
func Info(v *hotswap.Version[*Model]) ModelInfo {
	m := v.Value
	return ModelInfo{Name: m.Name, Preset: m.Preset, Version: v.Digest, Backend: m.Backend(), LatentDim: m.LatentDim, Side: m.Side, Labels: m.Labels}
}

// Labels returns the version ref names (as Acquire resolves it) with the
// labels it knows.
func (s *Service) Labels(ref ModelRef) (ModelInfo, error) {
	v, err := s.Acquire(ref)
	if err != nil {
		return ModelInfo{}, err
	}
	defer v.Release()
	return Info(v.Version), nil
}

// Generate makes the images r asks for with one model version (resolved once,
// at the start) and calls yield with each image in index order, as soon as it
// and every image before it are done. At most MaxBatch images are in the queue
// for one call at a time, so one big request cannot starve the others.
func (s *Service) Generate(ctx context.Context, r Request, yield func(Image) error) error {
	if err := s.Validate(r); err != nil {
		return err
	}
	ref, err := s.Acquire(r.Model)
	if err != nil {
		return err
	}
	defer ref.Release()
	m := ref.Value
	info := Info(ref.Version)
	// The label is checked against the version this call pinned, so a hot
	// swap to a model with other labels applies from the next call on.
	if err := model.CheckLabel(m.Name, r.Label, m.Labels); err != nil {
		return fault.New(fault.KindInvalid, ReasonUnknownLabel, "%w", err)
	}
	for i, z := range r.Latents {
		if len(z) != m.LatentDim {
			return fault.Invalid("latents[%d] has %d values; model %s takes latents of %d", i, len(z), m.Name, m.LatentDim)
		}
	}

	window := s.batcher.Config().MaxBatch
	n := r.Count()
	for start := 0; start < n; start += window {
		end := min(start+window, n)
		outs := make([]output, end-start)
		errs := make([]error, end-start)
		var wg sync.WaitGroup
		labels := make([]string, end-start)
		for i := start; i < end; i++ {
			j := job{m: m, digest: ref.Digest, enqueued: time.Now()}
			if len(r.Seeds) > 0 {
				j.z = model.Latent(uint64(r.Seeds[i]), m.LatentDim)
			} else {
				j.z = r.Latents[i]
			}
			j.class, labels[i-start] = model.ClassFor(m.Classes, m.Labels, r.Label, j.z)
			wg.Go(func() { outs[i-start], errs[i-start] = s.batcher.Submit(ctx, j) })
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				return fmt.Errorf("image %d: %w", start+k, err)
			}
		}
		for k, o := range outs {
			img := Image{Index: start + k, RGB: o.img, Model: info, Label: labels[k], Compute: o.compute, Queue: o.queue, BatchSize: o.batch}
			if len(r.Seeds) > 0 {
				img.Seed = r.Seeds[start+k]
			} else {
				img.FromLatent = true
			}
			if err := yield(img); err != nil {
				return err
			}
		}
	}
	return nil
}
