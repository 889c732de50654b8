package prepare

import (
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/imageio"
)

func TestTileGrid(t *testing.T) {
	for _, c := range []struct{ w, h, max, nx, ny int }{
		{2560, 1600, 256, 10, 7}, {2560, 1600, 512, 5, 4}, {256, 256, 256, 1, 1}, {257, 100, 256, 2, 1}, {1680, 1050, 256, 7, 5},
	} {
		tiles := TileGrid(c.w, c.h, c.max)
		if len(tiles) != c.nx*c.ny {
			t.Errorf("%d×%d at %d: %d tiles, want %d×%d", c.w, c.h, c.max, len(tiles), c.nx, c.ny)
		}
		cover := make([]int, c.w*c.h)
		for _, tl := range tiles {
			if tl.W > c.max || tl.H > c.max || tl.W < c.max/2 || tl.H < 1 {
				t.Errorf("%d×%d at %d: tile %+v", c.w, c.h, c.max, tl)
			}
			for y := tl.Y; y < tl.Y+tl.H; y++ {
				for x := tl.X; x < tl.X+tl.W; x++ {
					cover[y*c.w+x]++
				}
			}
		}
		for i, n := range cover {
			if n != 1 {
				t.Fatalf("%d×%d at %d: pixel %d covered %d times", c.w, c.h, c.max, i, n)
			}
		}
	}
}

const dep5Excerpt = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: MATE Backgrounds

Files: *
Copyright: *No copyright*
License: GPL-2+

Files: nature/Aqua.jpg
       nature/Dune.png
Copyright: 2008, Charles Barbin <barbinch@free.fr>
 2009, Jean-François Example
License: GPL-2+
Comment: Copyright holders are found in AUTHORS file.

Files: desktop/Ubuntu-Mate-*-no-logo.png
Copyright: 2014 Goce Mitevski
License: CC-BY-SA-4.0

License: GPL-2+
 This package is free software.
`

func TestDep5(t *testing.T) {
	st := ParseDep5(dep5Excerpt)
	if len(st) != 3 {
		t.Fatalf("%d Files paragraphs, want 3: %+v", len(st), st)
	}
	got, ok := Dep5Lookup(st, "nature/Dune.png")
	if !ok || got.Copyright != "2008, Charles Barbin <barbinch@free.fr>; 2009, Jean-François Example" || got.License != "GPL-2+" {
		t.Errorf("Dune: %+v %v", got, ok)
	}
	if got, _ := Dep5Lookup(st, "desktop/Ubuntu-Mate-Cold-no-logo.png"); got.License != "CC-BY-SA-4.0" {
		t.Errorf("glob: %+v", got)
	}
	// '*' crosses '/': the catch-all paragraph covers files in folders.
	if got, ok := Dep5Lookup(st, "abstract/Silk.png"); !ok || got.Copyright != "*No copyright*" {
		t.Errorf("catch-all: %+v %v", got, ok)
	}
}

// writeJPEG writes a textured w×h JPEG, or a uniform grey one when flat.
func writeJPEG(t *testing.T, p string, w, h int, flat ...bool) {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(x * 37), uint8(y * 91), uint8((x ^ y) * 13), 255}
			if len(flat) > 0 && flat[0] {
				c = color.RGBA{120, 120, 120, 255}
			}
			m.Set(x, y, c)
		}
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := jpeg.Encode(f, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, text string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPhotoTrain(t *testing.T) {
	plasma, mate, out := t.TempDir(), t.TempDir(), t.TempDir()
	wp := filepath.Join(plasma, "usr", "share", "wallpapers")
	// Kept (Kite): the largest regular file is used, the symlinked size is not.
	writeJPEG(t, filepath.Join(wp, "Kite", "contents", "images", "300x200.jpg"), 300, 200)
	writeJPEG(t, filepath.Join(wp, "Kite", "contents", "images", "120x90.jpg"), 120, 90)
	if err := os.Symlink("300x200.jpg", filepath.Join(wp, "Kite", "contents", "images", "640x480.jpg")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(wp, "Kite", "metadata.json"),
		`{"KPlugin":{"Authors":[{"Email":"paristo@gmail.com","Name":"Risto Saukonpää","Name[uk]":"Рісто"}],"Id":"Kite","License":"LGPLv3","Name":"Kite"}}`)
	// Held out (Path), read from a metadata.desktop.
	writeJPEG(t, filepath.Join(wp, "Path", "contents", "images", "160x100.jpg"), 160, 100)
	writeFile(t, filepath.Join(wp, "Path", "metadata.desktop"),
		"[Desktop Entry]\nName=Path\nName[de]=Pfad\nX-KDE-PluginInfo-Author=Risto Saukonpää\nX-KDE-PluginInfo-Email=paristo@gmail.com\nX-KDE-PluginInfo-License=LGPLv3\n")
	// Left out (Altai) and unreviewed (NewOne).
	writeJPEG(t, filepath.Join(wp, "Altai", "contents", "images", "64x64.jpg"), 64, 64)
	writeJPEG(t, filepath.Join(wp, "NewOne", "contents", "images", "64x64.jpg"), 64, 64)

	share := filepath.Join(mate, "usr", "share")
	writeFile(t, filepath.Join(share, "doc", "mate-backgrounds", "copyright"), dep5Excerpt)
	writeFile(t, filepath.Join(share, "mate-background-properties", "mate-nature.xml"), `<?xml version="1.0"?>
<!DOCTYPE wallpapers SYSTEM "mate-wp-list.dtd">
<wallpapers>
  <wallpaper deleted="false">
    <name>Aqua</name>
    <name xml:lang="de">Wasser</name>
    <filename>/usr/share/backgrounds/mate/nature/Aqua.jpg</filename>
  </wallpaper>
