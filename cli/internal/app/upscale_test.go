package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// TestUpscaleTiles upscales one awkward-size PNG with the bundled model
// whole and in small tiles: the pixels agree (engine/tile has the full
// parity test), and a bad --tile is a usage error.
func TestUpscaleTiles(t *testing.T) {
	const weights = "../../../models/espcn-residual-x2-emoji.safetensors"
	tmp := t.TempDir()
	in := filepath.Join(writeImages(t, filepath.Join(tmp, "in"), 1, 45), "img000.png")
	pix := map[string][]byte{}
	for _, side := range []string{"0", "16"} {
		out := filepath.Join(tmp, "tile"+side+".png")
		if code, stdout, errs := hirez(t, "upscale", "--model", weights, "--in", in, "--out", out, "--tile", side); code != 0 || !strings.Contains(stdout, "(90×90)") {
			t.Fatalf("upscale --tile %s: %d %s %s", side, code, stdout, errs)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		img, err := imageio.Decode(data, imageio.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		pix[side] = img.Pix
	}
	for i := range pix["0"] {
		if d := int(pix["0"][i]) - int(pix["16"][i]); d > 1 || d < -1 {
			t.Fatalf("byte %d: whole %d, tiled %d", i, pix["0"][i], pix["16"][i])
		}
	}
	if code, _, errs := hirez(t, "upscale", "--model", weights, "--in", in, "--out", filepath.Join(tmp, "x.png"), "--tile", "-1"); code != ExitUsage || !strings.Contains(errs, "must not be negative") {
		t.Errorf("--tile -1: %d %s", code, errs)
	}
}
