// Package cbdt reads colour bitmap glyphs out of an OpenType font with CBDT/CBLC
// tables (Noto Color Emoji) and recovers which Unicode sequence each glyph draws,
// from the cmap (single code points) and the GSUB ligatures (sequences: ZWJ
// families, flags, skin-tone variants). It parses only what that needs.
package cbdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Glyph is one bitmap glyph.
type Glyph struct {
	ID    uint16
	PNG   []byte // the embedded PNG, as stored (aliases the font data)
	Runes []rune // the code point sequence drawn, nil when unknown
	// Alts are every sequence the font draws this glyph for, Runes first: each
	// code point the cmap maps to it, then each GSUB ligature's components in
	// the order the font lists them. Noto lists many ZWJ sequences twice, once
	// in Unicode's order and once in another (U+2640 U+200D U+1F647 besides
	// U+1F647 U+200D U+2640), and Runes is whichever came first.
	Alts [][]rune
}

// Font is a parsed font file.
type Font struct {
	data   []byte
	tables map[string][]byte
}

var errShort = errors.New("cbdt: truncated table")

// reader reads big-endian values with bounds checks: a corrupt font gives errors.
type reader []byte

func (r reader) u16(off int) (uint16, error) {
	if off < 0 || off+2 > len(r) {
		return 0, errShort
	}
	return binary.BigEndian.Uint16(r[off:]), nil
}

func (r reader) u32(off int) (uint32, error) {
	if off < 0 || off+4 > len(r) {
		return 0, errShort
	}
	return binary.BigEndian.Uint32(r[off:]), nil
}

func (r reader) slice(off, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+n > len(r) {
		return nil, errShort
	}
	return r[off : off+n], nil
}

// Parse reads the table directory of a TrueType/OpenType font.
func Parse(data []byte) (*Font, error) {
	r := reader(data)
	n, err := r.u16(4)
	if err != nil {
		return nil, fmt.Errorf("cbdt: not a font: %w", err)
	}
	f := &Font{data: data, tables: map[string][]byte{}}
	for i := 0; i < int(n); i++ {
		rec, err := r.slice(12+16*i, 16)
		if err != nil {
			return nil, fmt.Errorf("cbdt: table directory: %w", err)
		}
		off, ln := binary.BigEndian.Uint32(rec[8:]), binary.BigEndian.Uint32(rec[12:])
		t, err := r.slice(int(off), int(ln))
		if err != nil {
			return nil, fmt.Errorf("cbdt: table %q: %w", rec[:4], err)
		}
		f.tables[string(rec[:4])] = t
	}
	return f, nil
}

