package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MetaTrainGroups is the weights-file metadata key naming the Unicode emoji
// groups a generator was trained on, joined by ", " (e.g. "Smileys &
// Emotion"); it is absent when the generator was trained on every emoji.
const MetaTrainGroups = "hirez.train.groups"

// Labels returns the labels (classes) a generator knows, from its weights
// file's metadata. This is the one place the rule lives: a model's labels are
// the emoji groups in its MetaTrainGroups entry, in that order, without
// duplicates — one label for a model trained on one group, none (nil) for one
// trained on every emoji, and for a class-conditional generator its classes in
// class order (CheckClasses), which ClassFor maps to its input.
func Labels(meta map[string]string) []string {
	var out []string
	for g := range strings.SplitSeq(meta[MetaTrainGroups], ",") {
		g = strings.TrimSpace(g)
		if g == "" || slices.Contains(out, g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// CheckLabel returns nil when label is empty (no constraint) or exactly one of
// known, the labels of the model named name; else an error that says which
// labels the model knows, or that it knows none.
func CheckLabel(name, label string, known []string) error {
	if label == "" || slices.Contains(known, label) {
		return nil
	}
	if len(known) == 0 {
		return fmt.Errorf("label %q is not known to model %s: it has no labels (it was trained on every emoji group), so leave label empty", label, name)
	}
	quoted := make([]string, len(known))
	for i, k := range known {
		quoted[i] = strconv.Quote(k)
	}
	return fmt.Errorf("label %q is not known to model %s; its labels: %s (or leave label empty)", label, name, strings.Join(quoted, ", "))
}

// CheckClasses reports a generator whose labels cannot be its classes: a
// class-conditional one (Classes > 0) needs exactly one label per class.
func CheckClasses(cfg Config, labels []string) error {
	if cfg.Classes > 0 && len(labels) != cfg.Classes {
		return fmt.Errorf("model %s: class-conditional over %d classes, but its metadata %s names %d labels %q", cfg.Preset, cfg.Classes, MetaTrainGroups, len(labels), labels)
	}
	return nil
}

// ClassFor is the class a generator with classes classes and labels labels
// draws for a request's label (already accepted by CheckLabel) and latent z,
// and the label to report with the image. An unconditional generator draws
// NoClass and reports the request's label; a class-conditional one draws the
// label's class, or for an empty label ClassOf(z), and reports that class's
// label, so every image says what it was drawn as.
func ClassFor(classes int, labels []string, label string, z []float32) (int, string) {
	if classes == 0 {
		return NoClass, label
	}
	if k := slices.Index(labels, label); label != "" && k >= 0 {
		return k, label
	}
	k := ClassOf(z, classes)
	if k >= len(labels) { // a model CheckClasses would refuse
		return k, ""
	}
	return k, labels[k]
}
