// Package generate is the generator's domain: it turns seeds or explicit
// latents into images with a DCGAN generator, batching concurrent requests
// and serving whichever model version the holder currently has. It knows
// nothing of gRPC.
package generate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

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
	// Labels are the labels the model knows (model.Labels of its weights
	// file's metadata); a request's label must be empty or one of them.
	Labels []string
	// Classes is the number of classes of a class-conditional model (its
	// labels, in class order), 0 for an unconditional one.
	Classes int
}

// Loader returns a hotswap.LoadFunc that builds generator networks on b.
func Loader(b backend.Backend) func(ctx context.Context, path string, data []byte) (*Model, error) {
	return func(ctx context.Context, path string, data []byte) (*Model, error) {
		s, err := model.DecodeServed(path, data, b, model.Generator)
		if err != nil {
			return nil, err
		}
		meta, err := metadata(data)
		if err != nil {
			s.Release()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		m, err := wrap(s, meta)
		if err != nil {
			s.Release()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return m, nil
	}
}

// metadata returns the __metadata__ of a safetensors file that
// model.DecodeServed has already accepted (so its header length and JSON are
// known to be sound), reading the header only. model.Served does not keep the
// metadata, and decoding every tensor a second time to get it would be waste.
func metadata(data []byte) (map[string]string, error) {
	n := binary.LittleEndian.Uint64(data[:8])
	var h struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(data[8:8+n], &h); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return h.Meta, nil
}

// NewModel wraps a built generator network (tests and in-process use);
// name "" means the preset's name. meta is what its weights file's metadata
// would be (only the labels are read from it: model.Labels); nil for none.
func NewModel(net *model.Network, name string, meta map[string]string) (*Model, error) {
	s, err := model.NewServed(net, name, model.Generator)
	if err != nil {
		return nil, err
	}
	return wrap(s, meta)
}

func wrap(s *model.Served, meta map[string]string) (*Model, error) {
	cfg := s.Config()
	labels := model.Labels(meta)
	if err := model.CheckClasses(cfg, labels); err != nil {
		return nil, err
	}
	return &Model{Served: s, Preset: cfg.Preset, Side: cfg.Side, LatentDim: cfg.Latent, Labels: labels, Classes: cfg.Classes}, nil
}

// Release frees the network's buffers; it waits for a batch running on it.
func Release(m *Model) { m.Served.Release() }

// generate runs one batch of latents. Only jobs of callers that have all gone
// away can meet a released version: a live request holds a reference to it.
func (m *Model) generate(ctx context.Context, latents [][]float32, classes []int) (out []*imageio.RGB, err error) {
	err = m.Do(func(net *model.Network) error {
		out, err = net.GenerateLatents(ctx, latents, classes)
		return err
	})
	return out, err
}
