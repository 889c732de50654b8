// Package upscale is the upscaler's domain: super-resolution of RGB images with
// an SRCNN, ESPCN or Up Sampler model, batching concurrent requests of equal
// image size and serving whichever model version the holder currently has. It
// knows nothing of gRPC.
package upscale

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/safetensors"
)

// MetaName is the weights-file metadata key holding the model's registry name.
// A file without it is served under its file name (without .safetensors) when
// that is a valid model name, else under its preset's name.
const MetaName = "name"

// Model is one loaded upscaler version.
type Model struct {
	// Name is the model's name (MetaName, else the preset).
	Name string
	// Preset is the architecture preset, e.g. "srcnn-classic".
	Preset string
	// Scale is what one pass multiplies the sides by (2).
	Scale int
	// Backend is the engine backend the network runs on.
	Backend string

	mu    sync.Mutex // the network is not safe for concurrent use
	net   *model.Network
	freed bool
}

// Loader returns a swap.LoadFunc that builds upscaler networks on b.
func Loader(b backend.Backend) func(ctx context.Context, path string, data []byte) (*Model, error) {
	return func(ctx context.Context, path string, data []byte) (*Model, error) {
		f, err := safetensors.Decode(data, safetensors.Options{CheckFinite: true})
		if err != nil {
			return nil, err
		}
		cfgJSON, ok := f.Metadata[model.MetaConfig]
		if !ok {
			return nil, fmt.Errorf("%s: no %q metadata naming the architecture", path, model.MetaConfig)
		}
		cfg, err := model.ParseConfig(cfgJSON)
		if err != nil {
			return nil, err
		}
		if cfg.Role != model.Upscaler {
			return nil, fmt.Errorf("%s holds a %s (%s), not an upscaler", path, cfg.Role, cfg.Preset)
		}
		net, err := model.BuildConfig(cfg, b, 0)
		if err != nil {
			return nil, err
		}
		if err := net.LoadFile(f); err != nil {
			net.Free()
			return nil, err
		}
		return newModel(net, modelName(f.Metadata[MetaName], path)), nil
	}
}

// NewModel wraps a built upscaler network (tests and in-process use); name ""
// means the preset's name.
func NewModel(net *model.Network, name string) (*Model, error) {
	if net.Config().Role != model.Upscaler {
		return nil, fmt.Errorf("network %s is a %s, not an upscaler", net.Config().Preset, net.Config().Role)
	}
	return newModel(net, name), nil
}

func newModel(net *model.Network, name string) *Model {
	cfg := net.Config()
	if name == "" {
		name = cfg.Preset
	}
	return &Model{Name: name, Preset: cfg.Preset, Scale: cfg.Scale, Backend: net.Backend().Name(), net: net}
}

// Release frees the network's buffers; it waits for a batch running on it.
func Release(m *Model) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.freed {
		m.freed = true
		m.net.Free()
	}
}

var errFreed = errors.New("model version was released")

func (m *Model) upscale(ctx context.Context, imgs []*imageio.RGB) ([]*imageio.RGB, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.freed {
		// Only jobs whose callers have all gone away can get here: a live
		// request holds a reference to its version.
		return nil, errFreed
	}
	return m.net.Upscale(ctx, imgs)
}

// modelName picks the served name: the metadata's, else the file's base name
// when it is a valid model name (lower-case letters, digits, '-', starting
// with a letter, at most 63 characters), else "" (the preset's name).
func modelName(meta, path string) string {
	if meta != "" {
		return meta
	}
	base := strings.TrimSuffix(filepath.Base(path), ".safetensors")
	if len(base) == 0 || len(base) > 63 || base[0] < 'a' || base[0] > 'z' || base[len(base)-1] == '-' {
		return ""
	}
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return ""
		}
	}
	return base
}
