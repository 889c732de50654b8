package model

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/safetensors"
)

// Metadata keys every weights file carries; others (version, trained_on, …) are
// free-form and passed through.
const (
	MetaPreset = "preset"
	MetaConfig = "config"
)

// trackedSuffix is PyTorch's BatchNorm step counter. We write it (as I64, the
// dtype torch uses) so that torch's load_state_dict(strict=True) sees exactly the
// keys it expects; reading it is optional, since torch itself fills it in when
// it is missing and it does not change any output (momentum is fixed).
const trackedSuffix = ".num_batches_tracked"

// File returns the network's weights as a safetensors file: every parameter in
// state_dict order (float32), num_batches_tracked for each BatchNorm, and the
// metadata meta plus preset and config.
func (n *Network) File(meta map[string]string) (*safetensors.File, error) {
	f := &safetensors.File{Metadata: maps.Clone(meta)}
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	f.Metadata[MetaPreset] = n.cfg.Preset
	f.Metadata[MetaConfig] = n.cfg.JSON()
	for _, p := range n.Params() {
		data, err := p.Value.Host()
		if err != nil {
			return nil, fmt.Errorf("model %s: read %s: %w", n.cfg.Preset, p.Name, err)
		}
		f.Tensors = append(f.Tensors, safetensors.Tensor{Name: p.Name, DType: safetensors.F32, Shape: p.Value.Shape(), F32: data})
		if rest, ok := strings.CutSuffix(p.Name, ".running_var"); ok {
			f.Tensors = append(f.Tensors, safetensors.Tensor{Name: rest + trackedSuffix, DType: safetensors.I64, Shape: []int{}, I64: []int64{n.tracked}})
		}
	}
	return f, nil
}

// Save writes the weights to path atomically (see safetensors.WriteFile).
func (n *Network) Save(path string, meta map[string]string) error {
	f, err := n.File(meta)
	if err != nil {
		return err
	}
	if err := safetensors.WriteFile(path, f); err != nil {
		return fmt.Errorf("model %s: save: %w", n.cfg.Preset, err)
	}
	return nil
}

// Load reads weights from path into the network and returns the file's metadata.
func (n *Network) Load(path string) (map[string]string, error) {
	f, err := safetensors.ReadFile(path, safetensors.Options{CheckFinite: true})
	if err != nil {
		return nil, fmt.Errorf("model %s: load: %w", n.cfg.Preset, err)
	}
	if err := n.LoadFile(f); err != nil {
		return nil, err
	}
	return f.Metadata, nil
}

// LoadFile sets the network's weights from f. Everything is checked before any
// value is set, so a rejected file leaves the network as it was: the preset in
// the metadata (when present) must be the network's, every parameter must be
// there with its exact shape and a float dtype, and the file may hold nothing
// else (torch's strict loading). Files without a preset entry (written by a
// plain PyTorch script, say) load when every name and shape matches.
func (n *Network) LoadFile(f *safetensors.File) error {
	pre := fmt.Sprintf("model %s: load", n.cfg.Preset)
	if p, ok := f.Metadata[MetaPreset]; ok && p != n.cfg.Preset {
		return fmt.Errorf("%s: the file holds weights for preset %q", pre, p)
	}
	byName := make(map[string]*safetensors.Tensor, len(f.Tensors))
	for i := range f.Tensors {
		byName[f.Tensors[i].Name] = &f.Tensors[i]
	}
	params := n.Params()
	want := make(map[string]bool, len(params))
	for _, p := range params {
		want[p.Name] = true
		t, ok := byName[p.Name]
		if !ok {
			return fmt.Errorf("%s: tensor %q is missing from the file", pre, p.Name)
		}
		if !t.DType.IsFloat() {
			return fmt.Errorf("%s: tensor %q has dtype %s, want a float type", pre, p.Name, t.DType)
		}
		if !slices.Equal(t.Shape, p.Value.Shape()) {
			return fmt.Errorf("%s: tensor %q has shape %v in the file, want %v", pre, p.Name, t.Shape, p.Value.Shape())
		}
	}
	tracked := int64(-1)
	for _, t := range f.Tensors {
		if want[t.Name] {
			continue
		}
		if rest, ok := strings.CutSuffix(t.Name, trackedSuffix); ok && want[rest+".running_var"] {
			if t.DType != safetensors.I64 || len(t.I64) != 1 {
				return fmt.Errorf("%s: tensor %q has dtype %s shape %v, want a scalar I64", pre, t.Name, t.DType, t.Shape)
			}
			tracked = max(tracked, t.I64[0])
			continue
		}
		return fmt.Errorf("%s: tensor %q in the file is not a parameter of this network", pre, t.Name)
	}
	for _, p := range params {
		if err := p.Value.CopyFromHost(byName[p.Name].F32); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", pre, p.Name, err)
		}
	}
	if tracked >= 0 {
		n.tracked = tracked
	}
	return nil
}

// Open builds a network from a weights file alone: its config metadata gives
// the architecture, its tensors the weights. It returns the file's metadata too.
func Open(path string, b backend.Backend) (*Network, map[string]string, error) {
	f, err := safetensors.ReadFile(path, safetensors.Options{CheckFinite: true})
	if err != nil {
		return nil, nil, fmt.Errorf("model: open: %w", err)
	}
	cfgJSON, ok := f.Metadata[MetaConfig]
	if !ok {
		return nil, nil, fmt.Errorf("model: open %s: no %q metadata (build the preset and use Load)", path, MetaConfig)
	}
	cfg, err := ParseConfig(cfgJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("model: open %s: %w", path, err)
	}
	// LoadFile checks every tensor, but only once the network is built: a
	// few bytes of config could otherwise make Open allocate gigabytes. A
	// file that cannot hold the network's values is refused before that.
	steps, _ := cfg.Plan() // ParseConfig planned it
	params, buffers, _ := Counts(steps)
	var values int64
	for i := range f.Tensors {
		values += int64(f.Tensors[i].Len())
	}
	if params+buffers > values {
		return nil, nil, fmt.Errorf("model: open %s: the config needs %d parameters and buffers, the file holds %d values", path, params+buffers, values)
	}
	n, err := BuildConfig(cfg, b, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("model: open %s: %w", path, err)
	}
	if err := n.LoadFile(f); err != nil {
		n.Free()
		return nil, nil, fmt.Errorf("model: open %s: %w", path, err)
	}
	return n, f.Metadata, nil
}

// Tracked is the number of training-mode forward passes (num_batches_tracked).
func (n *Network) Tracked() int64 { return n.tracked }