</wallpapers>
`)
	nat := filepath.Join(share, "backgrounds", "mate", "nature")
	writeJPEG(t, filepath.Join(nat, "Aqua.jpg"), 200, 130, true) // flat: its tiles go with the default filter
	writeJPEG(t, filepath.Join(nat, "Unknown.jpg"), 64, 64)
	// A stale file from an earlier run must go.
	writeFile(t, filepath.Join(out, "photos-train", "train", "old.png"), "x")

	set := filepath.Join(out, "photos-train")
	rep, err := PhotoTrain(context.Background(), PhotoTrainOptions{
		PlasmaRoot: plasma, PlasmaVersion: "4:5.27.5-2", MateRoot: mate, MateVersion: "1.26.0-1",
		Out: set, Licenses: filepath.Join(out, "licenses"), Tile: 128, MaxBicubicPSNR: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Kite 300×200 at 128 → 3×2 tiles; Aqua 200×130 → 2×2; Path held out whole.
	if rep.Train != 10 || rep.TrainPhotos != 2 || rep.HeldOut != 1 || rep.TrainPixels != 300*200+200*130 || rep.HeldOutPixels != 160*100 {
		t.Errorf("report: %+v", rep)
	}
	if !slices.Equal(rep.Unreviewed, []string{"plasma-workspace-wallpapers NewOne", "mate-backgrounds nature/Unknown.jpg"}) || rep.LeftOut != 1 {
		t.Errorf("unreviewed %q, left out %d", rep.Unreviewed, rep.LeftOut)
	}
	if !slices.Contains(rep.Missing, "plasma-workspace-wallpapers BytheWater") || !slices.Contains(rep.Missing, "mate-backgrounds Dune") {
		t.Errorf("missing: %q", rep.Missing)
	}
	if rep.Licenses["LGPLv3"] != 2 || rep.Licenses["GPL-2+"] != 1 || !strings.Contains(rep.String(), "WARNING: 2 wallpapers not reviewed") {
		t.Errorf("licences %v; %s", rep.Licenses, rep)
	}
	if _, err := os.Stat(filepath.Join(set, "train", "old.png")); err == nil {
		t.Error("stale file kept")
	}
	lines, err := ReadPhotoLicenses(set)
	if err != nil || len(lines) != 11 {
		t.Fatalf("licenses.tsv: %d lines, %v", len(lines), err)
	}
	if l := lines[0]; l != (PhotoLicense{"heldout/plasma-Path.png", PlasmaPackage, "4:5.27.5-2", "Path", "Risto Saukonpää <paristo@gmail.com>", "LGPLv3", "usr/share/wallpapers/Path/contents/images/160x100.jpg"}) {
		t.Errorf("held-out line %+v", l)
	}
	if l := lines[1]; l.File != "train/mate-Aqua-r0c0.png" || l.Wallpaper != "Aqua" || l.Author != "2008, Charles Barbin <barbinch@free.fr>; 2009, Jean-François Example" || l.License != "GPL-2+" {
		t.Errorf("mate line %+v", l)
	}
	if l := lines[10]; l.File != "train/plasma-Kite-r1c2.png" || l.Source != "usr/share/wallpapers/Kite/contents/images/300x200.jpg" {
		t.Errorf("last line %+v", l)
	}
	img, err := imageio.DecodeFile(filepath.Join(set, "train", "plasma-Kite-r1c2.png"), imageio.DefaultLimits)
	if err != nil || img.W != 100 || img.H != 100 {
		t.Fatalf("tile: %v %v", img, err)
	}
	f, _ := os.Open(filepath.Join(set, "heldout", "plasma-Path.png"))
	text, err := imageio.ReadText(f)
	f.Close()
	if err != nil || len(text) != 2 || text[1].Value != "Risto Saukonpää <paristo@gmail.com>; LGPLv3" {
		t.Errorf("tEXt %+v %v", text, err)
	}
	for _, p := range []string{"Kite.metadata.json", "Path.metadata.desktop"} {
		if _, err := os.Stat(filepath.Join(out, "licenses", PlasmaPackage, p)); err != nil {
			t.Error(err)
		}
	}

	// The default filter leaves out Aqua's 4 uniform tiles, not Kite's textured ones.
	rep, err = PhotoTrain(context.Background(), PhotoTrainOptions{PlasmaRoot: plasma, MateRoot: mate, Out: set, Tile: 128})
	if err != nil || rep.Train != 6 || rep.Flat != 4 || rep.TrainPhotos != 2 || !slices.Equal(rep.AllFlat, []string{"mate-backgrounds Aqua"}) {
		t.Errorf("filtered: %+v %v", rep, err)
	}
	if lines, _ := ReadPhotoLicenses(set); len(lines) != 7 {
		t.Errorf("filtered licenses.tsv: %d lines", len(lines))
	}

	// A kept wallpaper without a licence is an error, not a silent default.
	writeFile(t, filepath.Join(wp, "Kite", "metadata.json"), `{"KPlugin":{"Name":"Kite","Authors":[{"Name":"R"}]}}`)
	if _, err := PhotoTrain(context.Background(), PhotoTrainOptions{PlasmaRoot: plasma, Out: set}); err == nil || !strings.Contains(err.Error(), "licence") {
		t.Errorf("no licence: %v", err)
	}
}

func TestLatin1(t *testing.T) {
	if got := latin1("Saukonpää Мацей"); got != "Saukonpää ?????" {
		t.Errorf("%q", got)
	}
}
