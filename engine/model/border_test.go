package model

import (
	"context"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/imageio"
)

// TestBorderSymmetric upscales a flat grey image with the Up Sampler: served
// with symmetric borders every output pixel sees the same context as the
// interior does, so the output repeats with the network's period (its pooling
// grid) right up to the edge; with the layers' zero padding it does not
// (that difference is the frame the multi-stage images had).
func TestBorderSymmetric(t *testing.T) {
	cfg, err := ConfigFor("upsampler-stable", 32)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Border != BorderSymmetric {
		t.Fatalf("upsampler-stable border %q, want %q", cfg.Border, BorderSymmetric)
	}
	flat := imageio.NewRGB(32, 32)
	for i := range flat.Pix {
		flat.Pix[i] = 150
	}
	run := func(border string) *imageio.RGB {
		c := cfg
		c.Border = border
		n, err := BuildConfig(c, ref.New(), 3)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Free()
		out, err := n.Upscale(context.Background(), []*imageio.RGB{flat})
		if err != nil {
			t.Fatal(err)
		}
		if out[0].W != 64 || out[0].H != 64 {
			t.Fatalf("border %q: output %d×%d, want 64×64", border, out[0].W, out[0].H)
		}
		return out[0]
	}
	// The network's period in output pixels: the input period (SideMultiple) ×2.
	period := 2 * cfg.SideMultiple()
	mismatches := func(img *imageio.RGB) int {
		n := 0
		for y := range img.H - period {
			for x := range img.W - period {
				r, g, b := img.At(x, y)
				r2, g2, b2 := img.At(x+period, y+period)
				if r != r2 || g != g2 || b != b2 {
					n++
				}
			}
		}
		return n
	}
	if n := mismatches(run(BorderSymmetric)); n != 0 {
		t.Errorf("symmetric border: %d pixels differ from the pixel one period away; the edges still see zero padding", n)
	}
	if n := mismatches(run("")); n == 0 {
		t.Error("zero padding: the flat image upscales to a periodic one, so this test cannot tell the borders apart")
	}
}

func TestPadSymmetric(t *testing.T) {
	img := imageio.NewRGB(3, 1)
	for x := range 3 {
		img.Set(x, 0, uint8(x), 0, 0)
	}
	p := img.PadSymmetric(4)
	if p.W != 11 || p.H != 9 {
		t.Fatalf("padded %d×%d, want 11×9", p.W, p.H)
	}
	// 2 2 1 0 | 0 1 2 | 2 1 0 0 along the row (period 6); every row repeats the one row.
	want := []uint8{2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0}
	for y := range p.H {
		for x, w := range want {
			if r, _, _ := p.At(x, y); r != w {
				t.Fatalf("(%d,%d) = %d, want %d", x, y, r, w)
			}
		}
	}
}
