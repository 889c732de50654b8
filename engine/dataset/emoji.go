package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Emoji is one entry of Unicode's emoji-test.txt
// (https://www.unicode.org/reports/tr51/#emoji_data), e.g.
//
//	1F600 ; fully-qualified # 😀 E1.0 grinning face
//
// under the closest "# group:" and "# subgroup:" lines above it.
type Emoji struct {
	Seq      []rune // the code points as the file lists them (Unicode's order)
	Status   string // "fully-qualified", "minimally-qualified", "unqualified" or "component"
	Version  string // the emoji version that introduced it, "E1.0"
	Name     string // the CLDR short name, "grinning face"
	Group    string // "Smileys & Emotion"
	Subgroup string // "face-smiling"
}

// Status values of emoji-test.txt.
const (
	FullyQualified     = "fully-qualified"
	MinimallyQualified = "minimally-qualified"
	Unqualified        = "unqualified"
	Component          = "component"
)

// EmojiTable is a parsed emoji-test.txt with its lookups (see Lookup).
type EmojiTable struct {
	Version string  // "15.0", from the "# Version:" line ("" when absent)
	Entries []Emoji // in file order (CLDR order)

	exact map[string]int   // SequenceName(Seq) → entry
	canon []int            // entry → its canonical entry
	bare  map[string][]int // SequenceName without U+FE0F → canonical entries
	multi map[string][]int // sorted code points without U+FE0F → canonical entries
}

// Match says how Lookup matched a sequence.
type Match int

const (
	MatchNone     Match = iota
	MatchExact          // the sequence is listed as it is
	MatchNoFE0F         // equal once U+FE0F is removed from both
	MatchMultiset       // the same code points in another order (Noto's ligatures)
	// MatchToneVariant: not listed, but without its skin tones it is (by one of
	// the three rules above) a listed emoji, and Lookup returns that one: Noto
	// draws skin tones Unicode does not list (people wrestling: light skin tone).
	MatchToneVariant
)

func (m Match) String() string {
	switch m {
	case MatchExact:
		return "exact"
	case MatchNoFE0F:
		return "without U+FE0F"
	case MatchMultiset:
		return "reordered"
	case MatchToneVariant:
		return "skin-tone variant"
	}
	return "none"
}

var (
	// ErrNotListed: a sequence that emoji-test.txt does not have in any order.
	ErrNotListed = errors.New("dataset: not in emoji-test.txt")
	// ErrAmbiguous: a sequence that only matches by its multiset of code points,
	// and more than one listed emoji has that multiset (e.g. a couple with two
	// skin tones, whose two orders are two emoji).
	ErrAmbiguous = errors.New("dataset: ambiguous in emoji-test.txt")
)

// ReadEmojiTest parses the emoji-test.txt at path (Debian: unicode-data's
// /usr/share/unicode/emoji/emoji-test.txt).
func ReadEmojiTest(path string) (*EmojiTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: emoji-test.txt: %w", err)
	}
	defer f.Close()
	t, err := ParseEmojiTest(f)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return t, nil
}

