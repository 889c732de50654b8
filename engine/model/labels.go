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
// trained on every emoji.
//
// No generator takes a label as input yet: the label of a single-group model
// names what it was trained on, and a request's label is only checked against
// it (CheckLabel). A class-conditional generator would map these labels to its
// input.
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
