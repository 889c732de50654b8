package train

import (
	"context"
	"fmt"
	"math"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/features"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/safetensors"
)

// FeatureProbe scores the generator in a feature extractor's space every Every
// steps (engine/features: KID, precision/recall and the copy check against
// held-out images) and keeps the snapshot with the lowest KID: what a viewer
// sees improves with it where GAN losses say nothing, and GAN training is not
// monotonic, so the last step is rarely the best one.
//
// The published generator (the EMA when the recipe has one) renders N images
// from the fixed latents 0…N−1 at each evaluation; evaluation consumes no
// training RNG, so a run with a probe takes exactly the steps it takes without.
// The real images are brought to the run's side first (box downscale, as
// training sees them), so that real and generated images reach the extractor
// through the same resampling and the score is about content at the side the
// generator draws, not about its lower resolution.
type FeatureProbe struct {
	Every     int      // steps between evaluations (> 0)
	Extractor string   // the encoder's weights (models/emoji-features.safetensors)
	Heldout   string   // held-out real images: the comparison set
	Train     string   // the training images: the copy check's reference
	Groups    []string // only images of these Unicode emoji groups, as the run trains (empty = all)
	N         int      // generated images per evaluation; 0 = 256
	// Best, when set, is where the snapshot with the lowest KID so far is
	// written (atomically, as the published weights are), with its step and
	// score in the metadata (MetaBestStep, MetaBestKID).
	Best   string
	OnEval func(FeaturePoint)
}

// FeaturePoint is one evaluation.
type FeaturePoint struct {
	Step  int
	Score features.Score
	Best  bool // the lowest KID so far (written to FeatureProbe.Best when set)
}

// Metadata keys of a best snapshot.
const (
	MetaBestStep = "hirez.train.best_step"
	MetaBestKID  = "hirez.train.best_kid"
)

// featureState is a FeatureProbe with its extractor and reference, prepared
// once, and the best score so far (checkpointed, so a resumed run keeps
// comparing with the best before the interruption).
type featureState struct {
	FeatureProbe
	e        *features.Extractor
	ref      *features.Reference
	latents  [][]float32
	classes  []int // of the latents, for a class-conditional run
	last     features.Score
	has      bool
	best     float64
	bestStep int
}

const probeBestTensor = "probe.best" // [KID ×10³, step]

func newFeatureState(ctx context.Context, p FeatureProbe, b backend.Backend, side, latent int) (_ *featureState, err error) {
	if p.Every <= 0 {
		return nil, fmt.Errorf("%w: feature probe every %d steps", ErrBadOptions, p.Every)
	}
	if p.N <= 0 {
		p.N = 256
	}
	s := &featureState{FeatureProbe: p, best: math.Inf(1)}
	if s.e, err = features.Open(p.Extractor, b); err != nil {
		return nil, fmt.Errorf("feature probe: %w", err)
	}
	defer func() {
		if err != nil {
			s.free()
		}
	}()
	held, err := LoadSquareGroups(ctx, p.Heldout, p.Groups, side, 0)
	if err != nil {
		return nil, fmt.Errorf("feature probe: held-out images: %w", err)
	}
	tr, err := LoadSquareGroups(ctx, p.Train, p.Groups, side, 0)
	if err != nil {
		return nil, fmt.Errorf("feature probe: training images: %w", err)
	}
	if s.ref, err = features.NewReference(ctx, s.e, held, tr, metrics.DefaultKID()); err != nil {
		return nil, fmt.Errorf("feature probe: %w", err)
	}
	for i := range p.N {
		s.latents = append(s.latents, model.Latent(uint64(i), latent))
	}
	return s, nil
}

// eval scores g (the published view) at step and, on a new best, publishes it
// to Best through publish.
func (s *featureState) eval(ctx context.Context, g *model.Network, step int, publish func(path string, meta map[string]string) error) error {
	var fake []*imageio.RGB
	for start := 0; start < s.N; start += 64 {
		imgs, err := g.GenerateLatents(ctx, s.latents[start:min(s.N, start+64)], part(s.classes, start, min(s.N, start+64)))
		if err != nil {
			return fmt.Errorf("feature probe: %w", err)
		}
		fake = append(fake, imgs...)
	}
	sc, err := s.ref.Score(ctx, s.e, fake)
	if err != nil {
		return fmt.Errorf("feature probe: %w", err)
	}
	s.last, s.has = sc, true
	better := sc.KID.Mean < s.best
	if better {
		s.best, s.bestStep = sc.KID.Mean, step
		if s.Best != "" {
			meta := map[string]string{MetaBestStep: fmt.Sprint(step), MetaBestKID: fmt.Sprintf("%.4f", sc.KID.Mean)}
			if err := publish(s.Best, meta); err != nil {
				return fmt.Errorf("feature probe: best snapshot: %w", err)
			}
		}
	}
	if s.OnEval != nil {
		s.OnEval(FeaturePoint{Step: step, Score: sc, Best: better})
	}
	return nil
}

// losses adds the last scores to a progress report.
func (s *featureState) losses(m map[string]float64) {
	if s != nil && s.has {
		m["kid"], m["precision"], m["recall"] = s.last.KID.Mean, s.last.Precision, s.last.Recall
	}
}

// state is the best score so far and its step ("probe.best"), nothing before
// a first evaluation; nothing at all without a probe (s nil).
func (s *featureState) state() []ckptPart {
	if s == nil {
		return nil
	}
	return []ckptPart{{
		save: func(f *safetensors.File) error {
			if s.bestStep > 0 {
				f.Tensors = append(f.Tensors, safetensors.Tensor{Name: probeBestTensor, DType: safetensors.F32, Shape: []int{2},
					F32: []float32{float32(s.best), float32(s.bestStep)}})
			}
			return nil
		},
		load: func(f *safetensors.File) error {
			if t, ok := f.Tensor(probeBestTensor); ok && len(t.F32) == 2 {
				s.best, s.bestStep = float64(t.F32[0]), int(t.F32[1])
			}
			return nil
		},
	}}
}

func (s *featureState) free() {
	if s != nil && s.e != nil {
		s.e.Free()
	}
}
