package upscale

import (
	"context"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/hotswap"
)

// bundled is a real, trained upscaler (engine/tile tests tiling in depth).
const bundled = "../../../../models/espcn-residual-x2-emoji.safetensors"

func bundledService(t *testing.T, mem Memory) (*Service, *hotswap.Version[*Model]) {
	t.Helper()
	be, err := choose.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() }) // runs last: after the model on it is freed
	net, _, err := model.Open(bundled, be)
	if err != nil {
		t.Fatal(err)
	}
	return serviceWith(t, net, mem)
}

// TestTiledServiceMatchesWhole: the service cuts images larger than its tile
// side (here 16) and gives back what whole-image inference gives.
func TestTiledServiceMatchesWhole(t *testing.T) {
	whole, _ := bundledService(t, Memory{TileSide: 0, MaxInFlightBytes: 1 << 30})
	tiled, _ := bundledService(t, Memory{TileSide: 16, MaxInFlightBytes: 1 << 30})
	imgs := []*imageio.RGB{testImage(45, 29), testImage(1, 40), testImage(9, 9)}
	want, err := whole.Upscale(context.Background(), Request{Images: imgs, Scale: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tiled.Upscale(context.Background(), Request{Images: imgs, Scale: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range imgs {
		g, w := got[i].Image, want[i].Image
		if g.W != w.W || g.H != w.H || len(got[i].Passes) != 1 || got[i].Passes[0].BatchSize < 1 {
			t.Fatalf("images[%d]: %d×%d in %v, want %d×%d", i, g.W, g.H, got[i].Passes, w.W, w.H)
		}
		for j := range g.Pix {
			// One level at most: the engine's 1e-4 parity tolerance (engine/tile).
			if d := int(g.Pix[j]) - int(w.Pix[j]); d > 1 || d < -1 {
				t.Fatalf("images[%d] byte %d: tiled %d, whole %d", i, j, g.Pix[j], w.Pix[j])
			}
		}
	}
	if st := tiled.InFlight(); st.Bytes != 0 || st.Peak == 0 {
		t.Errorf("in flight after the call: %+v; want 0 bytes and a positive peak", st)
	}
}

func TestCost(t *testing.T) {
	s, v := bundledService(t, Memory{TileSide: 256, MaxInFlightBytes: 1 << 30})
	m := v.Value
	for _, tt := range []struct {
		w, h, scale int
		want        int64
	}{
		{8, 6, 2, 3 * 48 * (1 + 4)},
		{8, 6, 4, 3 * 48 * (1 + 4 + 16)},
		// cut into 2×2 tiles of 264² (256 and the halo of 4 on both
		// sides): one tile's input and output on top of the image's
		{512, 512, 2, 3*512*512*(1+4) + 3*264*264*(1+4)},
		// the ×4's second pass (512×400: cores 256×200) is cut too, the
		// first not
		{256, 200, 4, 3*256*200*(1+4+16) + 3*264*208*(1+4)},
	} {
		got, err := s.Cost(m, tt.w, tt.h, tt.scale)
		if err != nil || got != tt.want {
			t.Errorf("Cost(%d×%d ×%d) = %d, %v; want %d", tt.w, tt.h, tt.scale, got, err, tt.want)
		}
	}
	if _, err := s.Cost(m, 8, 8, 3); err == nil {
		t.Error("Cost at ×3 of a ×2 model: no error")
	}
}