// ParseEmojiTest parses emoji-test.txt. Every entry line must have the form
// "CODE POINTS ; STATUS # EMOJI E<version> NAME" and come after a group and a
// subgroup line; a sequence listed twice is an error.
func ParseEmojiTest(r io.Reader) (*EmojiTable, error) {
	t := &EmojiTable{exact: map[string]int{}, bare: map[string][]int{}, multi: map[string][]int{}}
	var group, subgroup string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if c, ok := strings.CutPrefix(line, "#"); ok {
			c = strings.TrimSpace(c)
			switch {
			case strings.HasPrefix(c, "group:"):
				group = strings.TrimSpace(strings.TrimPrefix(c, "group:"))
				subgroup = ""
			case strings.HasPrefix(c, "subgroup:"):
				subgroup = strings.TrimSpace(strings.TrimPrefix(c, "subgroup:"))
			case strings.HasPrefix(c, "Version:") && t.Version == "":
				t.Version = strings.TrimSpace(strings.TrimPrefix(c, "Version:"))
			}
			continue
		}
		e, err := parseEmojiLine(line)
		if err != nil {
			return nil, fmt.Errorf("dataset: emoji-test.txt line %d: %w", n, err)
		}
		if group == "" || subgroup == "" {
			return nil, fmt.Errorf("dataset: emoji-test.txt line %d: entry before any group/subgroup line", n)
		}
		e.Group, e.Subgroup = group, subgroup
		name := SequenceName(e.Seq)
		if _, dup := t.exact[name]; dup {
			return nil, fmt.Errorf("dataset: emoji-test.txt line %d: %s listed twice", n, name)
		}
		t.exact[name] = len(t.Entries)
		t.Entries = append(t.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: emoji-test.txt: %w", err)
	}
	if len(t.Entries) == 0 {
		return nil, errors.New("dataset: emoji-test.txt has no entries")
	}
	// An emoji's canonical entry is its fully-qualified form (or the component
	// itself); the minimally- and unqualified forms differ from it only by U+FE0F.
	fq := map[string]int{}
	for i, e := range t.Entries {
		if e.Status == FullyQualified || e.Status == Component {
			k := SequenceName(withoutFE0F(e.Seq))
			t.bare[k] = append(t.bare[k], i)
			if _, ok := fq[k]; !ok {
				fq[k] = i
			}
			m := multisetKey(e.Seq)
			t.multi[m] = append(t.multi[m], i)
		}
	}
	t.canon = make([]int, len(t.Entries))
	for i, e := range t.Entries {
		t.canon[i] = i
		if e.Status != FullyQualified && e.Status != Component {
			if j, ok := fq[SequenceName(withoutFE0F(e.Seq))]; ok {
				t.canon[i] = j
			}
		}
	}
	return t, nil
}

// parseEmojiLine reads "1F600 ; fully-qualified # 😀 E1.0 grinning face".
func parseEmojiLine(line string) (Emoji, error) {
	data, comment, ok := strings.Cut(line, "#")
	if !ok {
		return Emoji{}, fmt.Errorf("%q has no '# emoji E<version> name' comment", line)
	}
	cps, status, ok := strings.Cut(data, ";")
	if !ok {
		return Emoji{}, fmt.Errorf("%q has no ';'", line)
	}
	var e Emoji
	for _, f := range strings.Fields(cps) {
		v, err := strconv.ParseUint(f, 16, 32)
		if err != nil || v > 0x10FFFF {
			return Emoji{}, fmt.Errorf("%q: %q is not a code point", line, f)
		}
		e.Seq = append(e.Seq, rune(v))
	}
	if len(e.Seq) == 0 {
		return Emoji{}, fmt.Errorf("%q has no code points", line)
	}
	e.Status = strings.TrimSpace(status)
	switch e.Status {
	case FullyQualified, MinimallyQualified, Unqualified, Component:
	default:
		return Emoji{}, fmt.Errorf("%q: unknown status %q", line, e.Status)
	}
	// comment: " 😀 E1.0 grinning face"; the emoji itself has no spaces.
	f := strings.Fields(comment)
	if len(f) < 3 || !strings.HasPrefix(f[1], "E") {
		return Emoji{}, fmt.Errorf("%q: comment is not 'emoji E<version> name'", line)
	}
	if string(e.Seq) != f[0] {
		return Emoji{}, fmt.Errorf("%q: the code points do not spell %q", line, f[0])
	}
	e.Version = f[1]
	e.Name = strings.Join(f[2:], " ")
	return e, nil
}

func withoutFE0F(seq []rune) []rune {
	return slices.DeleteFunc(slices.Clone(seq), func(r rune) bool { return r == 0xFE0F })
}

func multisetKey(seq []rune) string {
	s := withoutFE0F(seq)
	slices.Sort(s)
	return SequenceName(s)
}

