//go:build cgo

package bench

/*
#cgo CFLAGS: -O2 -fopenmp
#cgo LDFLAGS: -fopenmp
float hzb_fma(int nthr, long long iters);
int hzb_has_avx512(void);
*/
import "C"

import (
	"errors"
	"time"
)

// PeakGFLOPS measures the fp32 peak of threads cores with an AVX-512 FMA loop:
// the best of a few runs of about 0.2 s each.
func PeakGFLOPS(threads int) (float64, error) {
	if C.hzb_has_avx512() == 0 {
		return 0, errors.New("bench: peak: this CPU lacks AVX-512")
	}
	const iters = 20_000_000
	best := 0.0
	C.hzb_fma(C.int(threads), 1_000_000) // wake the team, settle clocks
	for range 5 {
		t := time.Now()
		C.hzb_fma(C.int(threads), iters)
		s := time.Since(t).Seconds()
		best = max(best, float64(threads)*iters*16*16*2/s/1e9)
	}
	return best, nil
}
