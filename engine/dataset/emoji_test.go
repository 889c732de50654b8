package dataset

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func excerpt(t *testing.T) *EmojiTable {
	t.Helper()
	tab, err := ReadEmojiTest(filepath.Join("testdata", "emoji-test-excerpt.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func seq(t *testing.T, name string) []rune {
	t.Helper()
	s, err := ParseSequenceName(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseEmojiTest(t *testing.T) {
	tab := excerpt(t)
	if tab.Version != "15.0" || len(tab.Entries) != 31 {
		t.Fatalf("version %q, %d entries", tab.Version, len(tab.Entries))
	}
	want := []string{"Smileys & Emotion", "People & Body", "Component", "Symbols", "Flags"}
	if g := tab.Groups(); !slices.Equal(g, want) {
		t.Errorf("groups %q, want %q", g, want)
	}
	e := tab.Entries[0]
	if SequenceName(e.Seq) != "1f600" || e.Status != FullyQualified || e.Version != "E1.0" ||
		e.Name != "grinning face" || e.Group != "Smileys & Emotion" || e.Subgroup != "face-smiling" {
		t.Errorf("first entry %+v", e)
	}
	last := tab.Entries[len(tab.Entries)-1]
	if last.Name != "flag: England" || last.Subgroup != "subdivision-flag" || len(last.Seq) != 7 {
		t.Errorf("last entry %+v", last)
	}
}

func TestParseEmojiTestErrors(t *testing.T) {
	const head = "# group: G\n# subgroup: s\n"
	for _, tc := range []struct{ name, text, want string }{
		{"no group", "1F600 ; fully-qualified # 😀 E1.0 grinning face\n", "before any group"},
		{"status", head + "1F600 ; qualified # 😀 E1.0 grinning face\n", "unknown status"},
		{"hex", head + "1F60G ; fully-qualified # 😀 E1.0 grinning face\n", "not a code point"},
		{"no semicolon", head + "1F600 fully-qualified # 😀 E1.0 grinning face\n", "no ';'"},
		{"no comment", head + "1F600 ; fully-qualified\n", "no '# emoji"},
		{"no version", head + "1F600 ; fully-qualified # 😀 grinning face\n", "not 'emoji E<version> name'"},
		{"spelling", head + "1F600 ; fully-qualified # 😃 E1.0 grinning face\n", "do not spell"},
		{"twice", head + "1F600 ; fully-qualified # 😀 E1.0 a\n1F600 ; fully-qualified # 😀 E1.0 b\n", "listed twice"},
		{"empty", "# group: G\n", "no entries"},
	} {
		_, err := ParseEmojiTest(strings.NewReader(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ReadEmojiTest(filepath.Join(t.TempDir(), "missing.txt")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestLookup(t *testing.T) {
	tab := excerpt(t)
	for _, tc := range []struct {
		in, want string
		m        Match
	}{
		{"1f600", "1f600", MatchExact},
		{"263a", "263a-fe0f", MatchExact},                              // unqualified → fully-qualified
		{"1f441-200d-1f5e8", "1f441-fe0f-200d-1f5e8-fe0f", MatchExact}, // unqualified
		{"1f647-1f3fb-200d-2640", "1f647-1f3fb-200d-2640-fe0f", MatchExact},
		{"23-20e3", "23-fe0f-20e3", MatchExact},
		{"1f600-fe0f", "1f600", MatchNoFE0F},
		{"1f93c-fe0f-200d-2640", "1f93c-200d-2640-fe0f", MatchNoFE0F},
		{"2640-200d-1f647", "1f647-200d-2640-fe0f", MatchMultiset}, // Noto's order
		{"2640-fe0f-200d-1f647-1f3fb", "1f647-1f3fb-200d-2640-fe0f", MatchMultiset},
		{"1f3fb", "1f3fb", MatchExact}, // a component is its own canonical entry
		{"1f93c-1f3fb", "1f93c", MatchToneVariant},
		{"2640-200d-1f93c-1f3fc", "1f93c-200d-2640-fe0f", MatchToneVariant},
	} {
		e, m, err := tab.Lookup(seq(t, tc.in))
		if err != nil || SequenceName(e.Seq) != tc.want || m != tc.m {
			t.Errorf("Lookup(%s) = %s %v %v, want %s %v", tc.in, SequenceName(e.Seq), m, err, tc.want, tc.m)
		}
	}
	if e, _, _ := tab.Lookup(seq(t, "263a")); e.Status != FullyQualified || e.Subgroup != "face-affection" {
		t.Errorf("263a: %+v", e)
	}
	if got := tab.SkinToneNames(seq(t, "1f9d1-1f3fc-200d-1f91d-200d-1f9d1-1f3fb")); !slices.Equal(got, []string{"medium-light skin tone", "light skin tone"}) {
		t.Errorf("skin tone names %q", got)
	}
	for _, in := range []string{"1f1e6", "1f600-1f603", "20e3", "1f3fb-1f3fc"} {
		if _, m, err := tab.Lookup(seq(t, in)); !errors.Is(err, ErrNotListed) || m != MatchNone {
			t.Errorf("Lookup(%s): %v %v, want ErrNotListed", in, m, err)
		}
	}
	// Two emoji share the multiset: reported, not guessed.
	_, _, err := tab.Lookup(seq(t, "1f9d1-200d-1f91d-200d-1f3fb-1f9d1-1f3fc"))
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "light skin tone, medium-light skin tone") ||
		!strings.Contains(err.Error(), "medium-light skin tone, light skin tone") {
		t.Errorf("ambiguous multiset: %v", err)
	}
}

func TestLookupAll(t *testing.T) {
	tab := excerpt(t)
	names := func(es []Emoji) (s []string) {
		for _, e := range es {
			s = append(s, SequenceName(e.Seq))
		}
		return s
	}
	// Noto draws this couple for two orders; the one in Unicode's order (but
	// for U+FE0F) decides over the multiset both orders share with the swapped tones.
	got, m := tab.LookupAll([][]rune{
		seq(t, "1f468-200d-2764-200d-1f3fb-1f468-1f3fc"),
		seq(t, "1f468-1f3fb-200d-2764-200d-1f468-1f3fc"),
	})
	if !slices.Equal(names(got), []string{"1f468-1f3fb-200d-2764-fe0f-200d-1f468-1f3fc"}) || m != MatchNoFE0F {
		t.Errorf("couple: %v %v", names(got), m)
	}
	// Only the scrambled order: both emoji are candidates.
	got, m = tab.LookupAll([][]rune{seq(t, "1f468-200d-2764-200d-1f3fb-1f468-1f3fc")})
	if len(got) != 2 || m != MatchMultiset {
		t.Errorf("scrambled couple: %v %v", names(got), m)
	}
	// One glyph for several flags: all of them, in file order.
	got, m = tab.LookupAll([][]rune{seq(t, "1f1f2-1f1eb"), seq(t, "1f1eb-1f1f7"), seq(t, "1f1e8-1f1f5"), seq(t, "fe4e7")})
	if !slices.Equal(names(got), []string{"1f1e8-1f1f5", "1f1eb-1f1f7", "1f1f2-1f1eb"}) || m != MatchExact {
		t.Errorf("shared flag: %v %v", names(got), m)
	}
	if got, m := tab.LookupAll(nil); got != nil || m != MatchNone {
		t.Errorf("no sequences: %v %v", got, m)
	}
}

// TestEmojiTestFile reads the real file when `make data` has fetched it.
func TestEmojiTestFile(t *testing.T) {
	path := filepath.Join("..", "..", "data", "raw", "unicode", "usr", "share", "unicode", "emoji", "emoji-test.txt")
	tab, err := ReadEmojiTest(path)
	if err != nil {
		t.Skipf("emoji-test.txt not fetched (run make data): %v", err)
	}
	count := map[string]int{}
	for _, e := range tab.Entries {
		count[e.Status]++
	}
	t.Logf("emoji-test.txt %s: %d entries, %v, groups %q", tab.Version, len(tab.Entries), count, tab.Groups())
	if count[FullyQualified] < 3000 || len(tab.Groups()) < 9 {
		t.Errorf("only %v in %d groups", count, len(tab.Groups()))
	}
	// Every minimally- or unqualified entry resolves to a fully-qualified one
	// of the same name, and no two emoji differ only by U+FE0F.
	for _, e := range tab.Entries {
		got, m, err := tab.Lookup(e.Seq)
		if err != nil || m != MatchExact || got.Name != e.Name || got.Status != FullyQualified && got.Status != Component {
			t.Errorf("%s (%s): %+v %v %v", SequenceName(e.Seq), e.Status, got, m, err)
		}
		if _, _, err := tab.Lookup(withoutFE0F(e.Seq)); err != nil {
			t.Errorf("%s without U+FE0F: %v", SequenceName(e.Seq), err)
		}
	}
}
