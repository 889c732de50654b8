package model

import (
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
)

func TestServedName(t *testing.T) {
	for _, tt := range []struct{ meta, path, want string }{
		{"reg-name", "/m/x.safetensors", "reg-name"},
		{"", "/models/dcgan32-emoji.safetensors", "dcgan32-emoji"},
		{"", "/models/Weird_Name.safetensors", "preset"},
		{"", "/models/1st.safetensors", "preset"},
		{"", "/models/trailing-.safetensors", "preset"},
	} {
		if got := servedName(tt.meta, tt.path, "preset"); got != tt.want {
			t.Errorf("servedName(%q, %q) = %q, want %q", tt.meta, tt.path, got, tt.want)
		}
	}
}

func TestServedCheckSize(t *testing.T) {
	b := ref.New()
	for _, tt := range []struct {
		preset   string
		multiple int
		ok, bad  [][2]int
		msg      string
	}{
		// Two max-pools: any side divisible by 4, not only the trained one.
		{"upsampler-stable", 4, [][2]int{{32, 32}, {64, 64}, {8, 8}, {36, 40}}, [][2]int{{30, 32}, {32, 34}, {6, 6}, {2, 4}}, "multiples of 4"},
		{"espcn-x2", 1, [][2]int{{32, 32}, {33, 17}, {1, 1}}, nil, ""},
	} {
		net, err := Build(tt.preset, b, Options{Side: 32, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewServed(net, "m", Upscaler)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Config().SideMultiple(); got != tt.multiple {
			t.Errorf("%s: SideMultiple = %d, want %d", tt.preset, got, tt.multiple)
		}
		for _, wh := range tt.ok {
			if err := s.CheckSize(wh[0], wh[1]); err != nil {
				t.Errorf("%s: CheckSize(%d, %d) = %v, want nil", tt.preset, wh[0], wh[1], err)
			}
		}
		for _, wh := range tt.bad {
			// Twice: the second answer comes from the cache.
			for range 2 {
				if err := s.CheckSize(wh[0], wh[1]); err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "model m (") {
					t.Errorf("%s: CheckSize(%d, %d) = %v, want an error with %q", tt.preset, wh[0], wh[1], err, tt.msg)
				}
			}
		}
		s.Release()
	}
}
