// Package prepare converts the fetched source packages (scripts/data.sh) into the
// folders the loaders read: Noto Color Emoji glyphs at 128², Fluent 3D emoji at 256²,
// each split into train/ and heldout/ by dataset.HeldOut on the emoji's group key,
// with a labels.tsv (dataset.WriteLabels) giving each image's Unicode emoji group,
// subgroup and name from Unicode's emoji-test.txt; and the scikit-image test photos
// as PNG. Every written PNG carries its source and licence as tEXt chunks.
//
// An emoji image is named by its code point sequence as Unicode writes it (the
// fully-qualified emoji-test.txt entry, U+FE0F included, dataset.SequenceName),
// whatever order or spelling its source uses, and its split key is the
// dataset.GroupKey of that sequence, so one emoji has one name and one side in
// both sets (see labelEmoji for the exceptions).
package prepare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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

	// Emoji sets only:
	Renamed   int                   // images written under another name than the source's (Noto: its first sequence; Fluent: its file name)
	Matches   map[dataset.Match]int // how the images were matched to emoji-test.txt (MatchNone: unlisted)
	Unlisted  []string              // names of the images emoji-test.txt does not list (label group dataset.Unlisted)
	Shared    []string              // one image drawn for several listed emoji: "name = a / b / c"
	Ambiguous []string              // sequences that do not decide between listed emoji (labelled unlisted)
	Dropped   []string              // "source (= name)": a second image of an emoji already written, left out
	PerGroup  map[string][2]int     // label group → {train, held out} images
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

// Details are the emoji sets' labelling counts and per-group split, one
// indented line each ("" for the photos).
func (r Report) Details() string {
	if r.Matches == nil {
		return ""
	}
	var s string
	var m []string
	for k := dataset.MatchExact; k <= dataset.MatchToneVariant; k++ {
		if r.Matches[k] > 0 {
			m = append(m, fmt.Sprintf("%d %s", r.Matches[k], k))
		}
	}
	s += fmt.Sprintf("  emoji-test.txt: %s, %d unlisted; %d names differ from the source's", strings.Join(m, ", "), r.Matches[dataset.MatchNone], r.Renamed)
	if len(r.Unlisted) > 0 {
		s += "\n  unlisted: " + abbreviate(r.Unlisted, 16)
	}
	if len(r.Shared) > 0 {
		s += "\n  shared by several emoji: " + strings.Join(r.Shared, "; ")
	}
	if len(r.Ambiguous) > 0 {
		s += "\n  ambiguous: " + strings.Join(r.Ambiguous, "; ")
	}
	if len(r.Dropped) > 0 {
		s += fmt.Sprintf("\n  %d duplicates left out: %s", len(r.Dropped), strings.Join(r.Dropped, ", "))
	}
	groups := make([]string, 0, len(r.PerGroup))
	for g := range r.PerGroup {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		c := r.PerGroup[g]
		s += fmt.Sprintf("\n  %-20s %5d train %4d held out", g, c[0], c[1])
	}
	return s + "\n"
}

func abbreviate(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, " ")
	}
	return strings.Join(list[:n], " ") + fmt.Sprintf(" … (%d in all)", len(list))
}

// job is one image to write.
type job struct {
	name  string // file stem
	own   string // the source's name for it
	key   string // split key
	label dataset.Label
	match dataset.Match // how label was found (emoji sets)
	load  func() (*imageio.RGB, error)
	text  []imageio.Text
}

