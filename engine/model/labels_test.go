package model

import (
	"slices"
	"strings"
	"testing"
)

func TestLabels(t *testing.T) {
	for _, tt := range []struct {
		name string
		meta map[string]string
		want []string
	}{
		{"no metadata", nil, nil},
		{"trained on every emoji", map[string]string{MetaName: "dcgan32-emoji", "hirez.train.data": "data/noto128/train"}, nil},
		{"empty entry", map[string]string{MetaTrainGroups: ""}, nil},
		{"one group", map[string]string{MetaTrainGroups: "Smileys & Emotion"}, []string{"Smileys & Emotion"}},
		{"two groups, as train-local joins them", map[string]string{MetaTrainGroups: "Smileys & Emotion, Animals & Nature"}, []string{"Smileys & Emotion", "Animals & Nature"}},
		{"spacing and duplicates", map[string]string{MetaTrainGroups: " Flags ,Objects,, Flags"}, []string{"Flags", "Objects"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Labels(tt.meta); !slices.Equal(got, tt.want) {
				t.Fatalf("Labels(%v) = %q, want %q", tt.meta, got, tt.want)
			}
		})
	}
}

func TestCheckLabel(t *testing.T) {
	smileys := []string{"Smileys & Emotion"}
	for _, tt := range []struct {
		label string
		known []string
		want  string // "" = accepted; else a part of the error
	}{
		{"", nil, ""},
		{"", smileys, ""},
		{"Smileys & Emotion", smileys, ""},
		{"Animals & Nature", smileys, `label "Animals & Nature" is not known to model g; its labels: "Smileys & Emotion"`},
		{"smileys & emotion", smileys, `its labels: "Smileys & Emotion"`}, // matched exactly
		{"Flags", []string{"Flags", "Objects"}, ""},
		{"Symbols", []string{"Flags", "Objects"}, `its labels: "Flags", "Objects"`},
		{"Smileys & Emotion", nil, `label "Smileys & Emotion" is not known to model g: it has no labels`},
	} {
		err := CheckLabel("g", tt.label, tt.known)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckLabel(%q, %q) = %v, want nil", tt.label, tt.known, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckLabel(%q, %q) = %v, want an error containing %q", tt.label, tt.known, err, tt.want)
		}
	}
}
