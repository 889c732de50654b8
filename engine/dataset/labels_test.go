package dataset

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLabelsRoundTrip(t *testing.T) {
	root := t.TempDir()
	in := map[string]Label{
		"train/1f600.png":   {Sequence: "1f600", Group: "Smileys & Emotion", Subgroup: "face-smiling", Name: "grinning face"},
		"heldout/1f1e6.png": {Sequence: "1f1e6", Group: Unlisted},
	}
	if err := WriteLabels(root, in); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(root, LabelsFile))
	want := "file\tsequence\tgroup\tsubgroup\tname\n" +
		"heldout/1f1e6.png\t1f1e6\tunlisted\t\t\n" +
		"train/1f600.png\t1f600\tSmileys & Emotion\tface-smiling\tgrinning face\n"
	if string(raw) != want {
		t.Errorf("labels.tsv:\n%s\nwant:\n%s", raw, want)
	}
	got, err := ReadLabels(root)
	if err != nil || len(got) != 2 || got["train/1f600.png"] != in["train/1f600.png"] || got["heldout/1f1e6.png"] != in["heldout/1f1e6.png"] {
		t.Errorf("ReadLabels: %v %v", got, err)
	}
	if err := WriteLabels(root, map[string]Label{"a.png": {Sequence: "1", Group: "a\tb"}}); err == nil {
		t.Error("a tab in a field accepted")
	}
	if err := WriteLabels(root, map[string]Label{"a.png": {Sequence: "1"}}); err == nil {
		t.Error("an empty group accepted")
	}
}

