// Command prepare turns the packages fetched by scripts/data.sh into the training
// and evaluation folders under data/ (see docs/data.md):
//
//	prepare -emoji-test emoji-test.txt -noto FONT.ttf -fluent ASSETS_DIR -photos SKIMAGE_DATA_DIR -out data
//	prepare -plasma PLASMA_ROOT -mate MATE_ROOT -out data   # data/photos-train (photo SR training)
//
// The emoji sets need Unicode's emoji-test.txt (Debian unicode-data), which names
// and labels their images (labels.tsv in each set's root).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/dataset/prepare"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "prepare:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		noto          = flag.String("noto", "", "NotoColorEmoji.ttf (empty: skip)")
		notoVersion   = flag.String("noto-version", "", "Debian version of fonts-noto-color-emoji, recorded in the PNGs")
		fluent        = flag.String("fluent", "", "folder of the Fluent 3D .webp files (empty: skip)")
		fluentVersion = flag.String("fluent-version", "", "npm version of @lobehub/fluent-emoji-3d")
		photos        = flag.String("photos", "", "skimage/data folder (empty: skip)")
		photosVersion = flag.String("photos-version", "", "Debian version of python3-skimage")
		emojiTest     = flag.String("emoji-test", "", "Unicode's emoji-test.txt (needed by -noto and -fluent)")
		plasma        = flag.String("plasma", "", "extracted plasma-workspace-wallpapers (the folder holding usr/) for photos-train (empty: skip)")
		plasmaVersion = flag.String("plasma-version", "", "Debian version of plasma-workspace-wallpapers")
		mate          = flag.String("mate", "", "extracted mate-backgrounds (the folder holding usr/) for photos-train (empty: skip)")
		mateVersion   = flag.String("mate-version", "", "Debian version of mate-backgrounds")
		photoTile     = flag.Int("photo-tile", prepare.DefaultPhotoTile, "photos-train: largest training tile side")
		photoFlat     = flag.Float64("photo-max-bicubic-psnr", prepare.DefaultPhotoMaxBicubicPSNR, "photos-train: leave out training tiles that bicubic ×2 reproduces to this Y PSNR (dB) or better (negative: keep all)")
		photoDown     = flag.Int("photo-downscale", prepare.DefaultPhotoDownscale, "photos-train: reduce every photograph by this integer factor first (MATLAB bicubic; 1 = native size)")
		out           = flag.String("out", "data", "output root")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var tab *dataset.EmojiTable
	if *noto != "" || *fluent != "" {
		if *emojiTest == "" {
			return errors.New("-noto and -fluent need -emoji-test (Unicode's emoji-test.txt, Debian unicode-data)")
		}
		var err error
		if tab, err = dataset.ReadEmojiTest(*emojiTest); err != nil {
			return err
		}
		fmt.Printf("emoji-test.txt %s: %d entries in %d groups (%s)\n", tab.Version, len(tab.Entries), len(tab.Groups()), *emojiTest)
	}

	steps := []struct {
		src  string
		name string
		do   func() (prepare.Report, error)
	}{
		{*noto, "noto128", func() (prepare.Report, error) {
			return prepare.Noto(ctx, *noto, filepath.Join(*out, "noto128"), *notoVersion, tab)
		}},
		{*fluent, "fluent256", func() (prepare.Report, error) {
			return prepare.Fluent(ctx, *fluent, filepath.Join(*out, "fluent256"), *fluentVersion, tab)
		}},
		{*photos, "photos", func() (prepare.Report, error) {
			return prepare.Photos(ctx, *photos, filepath.Join(*out, "photos"), *photosVersion, prepare.PhotoNames)
		}},
	}
	if *plasma != "" || *mate != "" {
		start := time.Now()
		dir := filepath.Join(*out, "photos-train")
		rep, err := prepare.PhotoTrain(ctx, prepare.PhotoTrainOptions{
			PlasmaRoot: *plasma, PlasmaVersion: *plasmaVersion, MateRoot: *mate, MateVersion: *mateVersion,
			Out: dir, Licenses: filepath.Join(*out, "licenses"), Tile: *photoTile, Downscale: *photoDown, MaxBicubicPSNR: *photoFlat,
		})
		if err != nil {
			return err
		}
		fmt.Printf("%s  (→ %s, %.1fs)\n", rep, dir, time.Since(start).Seconds())
	}
	for _, s := range steps {
		if s.src == "" {
			continue
		}
		start := time.Now()
		rep, err := s.do()
		if err != nil {
			return err
		}
		fmt.Printf("%s  (%s → %s, %.1fs)\n%s", rep, s.src, filepath.Join(*out, s.name), time.Since(start).Seconds(), rep.Details())
	}
	return nil
}
