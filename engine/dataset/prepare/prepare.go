// Package prepare converts the fetched source packages (scripts/data.sh) into the
// folders the loaders read: Noto Color Emoji glyphs at 128², Fluent 3D emoji at 256²,
// each split into train/ and heldout/ by dataset.HeldOut on the emoji's group key,
// and the scikit-image test photos as PNG. Every written PNG carries its source and
// licence as tEXt chunks.
package prepare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/dataset/cbdt"
	"github.com/hirez-ml/hirez/engine/imageio"
)

// Report counts what one source produced.
type Report struct {
	Set       string
	Train     int
	HeldOut   int
	Groups    int // distinct group keys
	HeldOutGr int // held-out group keys
	Skipped   []string
}

func (r Report) String() string {
	s := fmt.Sprintf("%-10s %5d images", r.Set, r.Train)
	if r.Groups > 0 {
		s = fmt.Sprintf("%-10s %5d train, %4d held out (%d of %d groups held out)", r.Set, r.Train, r.HeldOut, r.HeldOutGr, r.Groups)
	}
	if len(r.Skipped) > 0 {
		s += fmt.Sprintf("; %d skipped: %s", len(r.Skipped), strings.Join(r.Skipped, "; "))
	}
	return s
}

// job is one image to write.
type job struct {
	name string // file stem
	seq  []rune // nil when unknown
	load func() (*imageio.RGB, error)
	text []imageio.Text
}

// resetSplitDirs empties out/train and out/heldout so files from an older run (or
// an older split rule) cannot linger.
func resetSplitDirs(out string) error {
	for _, d := range []string{"train", "heldout"} {
		p := filepath.Join(out, d)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// writeSplit writes the jobs into out/{train,heldout} in parallel.
func writeSplit(ctx context.Context, set, out string, jobs []job) (Report, error) {
	if err := resetSplitDirs(out); err != nil {
		return Report{}, fmt.Errorf("prepare %s: %w", set, err)
	}
	rep := Report{Set: set}
	groups := map[string]bool{}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		key := j.name
		if j.seq != nil {
			key = dataset.GroupKey(j.seq)
		}
		held := dataset.HeldOut(key)
		groups[key] = held
		split := "train"
		if held {
			split = "heldout"
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			img, err := j.load()
			if err == nil {
				text := append(slices.Clone(j.text), imageio.Text{Key: "hirez-split-key", Value: key})
				err = imageio.WritePNGFile(filepath.Join(out, split, j.name+".png"), img, text...)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && errors.Is(err, imageio.ErrFormat):
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %v", j.name, err))
			case err != nil:
				errs = append(errs, err)
			case held:
				rep.HeldOut++
			default:
				rep.Train++
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return rep, fmt.Errorf("prepare %s: %w", set, err)
	}
	rep.Groups = len(groups)
	for _, h := range groups {
		if h {
			rep.HeldOutGr++
		}
	}
	slices.Sort(rep.Skipped)
	return rep, nil
}

// Noto extracts every bitmap glyph of the Noto Color Emoji font into
// out/{train,heldout}/<sequence>.png at 128×128. The strike is 136×128 with the art in
// the centre 128 columns, so 4 columns are cut from each side (lossless).
func Noto(ctx context.Context, fontPath, out, version string) (Report, error) {
	data, err := os.ReadFile(fontPath)
	if err != nil {
		return Report{}, fmt.Errorf("prepare noto: %w", err)
	}
	font, err := cbdt.Parse(data)
	if err != nil {
		return Report{}, fmt.Errorf("prepare noto: %w", err)
	}
	glyphs, err := font.Glyphs()
	if err != nil {
		return Report{}, fmt.Errorf("prepare noto: %w", err)
	}
	var jobs []job
	seen := map[string]bool{}
	for _, g := range glyphs {
		name := fmt.Sprintf("gid%05d", g.ID)
		if g.Runes != nil {
			name = dataset.SequenceName(g.Runes)
		}
		if seen[name] {
			name = fmt.Sprintf("%s_gid%05d", name, g.ID)
		}
		seen[name] = true
		jobs = append(jobs, job{
			name: name, seq: g.Runes,
			load: func() (*imageio.RGB, error) {
				img, err := imageio.Decode(g.PNG, imageio.Limits{MaxSide: 1024})
				if err != nil {
					return nil, err
				}
				if img.W < 128 || img.H < 128 {
					return nil, fmt.Errorf("%w: glyph %d is %d×%d", imageio.ErrFormat, g.ID, img.W, img.H)
				}
				return img.CenterCrop(128, 128)
			},
			text: []imageio.Text{
				{Key: "Source", Value: "Noto Color Emoji (Debian fonts-noto-color-emoji " + version + "), glyph " + fmt.Sprint(g.ID)},
				{Key: "Copyright", Value: "Copyright 2013-2017 Google Inc.; images under the Apache License 2.0"},
			},
		})
	}
	return writeSplit(ctx, "noto128", out, jobs)
}

// Fluent converts the Fluent 3D emoji WebP files of assetsDir (named by code point
// sequence, e.g. 1f44d-1f3fd.webp) into out/{train,heldout}/<name>.png, centre-cropped
// to 256×256 (a few sources are 256×264).
func Fluent(ctx context.Context, assetsDir, out, version string) (Report, error) {
	files, err := filepath.Glob(filepath.Join(assetsDir, "*.webp"))
	if err != nil || len(files) == 0 {
		return Report{}, fmt.Errorf("prepare fluent: no .webp files in %s (%v)", assetsDir, err)
	}
	slices.Sort(files)
	var jobs []job
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".webp")
		seq, err := dataset.ParseSequenceName(name)
		if err != nil {
			seq = nil // fall back to the file name as the key
		}
		jobs = append(jobs, job{
			name: name, seq: seq,
			load: func() (*imageio.RGB, error) {
				img, err := imageio.DecodeFile(f, imageio.Limits{MaxSide: 4096})
				if err != nil {
					return nil, err
				}
				if img.W < 256 || img.H < 256 {
					return nil, fmt.Errorf("%w: %s is %d×%d", imageio.ErrFormat, f, img.W, img.H)
				}
				return img.CenterCrop(256, 256)
			},
			text: []imageio.Text{
				{Key: "Source", Value: "Fluent Emoji 3D (npm @lobehub/fluent-emoji-3d " + version + ") " + filepath.Base(f)},
				{Key: "Copyright", Value: "Copyright (c) Microsoft Corporation; MIT License"},
			},
		})
	}
	return writeSplit(ctx, "fluent256", out, jobs)
}

// PhotoNames are the scikit-image photos used for SR evaluation on natural images.
var PhotoNames = []string{"astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg"}

// Photos decodes the named files of srcDir (skimage/data) and writes them to
// out/<stem>.png (grey stays grey).
func Photos(ctx context.Context, srcDir, out, version string, names []string) (Report, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return Report{}, err
	}
	rep := Report{Set: "photos"}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		img, err := imageio.DecodeFile(filepath.Join(srcDir, n), imageio.DefaultLimits)
		if err != nil {
			return rep, fmt.Errorf("prepare photos: %w", err)
		}
		stem := strings.TrimSuffix(n, filepath.Ext(n))
		err = imageio.WritePNGFile(filepath.Join(out, stem+".png"), img,
			imageio.Text{Key: "Source", Value: "scikit-image data/" + n + " (Debian python3-skimage " + version + ")"},
			imageio.Text{Key: "Copyright", Value: "public domain / CC0 (see skimage/data/README.txt)"})
		if err != nil {
			return rep, err
		}
		rep.Train++
	}
	return rep, nil
}
