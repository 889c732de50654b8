//go:build cgo

package bench

/*
#cgo CFLAGS: -O2 -fopenmp
#cgo LDFLAGS: -fopenmp
float hzb_fma(int width, int nthr, long long iters);
int hzb_fma_isa(void);
int hzb_fma_flops(int width);
*/
import "C"

import (
	"errors"
	"os"
	"strings"
	"time"
)

// PeakGFLOPS measures the fp32 peak of threads cores with an FMA loop of the
// widest vectors the engine's kernels may use here (see PeakISA): the best of a
// few runs of about 0.2 s each.
func PeakGFLOPS(threads int) (float64, error) {
	width := peakWidth()
	if width == 0 {
		return 0, errors.New("bench: peak: this CPU has neither AVX-512 nor AVX2 with FMA")
	}
	iters := int64(20_000_000)
	if width == 256 {
		iters = 26_000_000 // 12 FMAs an iteration against 16: about the same time
	}
	flops := float64(C.hzb_fma_flops(C.int(width)))
	best := 0.0
	C.hzb_fma(C.int(width), C.int(threads), 1_000_000) // wake the team, settle clocks
	for range 5 {
		t := time.Now()
		C.hzb_fma(C.int(width), C.int(threads), C.longlong(iters))
		s := time.Since(t).Seconds()
		best = max(best, float64(threads)*float64(iters)*flops/s/1e9)
	}
	return best, nil
}

// PeakISA names the loop PeakGFLOPS runs: "avx512" where the CPU has AVX-512F
// and oneDNN is not capped below it, "avx2" where the CPU has only AVX2 and FMA
// or ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA caps oneDNN below AVX-512 (so the
// peak is the one the capped kernels can reach), "" where neither loop can run.
func PeakISA() string {
	switch peakWidth() {
	case 512:
		return "avx512"
	case 256:
		return "avx2"
	}
	return ""
}

func peakWidth() int {
	w := int(C.hzb_fma_isa())
	if w == 512 && cappedBelowAVX512() {
		w = 256
	}
	return w
}

// cappedBelowAVX512 reports whether oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA, read
// first, or DNNL_MAX_CPU_ISA) names an ISA below AVX-512: SSE41, AVX, AVX2,
// AVX2_VNNI and the like. Unset, ALL, DEFAULT and the AVX512_* names are not.
func cappedBelowAVX512() bool {
	v := os.Getenv("ONEDNN_MAX_CPU_ISA")
	if v == "" {
		v = os.Getenv("DNNL_MAX_CPU_ISA")
	}
	v = strings.ToUpper(strings.TrimSpace(v))
	switch {
	case v == "", v == "ALL", v == "DEFAULT", strings.HasPrefix(v, "AVX512"), strings.HasPrefix(v, "AVX10"):
		return false
	}
	return true
}