func TestReadLabelsErrors(t *testing.T) {
	if _, err := ReadLabels(t.TempDir()); err == nil || !strings.Contains(err.Error(), "run make data") {
		t.Errorf("missing file: %v", err)
	}
	const head = "file\tsequence\tgroup\tsubgroup\tname\n"
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "no header"},
		{"header", "file\tgroup\n", "header"},
		{"columns", head + "train/a.png\ta\tG\n", "3 tab-separated fields"},
		{"no group", head + "train/a.png\ta\t\t\t\n", "empty file, sequence or group"},
		{"twice", head + "train/a.png\ta\tG\t\t\ntrain/a.png\ta\tG\t\t\n", "listed twice"},
	} {
		root := t.TempDir()
		os.WriteFile(filepath.Join(root, LabelsFile), []byte(tc.text), 0o644)
		_, err := ReadLabels(root)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "run make data") {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// labelledSet writes root/{train,heldout} with images aa.png… and a labels file
// giving train/aa, train/ab and heldout/aa group "A", train/ac group "B";
// train/ad is not listed.
func labelledSet(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeImages(t, filepath.Join(root, "train"), 4, 8, 8)
	writeImages(t, filepath.Join(root, "heldout"), 1, 8, 8)
	err := WriteLabels(root, map[string]Label{
		"train/aa.png":   {Sequence: "1", Group: "A"},
		"train/ab.png":   {Sequence: "2", Group: "A"},
		"train/ac.png":   {Sequence: "3", Group: "B"},
		"heldout/aa.png": {Sequence: "4", Group: "A"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLabelsFor(t *testing.T) {
	root := labelledSet(t)
	for _, tc := range []struct{ dir, file string }{
		{filepath.Join(root, "train"), filepath.Join(root, "train", "ab.png")}, // a split: labels in the parent
		{root, filepath.Join(root, "train", "ab.png")},                         // the set root
	} {
		_, of, err := LabelsFor(tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		if l, ok := of(tc.file); !ok || l.Sequence != "2" {
			t.Errorf("%s: %s → %+v %v", tc.dir, tc.file, l, ok)
		}
		if _, ok := of(filepath.Join(root, "train", "ad.png")); ok {
			t.Errorf("%s: an unlisted file has a label", tc.dir)
		}
		if _, ok := of(filepath.Join(t.TempDir(), "ab.png")); ok {
			t.Errorf("%s: a file outside has a label", tc.dir)
		}
	}
	if _, _, err := LabelsFor(t.TempDir()); err == nil || !strings.Contains(err.Error(), "run make data") {
		t.Errorf("no labels file: %v", err)
	}
}

func TestLoaderGroups(t *testing.T) {
	root := labelledSet(t)
	train := filepath.Join(root, "train")
	l, err := NewLoader(Options{Dir: train, Size: 8, BatchSize: 1, Groups: []string{"A"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(train, "aa.png"), filepath.Join(train, "ab.png")}
	if got := l.Files(); strings.Join(got, ",") != strings.Join(want, ",") || l.Stats().Files != 2 {
		t.Errorf("group A: %v, want %v", got, want)
	}
	if n := len(collect(t, l)); n != 2 {
		t.Errorf("group A: %d batches, want 2", n)
	}
	l, err = NewLoader(Options{Dir: root, Size: 8, BatchSize: 1, Groups: []string{"A", "B"}})
	if err != nil || len(l.Files()) != 4 { // both splits of the set root
		t.Errorf("groups A, B from the root: %v %v", l.Files(), err)
	}
	// Without Groups the labels are not read: every image, and no labels file needed.
	os.Rename(filepath.Join(root, LabelsFile), filepath.Join(root, "moved.tsv"))
	if l, err := NewLoader(Options{Dir: train, Size: 8, BatchSize: 1}); err != nil || len(l.Files()) != 4 {
		t.Errorf("no filter: %v %v", l, err)
	}
	if _, err := NewLoader(Options{Dir: train, Size: 8, BatchSize: 1, Groups: []string{"A"}}); err == nil || !strings.Contains(err.Error(), "run make data") {
		t.Errorf("filter without a labels file: %v", err)
	}
	os.Rename(filepath.Join(root, "moved.tsv"), filepath.Join(root, LabelsFile))
	_, err = NewLoader(Options{Dir: train, Size: 8, BatchSize: 1, Groups: []string{"Smileys & Emotion"}})
	if err == nil || !strings.Contains(err.Error(), `unknown group "Smileys & Emotion"`) || !strings.Contains(err.Error(), `"A", "B"`) {
		t.Errorf("unknown group: %v", err)
	}
	_, err = NewLoader(Options{Dir: filepath.Join(root, "heldout"), Size: 8, BatchSize: 1, Groups: []string{"B"}})
	if !errors.Is(err, ErrNoImages) {
		t.Errorf("a known group with no image in this split: %v", err)
	}
}

// TestLoaderBalance: group A has two training images and B one, so a balanced
// epoch is four samples, two of each group: each A image once, B's twice; a
// state restored mid-epoch yields the same rest; bad options are refused.
func TestLoaderBalance(t *testing.T) {
	root := labelledSet(t)
	train := filepath.Join(root, "train")
	opt := Options{Dir: train, Size: 8, BatchSize: 1, Groups: []string{"A", "B"}, Balance: true, Shuffle: true, Seed: 3}
	l, err := NewLoader(opt)
	if err != nil {
		t.Fatal(err)
	}
	var epochs [2][]string
	for e := range epochs {
		for _, b := range collect(t, l) {
			epochs[e] = append(epochs[e], filepath.Base(b.Files[0]))
		}
		got := slices.Sorted(slices.Values(epochs[e]))
		if want := []string{"aa.png", "ab.png", "ac.png", "ac.png"}; !slices.Equal(got, want) {
			t.Errorf("epoch %d: %v, want each of A's images once and B's twice", e, got)
		}
	}
	if slices.Equal(epochs[0], epochs[1]) {
		t.Logf("both epochs drew the same order %v (possible, unlikely)", epochs[0])
	}

	l2, _ := NewLoader(opt)
	first, _ := l2.Next(context.Background())
	st := l2.State()
	l3, _ := NewLoader(opt)
	if err := l3.Restore(st); err != nil {
		t.Fatal(err)
	}
	rest := []string{filepath.Base(first.Files[0])}
	for _, b := range collect(t, l3) {
		rest = append(rest, filepath.Base(b.Files[0]))
	}
	if !slices.Equal(rest, epochs[0]) {
		t.Errorf("resumed after one batch: %v, want %v", rest, epochs[0])
	}

	for _, bad := range []Options{
		{Dir: train, Size: 8, BatchSize: 1, Groups: []string{"A"}, Balance: true, Shuffle: true},
		{Dir: train, Size: 8, BatchSize: 1, Groups: []string{"A", "B"}, Balance: true},
	} {
		if _, err := NewLoader(bad); err == nil || !strings.Contains(err.Error(), "Balance needs Shuffle and two or more Groups") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	_, err = NewLoader(Options{Dir: filepath.Join(root, "heldout"), Size: 8, BatchSize: 1, Groups: []string{"A", "B"}, Balance: true, Shuffle: true})
	if !errors.Is(err, ErrNoImages) || !strings.Contains(err.Error(), `group "B"`) {
		t.Errorf("a group with no image to balance: %v", err)
	}
}

// TestPreparedLabels checks the labels files `make data` wrote, when it has run:
// every listed file exists and every image is listed.
func TestPreparedLabels(t *testing.T) {
	for _, set := range []string{"noto128", "fluent256"} {
		root := filepath.Join("..", "..", "data", set)
		labels, err := ReadLabels(root)
		if err != nil {
			t.Logf("%s: %v", set, err)
			continue
		}
		files, _ := filepath.Glob(filepath.Join(root, "*", "*.png"))
		if len(files) != len(labels) {
			t.Errorf("%s: %d images, %d labels", set, len(files), len(labels))
		}
		groups := map[string]int{}
		for _, f := range files {
			rel, _ := filepath.Rel(root, f)
			l, ok := labels[filepath.ToSlash(rel)]
			if !ok {
				t.Errorf("%s: %s has no label", set, rel)
			}
			groups[l.Group]++
		}
		t.Logf("%s: %d labels, groups %v", set, len(labels), groups)
	}
}
