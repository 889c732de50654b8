package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hirez-ml/hirez/engine/atomicfile"
)

// LabelsFile is the name of the labels file in an emoji set's root
// (data/noto128/labels.tsv, data/fluent256/labels.tsv), written by the prepare
// step (scripts/data.sh).
const LabelsFile = "labels.tsv"

// Unlisted is the Group of an image whose emoji Unicode's emoji-test.txt does
// not list (Noto's regional-indicator letters, bare keycap bases, subdivision
// flags outside the RGI set, Emoji 15.1 sequences newer than the file); its
// Subgroup and Name are empty.
const Unlisted = "unlisted"

// labelsHeader is the first line of a labels file.
const labelsHeader = "file\tsequence\tgroup\tsubgroup\tname"

// Label is what the labels file says of one image.
type Label struct {
	// Sequence is the file name stem: the emoji's code points in Unicode's order
	// (SequenceName of its fully-qualified emoji-test.txt entry) or, when Unicode
	// does not list it, the source's own sequence.
	Sequence string
	Group    string // Unicode emoji group, "Smileys & Emotion", or Unlisted
	Subgroup string // Unicode emoji subgroup, "face-smiling"
	Name     string // CLDR short name, "grinning face"
}

// WriteLabels writes setRoot/labels.tsv: the header line
// "file<TAB>sequence<TAB>group<TAB>subgroup<TAB>name", then one line per image,
// sorted by file, where file is the image's path relative to setRoot with '/'
// separators ("train/1f600.png"). Fields may not hold tabs or line breaks.
func WriteLabels(setRoot string, labels map[string]Label) error {
	files := make([]string, 0, len(labels))
	for f := range labels {
		files = append(files, f)
	}
	slices.Sort(files)
	for _, f := range files {
		l := labels[f]
		for _, v := range []string{f, l.Sequence, l.Group, l.Subgroup, l.Name} {
			if strings.ContainsAny(v, "\t\r\n") {
				return fmt.Errorf("dataset: label field %q of %s holds a tab or line break", v, f)
			}
		}
		if f == "" || l.Sequence == "" || l.Group == "" {
			return fmt.Errorf("dataset: label of %q: file, sequence and group are required", f)
		}
	}
	return atomicfile.Write(filepath.Join(setRoot, LabelsFile), func(w *bufio.Writer) error {
		fmt.Fprintln(w, labelsHeader)
		for _, f := range files {
			l := labels[f]
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f, l.Sequence, l.Group, l.Subgroup, l.Name)
		}
		return nil
	})
}

// ReadLabels reads setRoot/labels.tsv (see WriteLabels). The map is keyed by the
// image's path relative to setRoot with '/' separators, as the file writes it:
// "train/1f600.png", "heldout/1f44d.png". A missing file, a wrong header, a line
// without five tab-separated fields, an empty file, sequence or group field, or
// a file listed twice is an error that says to run make data.
func ReadLabels(setRoot string) (map[string]Label, error) {
	path := filepath.Join(setRoot, LabelsFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dataset: no labels file %s (run make data to write it)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: labels: %w", err)
	}
	defer f.Close()
	labels, err := parseLabels(f)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w (run make data to rewrite it)", path, err)
	}
	return labels, nil
}

func parseLabels(r io.Reader) (map[string]Label, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("empty file, no header line")
	}
	if h := strings.TrimSuffix(sc.Text(), "\r"); h != labelsHeader {
		return nil, fmt.Errorf("header %q, want %q", h, labelsHeader)
	}
	labels := map[string]Label{}
	for n := 2; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return nil, fmt.Errorf("line %d: %d tab-separated fields, want 5", n, len(f))
		}
		if f[0] == "" || f[1] == "" || f[2] == "" {
			return nil, fmt.Errorf("line %d: empty file, sequence or group", n)
		}
		if _, dup := labels[f[0]]; dup {
			return nil, fmt.Errorf("line %d: %s listed twice", n, f[0])
		}
		labels[f[0]] = Label{Sequence: f[1], Group: f[2], Subgroup: f[3], Name: f[4]}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return labels, nil
}

// LabelsFor finds the labels file that covers dir, a folder a Loader reads: in
// dir itself (dir is a set root, data/noto128) or else in its parent (dir is a
// split, data/noto128/train → data/noto128/labels.tsv). It returns the labels and
// a function from a file path as the Loader lists it (dir joined with the path
// inside dir) to its label; false for a file the labels file does not list.
func LabelsFor(dir string) (map[string]Label, func(file string) (Label, bool), error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: labels for %s: %w", dir, err)
	}
	root, prefix := abs, ""
	if _, err := os.Stat(filepath.Join(abs, LabelsFile)); err != nil {
		root, prefix = filepath.Dir(abs), filepath.Base(abs)+"/"
	}
	labels, err := ReadLabels(root)
	if err != nil {
		return nil, nil, err
	}
	of := func(file string) (Label, bool) {
		rel, err := filepath.Rel(dir, file)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return Label{}, false
		}
		l, ok := labels[prefix+filepath.ToSlash(rel)]
		return l, ok
	}
	return labels, of, nil
}

// filterGroups keeps the files (as ListImages returns them for dir) whose label
// group is one of groups, and returns each kept file's index in groups.
func filterGroups(dir string, files, groups []string) (kept []string, groupOf []int, err error) {
	labels, of, err := LabelsFor(dir)
	if err != nil {
		return nil, nil, err
	}
	known := map[string]int{}
	for _, l := range labels {
		known[l.Group]++
	}
	for _, g := range groups {
		if known[g] == 0 {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, fmt.Sprintf("%q", k))
			}
			slices.Sort(names)
			return nil, nil, fmt.Errorf("dataset: unknown group %q; the labels of %s know %s", g, dir, strings.Join(names, ", "))
		}
	}
	for _, f := range files {
		if l, ok := of(f); ok {
			if g := slices.Index(groups, l.Group); g >= 0 {
				kept = append(kept, f)
				groupOf = append(groupOf, g)
			}
		}
	}
	return kept, groupOf, nil
}
