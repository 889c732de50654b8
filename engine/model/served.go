package model

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/safetensors"
)

// MetaName is the weights-file metadata key holding the model's registry name.
const MetaName = "name"

// ErrReleased is returned by Served.Do after Release.
var ErrReleased = errors.New("model version was released")

// Served is one loaded model version as a serving process holds it: a network
// (not safe for concurrent use, so every call runs under a lock), the name it
// is served under, and Release to free its buffers after the last call on it.
type Served struct {
	// Name is the metadata's MetaName, else the file's base name when that is a
	// valid model name, else the preset's name.
	Name string

	mu    sync.Mutex
	net   *Network
	freed bool

	sidesMu sync.Mutex
	sides   map[int]error // CheckSize's answer per side
}

// DecodeServed builds the network a weights file describes (its config
// metadata) on b, loads the weights and checks that it plays role. path names
// the file in errors and, lacking a name in the metadata, gives the served name.
func DecodeServed(path string, data []byte, b backend.Backend, role Role) (*Served, error) {
	f, err := safetensors.Decode(data, safetensors.Options{CheckFinite: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfgJSON, ok := f.Metadata[MetaConfig]
	if !ok {
		return nil, fmt.Errorf("%s: no %q metadata naming the architecture", path, MetaConfig)
	}
	cfg, err := ParseConfig(cfgJSON)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Role != role {
		return nil, fmt.Errorf("%s holds a %s (%s), not a %s", path, cfg.Role, cfg.Preset, role)
	}
	net, err := BuildConfig(cfg, b, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := net.LoadFile(f); err != nil {
		net.Free()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Served{Name: servedName(f.Metadata[MetaName], path, cfg.Preset), net: net}, nil
}

// NewServed wraps a built network (tests and in-process use); name "" means the
// preset's name.
func NewServed(net *Network, name string, role Role) (*Served, error) {
	if cfg := net.Config(); cfg.Role != role {
		return nil, fmt.Errorf("network %s is a %s, not a %s", cfg.Preset, cfg.Role, role)
	}
	if name == "" {
		name = net.Config().Preset
	}
	return &Served{Name: name, net: net}, nil
}

// Config is the network's architecture.
func (s *Served) Config() Config { return s.net.Config() }

// Backend names the engine backend the network runs on.
func (s *Served) Backend() string { return s.net.Backend().Name() }

// Capabilities are those of the engine backend the network runs on.
func (s *Served) Capabilities() backend.Capabilities { return s.net.Backend().Capabilities() }

// SideMultiple is what an input side must be a multiple of for the layers
// to give back an image of exactly Scale× the size: 2 for every max-pool, the
// stride of every strided conv (an Up Sampler pools twice: 4). It is 1 for a
// network that never downsamples.
func (c Config) SideMultiple() int {
	m := 1
	for _, l := range c.Layers {
		switch {
		case l.Op == OpMaxPool:
			m *= 2
		case l.Op == OpConv && l.Stride > 1:
			m *= l.Stride
		}
	}
	return m
}

// CheckSize returns nil when the upscaler can run on a w×h image, else an
// error that says which sides it takes. The engine would otherwise floor an
// odd side in a pooling layer and hand back an image of the wrong size.
// Every side is checked by planning the network at it (so any layer that
// cannot take it is caught), with the same parameter shapes as the served
// weights (a dense layer fixes the side); answers are cached per side.
func (s *Served) CheckSize(w, h int) error {
	for _, side := range []int{w, h} {
		if err := s.checkSide(side); err != nil {
			cfg := s.Config()
			if m := cfg.SideMultiple(); m > 1 && side%m != 0 {
				return fmt.Errorf("model %s (%s) divides the side by %d inside, so width and height must be multiples of %d; got %d×%d", s.Name, cfg.Preset, m, m, w, h)
			}
			return fmt.Errorf("model %s (%s) cannot take a %d×%d image: %w", s.Name, cfg.Preset, w, h, err)
		}
	}
	return nil
}

func (s *Served) checkSide(side int) error {
	s.sidesMu.Lock()
	defer s.sidesMu.Unlock()
	if err, ok := s.sides[side]; ok {
		return err
	}
	err := s.planSide(side)
	if s.sides == nil {
		s.sides = map[int]error{}
	}
	if len(s.sides) < 64 { // sides are bounded by the API; this bounds the cache anyway
		s.sides[side] = err
	}
	return err
}

func (s *Served) planSide(side int) error {
	cfg := s.Config()
	if cfg.Role != Upscaler {
		return fmt.Errorf("a %s takes no image", cfg.Role)
	}
	if side < 1 {
		return fmt.Errorf("side %d", side)
	}
	base, err := cfg.Plan()
	if err != nil {
		return err
	}
	cfg.Side = side
	steps, err := cfg.Plan()
	if err != nil {
		return err
	}
	for i, st := range steps {
		for j, p := range st.Params {
			if !slices.Equal(p.Shape, base[i].Params[j].Shape) {
				return fmt.Errorf("its weights fit side %d only (%s is %v, side %d needs %v)", s.Config().Side, p.Name, base[i].Params[j].Shape, side, p.Shape)
			}
		}
	}
	return nil
}

// Do runs fn on the network under the lock, or returns ErrReleased.
func (s *Served) Do(fn func(*Network) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed {
		return ErrReleased
	}
	return fn(s.net)
}

// Release frees the network's buffers; it waits for a call running on it.
// Releasing twice is a no-op.
func (s *Served) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.freed {
		s.freed = true
		s.net.Free()
	}
}

// servedName picks the served name: the metadata's, else the file's base name
// when it is a valid model name, else the preset's. The test is the rule of
// limits.ValidName (proto/hirez/limits), written out here because the engine
// module does not depend on the API's.
func servedName(meta, path, preset string) string {
	if meta != "" {
		return meta
	}
	base := strings.TrimSuffix(filepath.Base(path), ".safetensors")
	if len(base) == 0 || len(base) > 63 || base[0] < 'a' || base[0] > 'z' || base[len(base)-1] == '-' {
		return preset
	}
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return preset
		}
	}
	return base
}
