package model

import "testing"

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