// Lookup finds the emoji that seq draws and returns its canonical entry: the
// fully-qualified form (FE0F as Unicode writes it) or, for the skin-tone and hair
// swatches, the component. The rules, tried in order until one matches:
//
//  1. MatchExact: seq is listed as it is (a minimally- or unqualified entry
//     resolves to its fully-qualified form);
//  2. MatchNoFE0F: seq equals a listed emoji once U+FE0F is removed from both;
//  3. MatchMultiset: seq has the code points of a listed emoji (U+FE0F aside) in
//     another order, for fonts whose ligatures list them so;
//  4. MatchToneVariant: seq with its skin tones U+1F3FB–U+1F3FF removed matches
//     by rule 1–3; the base emoji is returned.
//
// A rule that finds several emoji (a multiset shared by two emoji, such as a
// couple with two skin tones whose two orders are two emoji) gives ErrAmbiguous
// with the candidates in the message, never a guess; no match is ErrNotListed.
func (t *EmojiTable) Lookup(seq []rune) (Emoji, Match, error) {
	found, m := t.LookupAll([][]rune{seq})
	switch {
	case len(found) == 0:
		return Emoji{}, MatchNone, fmt.Errorf("%w: %s", ErrNotListed, SequenceName(seq))
	case len(found) > 1:
		return Emoji{}, MatchNone, AmbiguousError(seq, found)
	}
	return found[0], m, nil
}

// LookupAll is Lookup for a glyph drawn for several sequences (cbdt.Glyph.Alts),
// returning every candidate: each rule is tried on all the sequences before the
// next rule, so a sequence in Unicode's order decides over another order of the
// same glyph. It returns the canonical entries found by the first rule that finds
// any, in file order, and that rule; none and MatchNone when nothing matches.
// Several entries by MatchExact or MatchNoFE0F mean a glyph the font draws for
// several emoji (Noto has one flag for France, Clipperton Island and St. Martin);
// by MatchMultiset or MatchToneVariant they mean the sequences do not decide.
func (t *EmojiTable) LookupAll(seqs [][]rune) ([]Emoji, Match) {
	for m := MatchExact; m <= MatchToneVariant; m++ {
		var found []int
		for _, seq := range seqs {
			for _, i := range t.match(seq, m) {
				if !slices.Contains(found, i) {
					found = append(found, i)
				}
			}
		}
		if len(found) > 0 {
			slices.Sort(found)
			out := make([]Emoji, len(found))
			for k, i := range found {
				out[k] = t.Entries[i]
			}
			return out, m
		}
	}
	return nil, MatchNone
}

// AmbiguousError is the ErrAmbiguous error for seq and its candidates.
func AmbiguousError(seq []rune, cand []Emoji) error {
	var names []string
	for _, e := range cand {
		names = append(names, SequenceName(e.Seq)+" ("+e.Name+")")
	}
	return fmt.Errorf("%w: %s could be %s", ErrAmbiguous, SequenceName(seq), strings.Join(names, " or "))
}

// match returns the canonical entries that seq matches by rule m.
func (t *EmojiTable) match(seq []rune, m Match) []int {
	switch m {
	case MatchExact:
		if i, ok := t.exact[SequenceName(seq)]; ok {
			return []int{t.canon[i]}
		}
	case MatchNoFE0F:
		return t.bare[SequenceName(withoutFE0F(seq))]
	case MatchMultiset:
		return t.multi[multisetKey(seq)]
	case MatchToneVariant:
		base := slices.DeleteFunc(slices.Clone(seq), isSkinTone)
		if len(base) == len(seq) || len(base) == 0 {
			return nil
		}
		for r := MatchExact; r <= MatchMultiset; r++ {
			if c := t.match(base, r); len(c) > 0 {
				return c
			}
		}
	}
	return nil
}

func isSkinTone(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF }

// SkinToneNames returns the names of seq's skin tones in order, from the
// component entries ("light skin tone"), for naming a MatchToneVariant.
func (t *EmojiTable) SkinToneNames(seq []rune) []string {
	var out []string
	for _, r := range seq {
		if isSkinTone(r) {
			if i, ok := t.exact[SequenceName([]rune{r})]; ok {
				out = append(out, t.Entries[i].Name)
			}
		}
	}
	return out
}

// Groups returns the group names in file order.
func (t *EmojiTable) Groups() []string {
	var g []string
	for _, e := range t.Entries {
		if len(g) == 0 || g[len(g)-1] != e.Group {
			g = append(g, e.Group)
		}
	}
	return g
}
