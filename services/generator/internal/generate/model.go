// Package generate is the generator's domain: it turns seeds or explicit
// latents into images with a DCGAN generator, batching concurrent requests
// and serving whichever model version the holder currently has. It knows
// nothing of gRPC.
package generate

import (
	"context"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
)

// Model is one loaded generator version.
type Model struct {
	*model.Served
	// Preset is the architecture preset, e.g. "dcgan-g-stable".
	Preset string
	// Side is the output side in pixels.
	Side int
	// LatentDim is the length of z.
	LatentDim int
}

// Loader returns a swap.LoadFunc that builds generator networks on b.
func Loader(b backend.Backend) func(ctx context.Context, path string, data []byte) (*Model, error) {
	return func(ctx context.Context, path string, data []byte) (*Model, error) {
		s, err := model.DecodeServed(path, data, b, model.Generator)
		if err != nil {
			return nil, err
		}
		return wrap(s), nil
	}
}

// NewModel wraps a built generator network (tests and in-process use);
// name "" means the preset's name.
func NewModel(net *model.Network, name string) (*Model, error) {
	s, err := model.NewServed(net, name, model.Generator)
	if err != nil {
		return nil, err
	}
	return wrap(s), nil
}

func wrap(s *model.Served) *Model {
	cfg := s.Config()
	return &Model{Served: s, Preset: cfg.Preset, Side: cfg.Side, LatentDim: cfg.Latent}
}

// Release frees the network's buffers; it waits for a batch running on it.
func Release(m *Model) { m.Served.Release() }

// generate runs one batch of latents. Only jobs of callers that have all gone
// away can meet a released version: a live request holds a reference to it.
func (m *Model) generate(ctx context.Context, latents [][]float32) (out []*imageio.RGB, err error) {
	err = m.Do(func(net *model.Network) error {
		out, err = net.GenerateLatents(ctx, latents)
		return err
	})
	return out, err
}
