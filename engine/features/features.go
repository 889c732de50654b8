// Package features scores generated images the way a viewer would: in the
// feature space of an encoder trained on real emoji only (the "emoji-features"
// preset, trained by train.Features), it compares a generated set with held-out
// real images by KID, improved precision and recall, and checks that the
// generator does not copy its training images (docs/metrics.md).
//
// Raw-pixel SWD cannot tell a colour blob from an emoji with the same colours and
// edges; an encoder trained to tell emoji subgroups apart can.
package features

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/hirez-ml/hirez/engine/backend"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
	"github.com/hirez-ml/hirez/engine/model"
)

// MetaClasses is the weights file's metadata key listing the encoder's classes
// (a JSON array of names).
const MetaClasses = "hirez.features.classes"

// Extractor embeds images with an encoder network. It is not safe for concurrent
// use (the network owns its activations).
type Extractor struct {
	net     *model.Network
	classes []string
}

// Open loads an encoder's weights file (models/emoji-features.safetensors).
func Open(path string, b backend.Backend) (*Extractor, error) {
	net, meta, err := model.Open(path, b)
	if err != nil {
		return nil, err
	}
	e, err := New(net, meta)
	if err != nil {
		net.Free()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// New wraps an encoder network; meta is its weights file's metadata (for the
// class names; may be nil).
func New(net *model.Network, meta map[string]string) (*Extractor, error) {
	if r := net.Config().Role; r != model.Encoder {
		return nil, fmt.Errorf("features: the network is a %s, not an encoder", r)
	}
	e := &Extractor{net: net}
	if s, ok := meta[MetaClasses]; ok {
		if err := json.Unmarshal([]byte(s), &e.classes); err != nil {
			return nil, fmt.Errorf("features: metadata %s: %w", MetaClasses, err)
		}
	}
	return e, nil
}

// Side is the image side the encoder reads.
func (e *Extractor) Side() int { return e.net.Config().Side }

// Classes are the labels the encoder was trained to tell apart.
func (e *Extractor) Classes() []string { return slices.Clone(e.classes) }

// Free releases the network.
func (e *Extractor) Free() { e.net.Free() }

// Embed returns one feature vector per image. Each image is centre-cropped to a
// square and resized to Side by MATLAB bicubic (antialiased when shrinking), the
// same resampling the encoder was trained with, so a 256² chain output and a
// 128² real emoji are seen alike.
func (e *Extractor) Embed(ctx context.Context, images []*imageio.RGB) ([][]float32, error) {
	s := e.Side()
	in := make([]*imageio.RGB, len(images))
	for i, m := range images {
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("features: image %d: %w", i, err)
		}
		side := min(m.W, m.H)
		sq, err := m.CenterCrop(side, side)
		if err != nil {
			return nil, fmt.Errorf("features: image %d: %w", i, err)
		}
		if side != s {
			if sq, err = metrics.ImresizeTo(sq, s, s); err != nil {
				return nil, fmt.Errorf("features: image %d: %w", i, err)
			}
		}
		in[i] = sq
	}
	return e.net.Encode(ctx, in)
}
