package limits

import "testing"

func TestValidScale(t *testing.T) {
	tests := []struct {
		in, want int32
		ok       bool
	}{
		{0, 2, true}, {2, 2, true}, {4, 4, true},
		{1, 1, false}, {3, 3, false}, {8, 8, false}, {-2, -2, false},
	}
	for _, tt := range tests {
		got, ok := ValidScale(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ValidScale(%d) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidImageSize(t *testing.T) {
	tests := []struct {
		in, want int32
		ok       bool
	}{
		{0, 256, true}, {32, 32, true}, {64, 64, true}, {128, 128, true}, {256, 256, true},
		{16, 16, false}, {48, 48, false}, {512, 512, false}, {-32, -32, false}, {255, 255, false},
	}
	for _, tt := range tests {
		got, ok := ValidImageSize(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ValidImageSize(%d) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
