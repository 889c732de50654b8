package dataset

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// HeldOutPercent is the share of emoji groups in the held-out split.
const HeldOutPercent = 10

// isModifier reports code points that make variants of one emoji rather than a
// different emoji: the Fitzpatrick skin tones U+1F3FB–U+1F3FF and the emoji
// presentation selector U+FE0F.
func isModifier(r rune) bool {
	return r >= 0x1F3FB && r <= 0x1F3FF || r == 0xFE0F
}

// GroupKey is the stable split key of an emoji given as its code point sequence:
// lower-case hex code points joined by '-', with skin tones and U+FE0F removed, so
// every skin-tone variant of an emoji gets the key of its base form. A sequence of
// modifiers only (a bare skin-tone swatch) keeps them. The key keeps the order it
// is given, so the prepare step passes the sequence as Unicode's emoji-test.txt
// writes it (EmojiTable.Lookup), not a font's ligature order: one emoji, one key.
func GroupKey(seq []rune) string {
	var parts []string
	for _, r := range seq {
		if !isModifier(r) {
			parts = append(parts, strconv.FormatInt(int64(r), 16))
		}
	}
	if len(parts) == 0 {
		for _, r := range seq {
			parts = append(parts, strconv.FormatInt(int64(r), 16))
		}
	}
	return strings.Join(parts, "-")
}

// SequenceName is the file name stem of an emoji: its full code point sequence as
// lower-case hex joined by '-', without zero padding ("1f44d-1f3fd", "23-fe0f-20e3").
// The prepared sets name each emoji by its fully-qualified Unicode sequence (U+FE0F
// kept), which is how Fluent names 3372 of its 3391 files.
func SequenceName(seq []rune) string {
	parts := make([]string, len(seq))
	for i, r := range seq {
		parts[i] = strconv.FormatInt(int64(r), 16)
	}
	return strings.Join(parts, "-")
}

// ParseSequenceName is the inverse of SequenceName ("1f44d-1f3fb" → U+1F44D U+1F3FB).
func ParseSequenceName(name string) ([]rune, error) {
	var seq []rune
	for _, p := range strings.Split(name, "-") {
		v, err := strconv.ParseUint(p, 16, 32)
		if err != nil || v > 0x10FFFF {
			return nil, fmt.Errorf("dataset: %q is not a code point sequence", name)
		}
		seq = append(seq, rune(v))
	}
	return seq, nil
}

// HeldOut decides the split of a group key: the first 8 bytes of SHA-256("hirez
// split v1\x00" + key), as a big-endian integer mod 100, below HeldOutPercent. The
// rule depends on nothing but the key, so it is stable across machines, package
// versions and file orders.
func HeldOut(key string) bool {
	h := sha256.Sum256([]byte("hirez split v1\x00" + key))
	return binary.BigEndian.Uint64(h[:8])%100 < HeldOutPercent
}
