package cbdt

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

type buf struct{ bytes.Buffer }

func (b *buf) u16(v ...int) *buf {
	for _, x := range v {
		binary.Write(b, binary.BigEndian, uint16(x))
	}
	return b
}

func (b *buf) u32(v ...int) *buf {
	for _, x := range v {
		binary.Write(b, binary.BigEndian, uint32(x))
	}
	return b
}

// testFont builds a font with glyphs 1 (U+1F44D, also U+1F44E), 2 (U+1F3FB),
// 3 (U+200D), 4 (U+1F3FF, no bitmap) and the ligatures 5 = 1+2 (GSUB type 4), 6 =
// 5+3+1 (inside a type 7 extension, built on a ligature) and 5 = 2+1 again (a
// second order, as Noto lists many sequences), with bitmaps for 1, 2, 5, 6.
func testFont(t *testing.T) []byte {
	t.Helper()
	// cmap: one format 12 subtable
	var cmap buf
	cmap.u16(0, 1).u16(3, 10).u32(12)
	cmap.u16(12, 0).u32(16+5*12, 0, 5)
	cmap.u32(0x200D, 0x200D, 3)
	cmap.u32(0x1F3FB, 0x1F3FB, 2)
	cmap.u32(0x1F3FF, 0x1F3FF, 4)
	cmap.u32(0x1F44D, 0x1F44D, 1)
	cmap.u32(0x1F44E, 0x1F44E, 1)

	// GSUB: header, empty script/feature lists, lookup list with 2 lookups
	lig := func(first, glyph int, comps ...int) []byte {
		// LigatureSubst format 1 with one covered glyph, one set, one ligature
		var s buf
		s.u16(1, 8, 1, 14)                       // format, coverage @8, 1 set @14
		s.u16(1, 1, first)                       // coverage format 1 (offset 8..13)
		s.u16(1, 4)                              // ligature set: 1 ligature @4
		s.u16(glyph, len(comps)+1).u16(comps...) // ligature
		return s.Bytes()
	}
	sub1 := lig(1, 5, 2)
	sub2 := lig(5, 6, 3, 1)
	sub3 := lig(2, 5, 1)
	var gsub buf
	gsub.u16(1, 0, 10, 10, 12) // version, script list, feature list, lookup list @12
	gsub.u16(0)                // empty script/feature list (shared)
	// lookup list @12: 3 lookups
	l1 := 8
	l2 := l1 + 8 + len(sub1)
	l3 := l2 + 16 + len(sub2)
	gsub.u16(3, l1, l2, l3)
	gsub.u16(4, 0, 1, 8).Write(sub1)  // lookup 1: type 4
	gsub.u16(7, 0, 1, 8)              // lookup 2: extension
	gsub.u16(1, 4).u32(8).Write(sub2) // ext subtable → type 4 at +8
	gsub.u16(4, 0, 1, 8).Write(sub3)  // lookup 3: type 4

	// CBDT: version then format-17 records
	var cbdt buf
	cbdt.u32(0x00030000)
	pngs := map[int][]byte{1: []byte("png-one"), 2: []byte("png-two"), 5: []byte("png-five"), 6: []byte("png-six")}
	offs := []int{}
	for g := 1; g <= 6; g++ {
		offs = append(offs, cbdt.Len()-4)
		if p, ok := pngs[g]; ok {
			cbdt.Write([]byte{128, 136, 0, 0, 136}) // smallGlyphMetrics
			cbdt.u32(len(p))
			cbdt.Write(p)
		}
	}
	offs = append(offs, cbdt.Len()-4)
	// CBLC: header, one BitmapSize, index subtable array with one format-1 subtable
	var cblc buf
	cblc.u16(3, 0).u32(1)
	arr := 8 + 48
	cblc.u32(arr, 0, 1, 0)
	cblc.Write(make([]byte, 24))
	cblc.u16(1, 6).Write([]byte{109, 109, 32, 0})
	cblc.u16(1, 6).u32(8)  // array: glyphs 1–6, subtable at +8
	cblc.u16(1, 17).u32(4) // header: index format 1, image format 17, data at CBDT+4
	for _, o := range offs {
		cblc.u32(o)
	}

	tables := []struct {
		tag  string
		data []byte
	}{{"CBDT", cbdt.Bytes()}, {"CBLC", cblc.Bytes()}, {"GSUB", gsub.Bytes()}, {"cmap", cmap.Bytes()}}
	var f buf
	f.u32(0x00010000).u16(len(tables), 0, 0, 0)
	off := 12 + 16*len(tables)
	for _, tb := range tables {
		f.Write([]byte(tb.tag))
		f.u32(0, off, len(tb.data))
		off += len(tb.data)
	}
	for _, tb := range tables {
		f.Write(tb.data)
	}
	return f.Bytes()
}

func TestGlyphs(t *testing.T) {
	font, err := Parse(testFont(t))
	if err != nil {
		t.Fatal(err)
	}
	gs, err := font.Glyphs()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id    uint16
		png   string
		runes []rune
		alts  [][]rune
	}{
		{1, "png-one", []rune{0x1F44D}, [][]rune{{0x1F44D}, {0x1F44E}}},
		{2, "png-two", []rune{0x1F3FB}, [][]rune{{0x1F3FB}}},
		{5, "png-five", []rune{0x1F44D, 0x1F3FB}, [][]rune{{0x1F44D, 0x1F3FB}, {0x1F3FB, 0x1F44D}}},
		{6, "png-six", []rune{0x1F44D, 0x1F3FB, 0x200D, 0x1F44D}, [][]rune{{0x1F44D, 0x1F3FB, 0x200D, 0x1F44D}}},
	}
	if len(gs) != len(want) {
		t.Fatalf("%d glyphs, want %d", len(gs), len(want))
	}
	for i, w := range want {
		g := gs[i]
		if g.ID != w.id || string(g.PNG) != w.png || !slices.Equal(g.Runes, w.runes) {
			t.Errorf("glyph %d: id %d png %q runes %U", i, g.ID, g.PNG, g.Runes)
		}
		if !slices.EqualFunc(g.Alts, w.alts, slices.Equal) {
			t.Errorf("glyph %d: alts %U, want %U", g.ID, g.Alts, w.alts)
		}
	}
}

func TestCorruptFontsFail(t *testing.T) {
	data := testFont(t)
	for _, n := range []int{0, 3, 11, 40, len(data) / 2, len(data) - 1} {
		f, err := Parse(data[:n])
		if err != nil {
			continue
		}
		if _, err := f.Glyphs(); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
}

// TestNotoFont reads the real font when `make data` has fetched it.
func TestNotoFont(t *testing.T) {
	path := filepath.Join("..", "..", "..", "data", "raw", "noto", "usr", "share", "fonts", "truetype", "noto", "NotoColorEmoji.ttf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skip("Noto font not fetched (run make data)")
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := f.Glyphs()
	if err != nil {
		t.Fatal(err)
	}
	unknown, several := 0, 0
	for _, g := range gs {
		if g.Runes == nil {
			unknown++
		}
		if len(g.Alts) > 1 {
			several++
		}
		if g.Runes != nil && !slices.Equal(g.Alts[0], g.Runes) {
			t.Errorf("glyph %d: Alts[0] %U is not Runes %U", g.ID, g.Alts[0], g.Runes)
		}
	}
	t.Logf("%d glyphs, %d without a code point sequence, %d with several", len(gs), unknown, several)
	if len(gs) < 3000 {
		t.Errorf("only %d glyphs", len(gs))
	}
}
