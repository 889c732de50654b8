package model

import (
	"strings"
	"testing"
)

// TestHalo pins each upscaler's halo as read off its layers; engine/tile's
// tests show that these margins make tiled inference match whole-image
// inference and that one pixel less does not.
func TestHalo(t *testing.T) {
	for _, tt := range []struct {
		preset string
		halo   int
	}{
		{"espcn-x2", 4},       // 5×5 + 3×3 + 3×3 at the input's resolution
		{"espcn-residual", 4}, // the same body; the bicubic skip reaches 2
		{"srcnn-classic", 3},  // 9×9, 1×1, 5×5 at 2×: 6 output pixels
		{"srcnn-study", 4},    // 9×9, 3×3, 5×5 at 2×: 7 output pixels
		{"srcnn-residual", 6}, // 9×9, 5×5, 5×5 at 2× (8), after bicubic (2)
		{"upsampler-study", 12},
		{"upsampler-stable", 12}, // 11 through two pools, rounded up to their grid of 4
	} {
		cfg, err := ConfigFor(tt.preset, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := cfg.Halo(); got != tt.halo || err != nil {
			t.Errorf("%s: Halo() = %d, %v; want %d", tt.preset, got, err, tt.halo)
		}
	}
	for _, tt := range []struct{ preset, msg string }{
		{"emoji-features", "only an upscaler has a halo"},
		{"dcgan-g-study", "this is a generator"},
	} {
		cfg, err := ConfigFor(tt.preset, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.Halo(); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: Halo() error %v, want %q", tt.preset, err, tt.msg)
		}
	}
	// An upscaler with a dense layer (none is a preset) cannot be tiled.
	cfg, err := ConfigFor("espcn-x2", 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Layers = append([]Spec{{Op: OpFlatten, Name: "flat"}, {Op: OpDense, Name: "fc", Out: 48}, {Op: OpReshape, Name: "back", Out: 3}}, cfg.Layers...)
	if _, err := cfg.Halo(); err == nil || !strings.Contains(err.Error(), "cannot run in tiles") {
		t.Errorf("upscaler with a dense layer: Halo() error %v", err)
	}
}
