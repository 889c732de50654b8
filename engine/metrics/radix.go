package metrics

import "math"

// sortFloat32 sorts v ascending (NaN-free input) with an LSD radix sort on the
// order-preserving integer image of the floats: three 11-bit passes, O(n). SWD sorts
// 2·DirRepeats·DirsPerRepeat projections of every descriptor per level, and a
// comparison sort was most of its time. keys and tmp are scratch space of at least
// len(v) each.
func sortFloat32(v []float32, keys, tmp []uint32) {
	n := len(v)
	keys = keys[:n]
	for i, f := range v {
		b := math.Float32bits(f)
		// negative: flip all bits (reverses their order); positive: flip the sign bit
		keys[i] = b ^ (uint32(int32(b)>>31) | 0x8000_0000)
	}
	src, dst := keys, tmp[:n]
	var count [2048]int
	for shift := uint(0); shift < 33; shift += 11 {
		clear(count[:])
		for _, k := range src {
			count[(k>>shift)&2047]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range src {
			b := (k >> shift) & 2047
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	for i, k := range src {
		// undo the transform: keys with the top bit set were positive
		v[i] = math.Float32frombits(k ^ (uint32(int32(^k)>>31) | 0x8000_0000))
	}
}
