package prepare

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hirez-ml/hirez/engine/imageio"
)

func TestPhotosAndFluent(t *testing.T) {
	ctx := context.Background()
	src, out := t.TempDir(), t.TempDir()
	img := imageio.NewRGB(40, 30)
	img.Gray = true
	if err := imageio.WritePNGFile(filepath.Join(src, "camera.png"), img); err != nil {
		t.Fatal(err)
	}
	rep, err := Photos(ctx, src, filepath.Join(out, "photos"), "1.0", []string{"camera.png"})
	if err != nil || rep.Train != 1 {
		t.Fatalf("photos: %v %v", rep, err)
	}
	back, err := imageio.DecodeFile(filepath.Join(out, "photos", "camera.png"), imageio.DefaultLimits)
	if err != nil || !back.Gray || back.W != 40 {
		t.Fatalf("photo round trip: %+v %v", back, err)
	}
	if _, err := Photos(ctx, src, out, "1.0", []string{"missing.png"}); err == nil {
		t.Error("missing photo accepted")
	}

	// Fluent: a corrupt .webp is skipped and reported, not fatal.
	assets := t.TempDir()
	os.WriteFile(filepath.Join(assets, "1f44d-1f3fb.webp"), []byte("RIFF"), 0o644)
	rep, err = Fluent(ctx, assets, filepath.Join(out, "fluent256"), "1.1.0")
	if err != nil || len(rep.Skipped) != 1 || rep.Train+rep.HeldOut != 0 {
		t.Fatalf("fluent: %v %v", rep, err)
	}
	if _, err := Fluent(ctx, t.TempDir(), out, "1.1.0"); err == nil {
		t.Error("empty assets folder accepted")
	}
}
