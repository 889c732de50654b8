package safetensors

import (
	"fmt"
	"math"
)

// DType is a tensor's storage type in a file, spelled as the format spells it.
type DType string

// The storage types this package reads and writes. Float types are held as float32
// in memory and converted on load and save; I64 exists for PyTorch's BatchNorm
// num_batches_tracked counter and is held as int64.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
)

// knownDTypes are the types the format defines. A file with one of them that we do
// not support gets a clearer error than one with a misspelt type.
var knownDTypes = map[string]bool{
	"BOOL": true, "U8": true, "I8": true, "U16": true, "I16": true, "U32": true,
	"I32": true, "U64": true, "I64": true, "F16": true, "BF16": true, "F32": true,
	"F64": true, "F8_E4M3": true, "F8_E5M2": true,
}

// Size is the number of bytes one element takes, or 0 for an unsupported type.
func (d DType) Size() int {
	switch d {
	case F16, BF16:
		return 2
	case F32:
		return 4
	case F64, I64:
		return 8
	}
	return 0
}

// IsFloat reports whether values of this type are held as float32.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

func parseDType(s string) (DType, error) {
	d := DType(s)
	if d.Size() > 0 {
		return d, nil
	}
	if knownDTypes[s] {
		return "", fmt.Errorf("dtype %s is not supported (want F32, F16, BF16, F64 or I64)", s)
	}
	return "", fmt.Errorf("unknown dtype %q", s)
}

// Float32ToF16 converts to IEEE 754 binary16, rounding to nearest with ties to
// even; values beyond ±65504 (after rounding) become ±Inf and NaN stays NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13) // quiet NaN, payload kept where it fits
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal in half precision: value = m·2⁻²⁴ with m = full·2^(e−14).
		shift := uint(14 - e)
		if shift > 24 {
			return sign // below half the smallest subnormal: rounds to zero
		}
		full := mant | 0x800000
		m := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++ // may carry into the smallest normal, which encodes correctly
		}
		return sign | uint16(m)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry out of the mantissa bumps the exponent, up to Inf
	}
	return sign | uint16(h)
}

// F16ToFloat32 converts an IEEE 754 binary16 value exactly.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: m·2⁻²⁴ is exact in float32.
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// Float32ToBF16 converts to bfloat16 (the top half of a float32), rounding to
// nearest with ties to even; NaN stays NaN.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040 // quiet NaN even if the payload sat in the low half
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16ToFloat32 converts a bfloat16 value exactly.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