// resetSplitDirs empties out/train and out/heldout and removes out/labels.tsv so
// files from an older run (or an older split rule) cannot linger.
func resetSplitDirs(out string) error {
	if err := os.Remove(filepath.Join(out, dataset.LabelsFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
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

// dedupe keeps one job per name: the one the source already calls so, else the
// first; the others are reported in rep.Dropped. (Fluent 1.1.0 has 16 emoji twice,
// as 0023-fe0f-20e3 and 23-fe0f-20e3, 26a7 and 26a7-fe0f…, the same art.)
func dedupe(rep *Report, jobs []job) []job {
	keep := map[string]int{}
	for i, j := range jobs {
		if k, ok := keep[j.name]; !ok || j.own == j.name && jobs[k].own != j.name {
			keep[j.name] = i
		}
	}
	var out []job
	for i, j := range jobs {
		if keep[j.name] == i {
			out = append(out, j)
		} else {
			rep.Dropped = append(rep.Dropped, j.own+" (= "+j.name+")")
		}
	}
	return out
}

// writeSplit writes the jobs into out/{train,heldout} in parallel, one per name
// (dedupe), then out/labels.tsv for the images written.
func writeSplit(ctx context.Context, rep Report, out string, jobs []job) (Report, error) {
	if err := resetSplitDirs(out); err != nil {
		return Report{}, fmt.Errorf("prepare %s: %w", rep.Set, err)
	}
	jobs = dedupe(&rep, jobs)
	rep.PerGroup = map[string][2]int{}
	groups := map[string]bool{}
	labels := map[string]dataset.Label{}
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
		held := dataset.HeldOut(j.key)
		groups[j.key] = held
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
				text := append(slices.Clone(j.text), imageio.Text{Key: "hirez-split-key", Value: j.key})
				err = imageio.WritePNGFile(filepath.Join(out, split, j.name+".png"), img, text...)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && errors.Is(err, imageio.ErrFormat):
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %v", j.name, err))
				return
			case err != nil:
				errs = append(errs, err)
				return
			}
			labels[split+"/"+j.name+".png"] = j.label
			if j.name != j.own {
				rep.Renamed++
			}
			if rep.Matches != nil {
				rep.Matches[j.match]++
			}
			c := rep.PerGroup[j.label.Group]
			if held {
				rep.HeldOut++
				c[1]++
			} else {
				rep.Train++
				c[0]++
			}
			rep.PerGroup[j.label.Group] = c
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return rep, fmt.Errorf("prepare %s: %w", rep.Set, err)
	}
	if err := dataset.WriteLabels(out, labels); err != nil {
		return rep, fmt.Errorf("prepare %s: %w", rep.Set, err)
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

// labelEmoji names, keys and labels an emoji image drawn for the sequences alts
// (own, the source's own sequence, among them; nil when the source has none,
// then ownName is the name) by Unicode's table (EmojiTable.LookupAll):
//
//   - one listed emoji: named by its fully-qualified sequence, keyed and
//     labelled by it;
//   - a skin-tone variant Unicode does not list (Noto's people wrestling with
//     skin tones): labelled by the base emoji (name + ": light skin tone"),
//     keyed by it (so it lands beside the base), named by the first of alts that
//     is in Unicode's order once the tones are removed, else by own;
//   - one image for several listed emoji (Noto draws one flag for Norway,
//     Bouvet Island and Svalbard & Jan Mayen): named and keyed by the first in
//     emoji-test.txt order, labelled by their common group and subgroup and
//     their names joined by " / ";
//   - unlisted, or sequences that do not decide (reported in rep.Ambiguous):
//     named and keyed by own as before (GroupKey), group dataset.Unlisted.
func labelEmoji(tab *dataset.EmojiTable, rep *Report, ownName string, own []rune, alts [][]rune) (name, key string, label dataset.Label, m dataset.Match) {
	unlisted := func() (string, string, dataset.Label, dataset.Match) {
		rep.Unlisted = append(rep.Unlisted, ownName)
		key := ownName
		if own != nil {
			key = dataset.GroupKey(own)
		}
		return ownName, key, dataset.Label{Sequence: ownName, Group: dataset.Unlisted}, dataset.MatchNone
	}
	found, m := tab.LookupAll(alts)
	switch {
	case len(found) == 0:
		return unlisted()
	case len(found) > 1 && (m == dataset.MatchMultiset || m == dataset.MatchToneVariant):
		rep.Ambiguous = append(rep.Ambiguous, dataset.AmbiguousError(own, found).Error())
		return unlisted()
	}
	e := found[0]
	if len(found) > 1 {
		var names, seqs []string
		for _, f := range found {
			if f.Group != e.Group || f.Subgroup != e.Subgroup {
				rep.Ambiguous = append(rep.Ambiguous, dataset.AmbiguousError(own, found).Error()+" (in different groups)")
				return unlisted()
			}
			names = append(names, f.Name)
			seqs = append(seqs, dataset.SequenceName(f.Seq))
		}
		e.Name = strings.Join(names, " / ")
		rep.Shared = append(rep.Shared, dataset.SequenceName(e.Seq)+" = "+strings.Join(seqs, " / "))
	}
	name = dataset.SequenceName(e.Seq)
	if m == dataset.MatchToneVariant {
		name = ownName
		for _, a := range alts {
			bare := slices.DeleteFunc(slices.Clone(a), func(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF })
			if _, bm, err := tab.Lookup(bare); err == nil && (bm == dataset.MatchExact || bm == dataset.MatchNoFE0F) {
				name = dataset.SequenceName(a)
				break
			}
		}
		e.Name += ": " + strings.Join(tab.SkinToneNames(own), ", ")
	}
	return name, dataset.GroupKey(e.Seq), dataset.Label{Sequence: name, Group: e.Group, Subgroup: e.Subgroup, Name: e.Name}, m
}

// Noto extracts every bitmap glyph of the Noto Color Emoji font into
// out/{train,heldout}/<sequence>.png at 128×128, labelled by tab (see
// labelEmoji; a glyph's sequences are cbdt.Glyph.Alts). The strike is 136×128
// with the art in the centre 128 columns, so 4 columns are cut from each side
// (lossless). Of two glyphs with one name only one is written (see dedupe).
func Noto(ctx context.Context, fontPath, out, version string, tab *dataset.EmojiTable) (Report, error) {
	rep := Report{Set: "noto128", Matches: map[dataset.Match]int{}}
	if tab == nil {
		return rep, errors.New("prepare noto: no emoji-test.txt table")
	}
	data, err := os.ReadFile(fontPath)
	if err != nil {
		return rep, fmt.Errorf("prepare noto: %w", err)
	}
	font, err := cbdt.Parse(data)
	if err != nil {
		return rep, fmt.Errorf("prepare noto: %w", err)
	}
	glyphs, err := font.Glyphs()
	if err != nil {
		return rep, fmt.Errorf("prepare noto: %w", err)
	}
	var jobs []job
	for _, g := range glyphs {
		own := fmt.Sprintf("gid%05d", g.ID)
		if g.Runes != nil {
			own = dataset.SequenceName(g.Runes)
		}
		name, key, label, m := labelEmoji(tab, &rep, own, g.Runes, g.Alts)
		jobs = append(jobs, job{
			name: name, own: own, key: key, label: label, match: m,
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
	return writeSplit(ctx, rep, out, jobs)
}

// FluentSequence reads a Fluent file name stem: code points in hex joined by '-'
// ("1f44d-1f3fd", "0023-fe0f-20e3"), where a tag sequence's tags are joined by '_'
// and its terminating U+E007F CANCEL TAG is left out
// ("1f3f4-e0067_e0062_e0065_e006e_e0067" = the flag of England, which Unicode
// writes 1f3f4-e0067-e0062-e0065-e006e-e0067-e007f): the cancel tag is put back.
func FluentSequence(stem string) ([]rune, error) {
	var seq []rune
	for _, p := range strings.FieldsFunc(stem, func(r rune) bool { return r == '-' || r == '_' }) {
		v, err := strconv.ParseUint(p, 16, 32)
		if err != nil || v > 0x10FFFF {
			return nil, fmt.Errorf("prepare: %q is not a code point sequence", stem)
		}
		seq = append(seq, rune(v))
	}
	if len(seq) == 0 || strings.HasPrefix(stem, "-") || strings.HasSuffix(stem, "-") || strings.Contains(stem, "--") {
		return nil, fmt.Errorf("prepare: %q is not a code point sequence", stem)
	}
	if last := seq[len(seq)-1]; last >= 0xE0020 && last <= 0xE007E {
		seq = append(seq, 0xE007F)
	}
	return seq, nil
}

// Fluent converts the Fluent 3D emoji WebP files of assetsDir (named by code point
// sequence, e.g. 1f44d-1f3fd.webp, read by FluentSequence) into
// out/{train,heldout}/<sequence>.png, centre-cropped to 256×256 (a few sources are
// 256×264) and labelled by tab (see labelEmoji). Of two files with one name only
// one is written (see dedupe).
func Fluent(ctx context.Context, assetsDir, out, version string, tab *dataset.EmojiTable) (Report, error) {
	rep := Report{Set: "fluent256", Matches: map[dataset.Match]int{}}
	if tab == nil {
		return rep, errors.New("prepare fluent: no emoji-test.txt table")
	}
	files, err := filepath.Glob(filepath.Join(assetsDir, "*.webp"))
	if err != nil || len(files) == 0 {
		return rep, fmt.Errorf("prepare fluent: no .webp files in %s (%v)", assetsDir, err)
	}
	slices.Sort(files)
	var jobs []job
	for _, f := range files {
		stem := strings.TrimSuffix(filepath.Base(f), ".webp")
		seq, err := FluentSequence(stem)
		var alts [][]rune
		if err == nil {
			alts = [][]rune{seq}
		} else {
			seq = nil // unlisted, keyed by its file name
		}
		name, key, label, m := labelEmoji(tab, &rep, stem, seq, alts)
		jobs = append(jobs, job{
			name: name, own: stem, key: key, label: label, match: m,
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
	return writeSplit(ctx, rep, out, jobs)
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
