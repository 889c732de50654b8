package soak

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// Class is one kind of request of the mix: Count images of Size px.
type Class struct {
	Count, Size int
	Weight      int // relative frequency in the mix
}

func (c Class) String() string { return fmt.Sprintf("%dx%d", c.Count, c.Size) }

// Mix is the requests the clients ask for, drawn by weight.
type Mix []Class

// DefaultMix: mostly single and small batches of full-size images, some
// mid-size batches, a few large batches of small images.
const DefaultMix = "1x256:4,4x256:3,16x128:2,64x64:1"

// ParseMix reads "COUNTxSIZE:WEIGHT,…" (":WEIGHT" may be left out: 1).
func ParseMix(s string) (Mix, error) {
	var m Mix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		spec, weight, hasWeight := strings.Cut(part, ":")
		c := Class{Weight: 1}
		count, size, ok := strings.Cut(spec, "x")
		var err error
		if ok {
			if c.Count, err = strconv.Atoi(count); err == nil {
				c.Size, err = strconv.Atoi(size)
			}
		}
		if !ok || err != nil {
			return nil, fmt.Errorf("mix %q: want COUNTxSIZE[:WEIGHT] such as 4x256:3", part)
		}
		if hasWeight {
			if c.Weight, err = strconv.Atoi(weight); err != nil || c.Weight < 1 {
				return nil, fmt.Errorf("mix %q: the weight must be a whole number ≥ 1", part)
			}
		}
		if c.Count < 1 || c.Count > pb.MaxGatewayCount {
			return nil, fmt.Errorf("mix %q: count must be 1 to %d", part, pb.MaxGatewayCount)
		}
		if c.Size < pb.MinImageSize || c.Size > pb.MaxImageSize {
			return nil, fmt.Errorf("mix %q: size must be %d to %d px", part, pb.MinImageSize, pb.MaxImageSize)
		}
		m = append(m, c)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("mix %q: no request classes", s)
	}
	return m, nil
}

func (m Mix) String() string {
	parts := make([]string, len(m))
	for i, c := range m {
		parts[i] = fmt.Sprintf("%s:%d", c, c.Weight)
	}
	return strings.Join(parts, ",")
}

// pick draws a class by weight.
func (m Mix) pick(r *rand.Rand) Class {
	total := 0
	for _, c := range m {
		total += c.Weight
	}
	n := r.IntN(total)
	for _, c := range m {
		if n < c.Weight {
			return c
		}
		n -= c.Weight
	}
	return m[len(m)-1]
}
