// Package upscale is the upscaler's domain: super-resolution of RGB images with
// an SRCNN, ESPCN or Up Sampler model, batching concurrent requests of equal
// image size and serving whichever model version the holder currently has. It
// knows nothing of gRPC.
package upscale

import (
	"context"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
)

// Model is one loaded upscaler version.
type Model struct {
	*model.Served
	// Preset is the architecture preset, e.g. "espcn-residual".
	Preset string
	// Scale is what one pass multiplies the sides by (2).
	Scale int
}

// Loader returns a hotswap.LoadFunc that builds upscaler networks on b.
func Loader(b backend.Backend) func(ctx context.Context, path string, data []byte) (*Model, error) {
	return func(ctx context.Context, path string, data []byte) (*Model, error) {
		s, err := model.DecodeServed(path, data, b, model.Upscaler)
		if err != nil {
			return nil, err
		}
		return wrap(s), nil
	}
}

// NewModel wraps a built upscaler network (tests and in-process use); name ""
// means the preset's name.
func NewModel(net *model.Network, name string) (*Model, error) {
	s, err := model.NewServed(net, name, model.Upscaler)
	if err != nil {
		return nil, err
	}
	return wrap(s), nil
}

func wrap(s *model.Served) *Model {
	cfg := s.Config()
	return &Model{Served: s, Preset: cfg.Preset, Scale: cfg.Scale}
}

// Release frees the network's buffers; it waits for a batch running on it.
func Release(m *Model) { m.Served.Release() }

// upscale runs one batch of equal-size images. Only jobs whose callers have all
// gone away can meet a released version: a live request holds a reference to it.
func (m *Model) upscale(ctx context.Context, imgs []*imageio.RGB) (out []*imageio.RGB, err error) {
	err = m.Do(func(net *model.Network) error {
		out, err = net.Upscale(ctx, imgs)
		return err
	})
	return out, err
}