// Glyphs returns every PNG bitmap glyph of the first (largest-listed) strike,
// sorted by glyph id, with Runes and Alts filled in where the cmap or GSUB say.
func (f *Font) Glyphs() ([]Glyph, error) {
	cblc, cbdt := reader(f.tables["CBLC"]), reader(f.tables["CBDT"])
	if cblc == nil || cbdt == nil {
		return nil, errors.New("cbdt: font has no CBLC/CBDT tables")
	}
	nSizes, err := cblc.u32(4)
	if err != nil || nSizes == 0 {
		return nil, errors.New("cbdt: CBLC has no strikes")
	}
	// BitmapSize record 0 (48 bytes at offset 8)
	arrOff, _ := cblc.u32(8)
	nSub, err := cblc.u32(16)
	if err != nil {
		return nil, err
	}
	var out []Glyph
	for i := 0; i < int(nSub); i++ {
		e := int(arrOff) + 8*i
		first, err1 := cblc.u16(e)
		last, err2 := cblc.u16(e + 2)
		add, err3 := cblc.u32(e + 4)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		sub := int(arrOff) + int(add)
		indexFormat, _ := cblc.u16(sub)
		imageFormat, _ := cblc.u16(sub + 2)
		dataOff, err := cblc.u32(sub + 4)
		if err != nil {
			return nil, err
		}
		// (glyph id, start, end) of each image in CBDT
		type loc struct {
			id         uint16
			start, end int
		}
		var locs []loc
		switch indexFormat {
		case 1, 3: // offsets (u32 or u16) per glyph, last+2 of them
			size := 4
			if indexFormat == 3 {
				size = 2
			}
			off := func(k int) (int, error) {
				if size == 4 {
					v, err := cblc.u32(sub + 8 + 4*k)
					return int(v), err
				}
				v, err := cblc.u16(sub + 8 + 2*k)
				return int(v), err
			}
			for g := int(first); g <= int(last); g++ {
				a, err1 := off(g - int(first))
				b, err2 := off(g - int(first) + 1)
				if err := errors.Join(err1, err2); err != nil {
					return nil, err
				}
				if b > a { // equal offsets: glyph has no bitmap
					locs = append(locs, loc{uint16(g), int(dataOff) + a, int(dataOff) + b})
				}
			}
		case 4: // sparse (glyph id, offset) pairs
			n, err := cblc.u32(sub + 8)
			if err != nil {
				return nil, err
			}
			for k := 0; k < int(n); k++ {
				id, _ := cblc.u16(sub + 12 + 4*k)
				a, _ := cblc.u16(sub + 12 + 4*k + 2)
				b, err := cblc.u16(sub + 12 + 4*(k+1) + 2)
				if err != nil {
					return nil, err
				}
				locs = append(locs, loc{id, int(dataOff) + int(a), int(dataOff) + int(b)})
			}
		default:
			return nil, fmt.Errorf("cbdt: index subtable format %d not supported", indexFormat)
		}
		for _, l := range locs {
			img, err := cbdt.slice(l.start, l.end-l.start)
			if err != nil {
				return nil, fmt.Errorf("cbdt: glyph %d: %w", l.id, err)
			}
			var hdr int // metrics before the u32 length
			switch imageFormat {
			case 17:
				hdr = 5 // smallGlyphMetrics
			case 18:
				hdr = 8 // bigGlyphMetrics
			case 19:
				hdr = 0
			default:
				return nil, fmt.Errorf("cbdt: image format %d not supported", imageFormat)
			}
			n, err := reader(img).u32(hdr)
			if err != nil {
				return nil, fmt.Errorf("cbdt: glyph %d: %w", l.id, err)
			}
			png, err := reader(img).slice(hdr+4, int(n))
			if err != nil {
				return nil, fmt.Errorf("cbdt: glyph %d: %w", l.id, err)
			}
			out = append(out, Glyph{ID: l.id, PNG: png})
		}
	}
	seqs, alts, err := f.sequences()
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Runes = seqs[out[i].ID]
		out[i].Alts = alts[out[i].ID]
	}
	slices.SortFunc(out, func(a, b Glyph) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

// Sequences maps glyph ids to the code point sequence that produces them: the cmap
// for single code points, then GSUB ligatures (type 4, also inside type 7
// extensions) whose components all have known sequences. Ligatures built from
// other ligatures are resolved by repeating until nothing changes.
func (f *Font) Sequences() (map[uint16][]rune, error) {
	seq, _, err := f.sequences()
	return seq, err
}

// sequences returns Sequences and, per glyph, every sequence it is drawn for
// (see Glyph.Alts); a ligature's components contribute their first sequence.
func (f *Font) sequences() (map[uint16][]rune, map[uint16][][]rune, error) {
	cmap, err := f.cmap()
	if err != nil {
		return nil, nil, err
	}
	seq := map[uint16][]rune{}
	for r, g := range cmap {
		// a glyph reachable from several code points keeps the smallest
		if old, ok := seq[g]; !ok || r < old[0] {
			seq[g] = []rune{r}
		}
	}
	ligs, err := f.ligatures()
	if err != nil {
		return nil, nil, err
	}
	for changed := true; changed; {
		changed = false
		for _, l := range ligs {
			if _, done := seq[l.glyph]; done {
				continue
			}
			var rs []rune
			ok := true
			for _, c := range l.components {
				s, known := seq[c]
				if !known {
					ok = false
					break
				}
				rs = append(rs, s...)
			}
			if ok {
				seq[l.glyph] = rs
				changed = true
			}
		}
	}
	alts := map[uint16][][]rune{}
	add := func(g uint16, rs []rune) {
		for _, a := range alts[g] {
			if slices.Equal(a, rs) {
				return
			}
		}
		alts[g] = append(alts[g], rs)
	}
	for g, rs := range seq {
		add(g, rs) // the first sequence first
	}
	var cps []rune
	for r := range cmap {
		cps = append(cps, r)
	}
	slices.Sort(cps)
	for _, r := range cps {
		add(cmap[r], []rune{r})
	}
	for _, l := range ligs {
		var rs []rune
		for _, c := range l.components {
			s, known := seq[c]
			if !known {
				rs = nil
				break
			}
			rs = append(rs, s...)
		}
		if rs != nil {
			add(l.glyph, rs)
		}
	}
	return seq, alts, nil
}

// cmap returns code point → glyph id from the best Unicode subtable (format 12,
// else format 4).
func (f *Font) cmap() (map[rune]uint16, error) {
	t := reader(f.tables["cmap"])
	n, err := t.u16(2)
	if err != nil {
		return nil, errors.New("cbdt: no cmap table")
	}
	var fmt12, fmt4 = -1, -1
	for i := 0; i < int(n); i++ {
		off, err := t.u32(4 + 8*i + 4)
		if err != nil {
			return nil, err
		}
		switch format, _ := t.u16(int(off)); format {
		case 12:
			fmt12 = int(off)
		case 4:
			fmt4 = int(off)
		}
	}
	m := map[rune]uint16{}
	switch {
	case fmt12 >= 0:
		groups, err := t.u32(fmt12 + 12)
		if err != nil {
			return nil, err
		}
		for i := 0; i < int(groups); i++ {
			g := fmt12 + 16 + 12*i
			start, err1 := t.u32(g)
			end, err2 := t.u32(g + 4)
			gid, err3 := t.u32(g + 8)
			if err := errors.Join(err1, err2, err3); err != nil {
				return nil, err
			}
			if end < start || end-start > 0x10ffff {
				return nil, errors.New("cbdt: bad cmap group")
			}
			for c := start; c <= end; c++ {
				m[rune(c)] = uint16(gid + c - start)
			}
		}
	case fmt4 >= 0:
		segX2, err := t.u16(fmt4 + 6)
		if err != nil {
			return nil, err
		}
		ends, starts := fmt4+14, fmt4+16+int(segX2)
		deltas, ranges := starts+int(segX2), starts+2*int(segX2)
		for s := 0; s < int(segX2)/2; s++ {
			end, _ := t.u16(ends + 2*s)
			start, _ := t.u16(starts + 2*s)
			delta, _ := t.u16(deltas + 2*s)
			ro, err := t.u16(ranges + 2*s)
			if err != nil {
				return nil, err
			}
			for c := int(start); c <= int(end) && c != 0xffff; c++ {
				var g uint16
				if ro == 0 {
					g = uint16(c) + delta
				} else {
					v, err := t.u16(ranges + 2*s + int(ro) + 2*(c-int(start)))
					if err != nil {
						return nil, err
					}
					if v != 0 {
						g = v + delta
					}
				}
				if g != 0 {
					m[rune(c)] = g
				}
			}
		}
	default:
		return nil, errors.New("cbdt: cmap has no format 4 or 12 subtable")
	}
	return m, nil
}

type ligature struct {
	glyph      uint16
	components []uint16
}

// ligatures lists every ligature substitution of the GSUB table.
func (f *Font) ligatures() ([]ligature, error) {
	t := reader(f.tables["GSUB"])
	if t == nil {
		return nil, nil // a font without sequences
	}
	ll, err := t.u16(8)
	if err != nil {
		return nil, err
	}
	nLookups, err := t.u16(int(ll))
	if err != nil {
		return nil, err
	}
	var out []ligature
	for i := 0; i < int(nLookups); i++ {
		lo, _ := t.u16(int(ll) + 2 + 2*i)
		lk := int(ll) + int(lo)
		typ, _ := t.u16(lk)
		nSub, err := t.u16(lk + 4)
		if err != nil {
			return nil, err
		}
		for s := 0; s < int(nSub); s++ {
			so, err := t.u16(lk + 6 + 2*s)
			if err != nil {
				return nil, err
			}
			st, styp := lk+int(so), typ
			if typ == 7 { // extension: the real subtable is further away
				styp, _ = t.u16(st + 2)
				eo, err := t.u32(st + 4)
				if err != nil {
					return nil, err
				}
				st += int(eo)
			}
			if styp != 4 {
				continue
			}
			ls, err := ligatureSubst(t, st)
			if err != nil {
				return nil, fmt.Errorf("cbdt: GSUB lookup %d: %w", i, err)
			}
			out = append(out, ls...)
		}
	}
	return out, nil
}

func ligatureSubst(t reader, st int) ([]ligature, error) {
	covOff, _ := t.u16(st + 2)
	nSets, err := t.u16(st + 4)
	if err != nil {
		return nil, err
	}
	cov, err := coverage(t, st+int(covOff))
	if err != nil {
		return nil, err
	}
	if len(cov) < int(nSets) {
		return nil, errors.New("coverage shorter than ligature sets")
	}
	var out []ligature
	for k := 0; k < int(nSets); k++ {
		so, _ := t.u16(st + 6 + 2*k)
		set := st + int(so)
		nLig, err := t.u16(set)
		if err != nil {
			return nil, err
		}
		for j := 0; j < int(nLig); j++ {
			lo, _ := t.u16(set + 2 + 2*j)
			lig := set + int(lo)
			g, _ := t.u16(lig)
			nComp, err := t.u16(lig + 2)
			if err != nil {
				return nil, err
			}
			comps := []uint16{cov[k]}
			for c := 1; c < int(nComp); c++ {
				v, err := t.u16(lig + 4 + 2*(c-1))
				if err != nil {
					return nil, err
				}
				comps = append(comps, v)
			}
			out = append(out, ligature{glyph: g, components: comps})
		}
	}
	return out, nil
}

// coverage returns the glyphs of a Coverage table in coverage-index order.
func coverage(t reader, off int) ([]uint16, error) {
	format, _ := t.u16(off)
	n, err := t.u16(off + 2)
	if err != nil {
		return nil, err
	}
	var out []uint16
	switch format {
	case 1:
		for i := 0; i < int(n); i++ {
			g, err := t.u16(off + 4 + 2*i)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
	case 2:
		for i := 0; i < int(n); i++ {
			start, _ := t.u16(off + 4 + 6*i)
			end, err := t.u16(off + 4 + 6*i + 2)
			if err != nil {
				return nil, err
			}
			for g := int(start); g <= int(end); g++ {
				out = append(out, uint16(g))
			}
		}
	default:
		return nil, fmt.Errorf("coverage format %d", format)
	}
	return out, nil
}
