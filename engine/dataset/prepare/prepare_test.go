package prepare

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
)

func excerpt(t *testing.T) *dataset.EmojiTable {
	t.Helper()
	tab, err := dataset.ReadEmojiTest(filepath.Join("..", "testdata", "emoji-test-excerpt.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func runes(t *testing.T, name string) []rune {
	t.Helper()
	s, err := dataset.ParseSequenceName(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

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
	tab := excerpt(t)
	rep, err = Fluent(ctx, assets, filepath.Join(out, "fluent256"), "1.1.0", tab)
	if err != nil || len(rep.Skipped) != 1 || rep.Train+rep.HeldOut != 0 {
		t.Fatalf("fluent: %v %v", rep, err)
	}
	if l, err := dataset.ReadLabels(filepath.Join(out, "fluent256")); err != nil || len(l) != 0 {
		t.Errorf("labels of a set with no image: %v %v", l, err)
	}
	if _, err := Fluent(ctx, t.TempDir(), out, "1.1.0", tab); err == nil {
		t.Error("empty assets folder accepted")
	}
	if _, err := Fluent(ctx, assets, out, "1.1.0", nil); err == nil {
		t.Error("no emoji table accepted")
	}
}

func TestFluentSequence(t *testing.T) {
	for in, want := range map[string]string{
		"1f44d-1f3fd":                         "1f44d-1f3fd",
		"0023-fe0f-20e3":                      "23-fe0f-20e3",
		"1f3f4-e0067_e0062_e0065_e006e_e0067": "1f3f4-e0067-e0062-e0065-e006e-e0067-e007f",
	} {
		got, err := FluentSequence(in)
		if err != nil || dataset.SequenceName(got) != want {
			t.Errorf("FluentSequence(%s) = %s %v, want %s", in, dataset.SequenceName(got), err, want)
		}
	}
	for _, in := range []string{"", "thumbs-up", "1f44d-", "1f44d--1f3fd", "110000"} {
		if _, err := FluentSequence(in); err == nil {
			t.Errorf("FluentSequence(%q) accepted", in)
		}
	}
}

func TestLabelEmoji(t *testing.T) {
	tab := excerpt(t)
	rep := Report{Matches: map[dataset.Match]int{}}
	for _, tc := range []struct {
		own   string
		alts  []string
		name  string
		key   string
		group string
		label string
	}{
		// Noto's first sequence is out of Unicode's order; another is in it.
		{"2640-200d-1f647", []string{"2640-200d-1f647", "1f647-200d-2640"}, "1f647-200d-2640-fe0f", "1f647-200d-2640", "People & Body", "woman bowing"},
		// Only a reordered one: the multiset decides.
		{"2640-200d-1f647-1f3fb", []string{"2640-200d-1f647-1f3fb"}, "1f647-1f3fb-200d-2640-fe0f", "1f647-200d-2640", "People & Body", "woman bowing: light skin tone"},
		{"263a", []string{"263a"}, "263a-fe0f", "263a", "Smileys & Emotion", "smiling face"},
		// A skin tone Unicode does not list: the base's labels and key.
		{"2640-200d-1f93c-1f3fb", []string{"2640-200d-1f93c-1f3fb", "1f93c-1f3fb-200d-2640"}, "1f93c-1f3fb-200d-2640", "1f93c-200d-2640", "People & Body", "women wrestling: light skin tone"},
		// One glyph, three flags.
		{"fe4e7", []string{"fe4e7", "1f1eb-1f1f7", "1f1e8-1f1f5", "1f1f2-1f1eb"}, "1f1e8-1f1f5", "1f1e8-1f1f5", "Flags", "flag: Clipperton Island / flag: France / flag: St. Martin"},
		// Unlisted: the source's name and key.
		{"1f1e6", []string{"1f1e6"}, "1f1e6", "1f1e6", dataset.Unlisted, ""},
		{"27a1-200d-1f3c3-1f3fb", []string{"27a1-200d-1f3c3-1f3fb"}, "27a1-200d-1f3c3-1f3fb", "27a1-200d-1f3c3", dataset.Unlisted, ""},
		// Couples whose tones only a multiset gives: reported, labelled unlisted.
		{"1f468-200d-2764-200d-1f3fb-1f468-1f3fc", []string{"1f468-200d-2764-200d-1f3fb-1f468-1f3fc"}, "1f468-200d-2764-200d-1f3fb-1f468-1f3fc", "1f468-200d-2764-200d-1f468", dataset.Unlisted, ""},
	} {
		var alts [][]rune
		for _, a := range tc.alts {
			alts = append(alts, runes(t, a))
		}
		name, key, label, _ := labelEmoji(tab, &rep, tc.own, runes(t, tc.own), alts)
		if name != tc.name || key != tc.key || label.Group != tc.group || label.Name != tc.label || label.Sequence != name {
			t.Errorf("%s: %s %s %+v, want %s %s %s %q", tc.own, name, key, label, tc.name, tc.key, tc.group, tc.label)
		}
	}
	if !slices.Equal(rep.Unlisted, []string{"1f1e6", "27a1-200d-1f3c3-1f3fb", "1f468-200d-2764-200d-1f3fb-1f468-1f3fc"}) ||
		len(rep.Shared) != 1 || len(rep.Ambiguous) != 1 || !strings.Contains(rep.Ambiguous[0], "could be") {
		t.Errorf("report: unlisted %q shared %q ambiguous %q", rep.Unlisted, rep.Shared, rep.Ambiguous)
	}
	// A Fluent file name that is no sequence at all.
	name, key, label, m := labelEmoji(tab, &rep, "thumbs-up", nil, nil)
	if name != "thumbs-up" || key != "thumbs-up" || label.Group != dataset.Unlisted || m != dataset.MatchNone {
		t.Errorf("no sequence: %s %s %+v %v", name, key, label, m)
	}
}

func TestWriteSplit(t *testing.T) {
	out := t.TempDir()
	os.MkdirAll(filepath.Join(out, "train"), 0o755)
	os.WriteFile(filepath.Join(out, "train", "stale.png"), nil, 0o644)
	img := func() (*imageio.RGB, error) { return imageio.NewRGB(2, 2), nil }
	mk := func(name, own, key, group string) job {
		return job{name: name, own: own, key: key, label: dataset.Label{Sequence: name, Group: group}, match: dataset.MatchExact, load: img}
	}
	jobs := []job{
		mk("23-fe0f-20e3", "0023-fe0f-20e3", "23-20e3", "Symbols"),
		mk("23-fe0f-20e3", "23-fe0f-20e3", "23-20e3", "Symbols"), // the source's own name wins
		mk("1f600", "1f600", "1f600", "Smileys & Emotion"),
		mk("1f1e6", "1f1e6", "1f1e6", dataset.Unlisted),
	}
	rep, err := writeSplit(context.Background(), Report{Set: "emoji", Matches: map[dataset.Match]int{}}, out, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Train+rep.HeldOut != 3 || rep.Renamed != 0 || !slices.Equal(rep.Dropped, []string{"0023-fe0f-20e3 (= 23-fe0f-20e3)"}) ||
		rep.Matches[dataset.MatchExact] != 3 || len(rep.PerGroup) != 3 {
		t.Errorf("report %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(out, "train", "stale.png")); err == nil {
		t.Error("a file of an older run survived")
	}
	labels, err := dataset.ReadLabels(out)
	if err != nil || len(labels) != 3 {
		t.Fatalf("labels %v %v", labels, err)
	}
	for file, l := range labels {
		f, err := os.Open(filepath.Join(out, file))
		if err != nil {
			t.Fatalf("%s listed but not written: %v", file, err)
		}
		text, err := imageio.ReadText(f)
		f.Close()
		split := strings.Split(file, "/")[0]
		key := dataset.GroupKey(runes(t, l.Sequence))
		if err != nil || !slices.Contains(text, imageio.Text{Key: "hirez-split-key", Value: key}) || (split == "heldout") != dataset.HeldOut(key) {
			t.Errorf("%s: tEXt %v %v, want split key %s on its side", file, text, err, key)
		}
	}
	if !strings.Contains(rep.Details(), "1 duplicates left out") || !strings.Contains(rep.Details(), "Smileys & Emotion") {
		t.Errorf("details:\n%s", rep.Details())
	}
}
