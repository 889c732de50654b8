//go:build cgo

// fp32 FMA loops, no memory traffic: 16 independent AVX-512 accumulators per
// thread, or 12 AVX2 (ymm) ones where the CPU lacks AVX-512 or the run caps
// oneDNN below it (enough in either case to cover the FMA latency on two pipes;
// 12 leaves the AVX2 loop's two constants in registers). peak.go picks one.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>

__attribute__((target("avx512f"))) static float fma_loop512(int64_t iters) {
	__m512 a[16];
	const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
	for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
	for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
	}
	__m512 s = a[0];
	for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
	return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_loop256(int64_t iters) {
	__m256 a[12];
	const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
	for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
	for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
		for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
	}
	__m256 s = a[0];
	for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
	float v[8];
	_mm256_storeu_ps(v, s);
	return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

// hzb_fma_isa is 512 where the CPU has AVX-512F, 256 where it has AVX2 and
// FMA, 0 otherwise (CPUID, and the OS's saved register state, via GCC).
int hzb_fma_isa(void) {
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) return 512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 256;
	return 0;
}

// hzb_fma runs iters iterations of the width-bit loop (512 or 256) on each of
// nthr threads and returns a value that depends on every FMA (so none is
// optimised away). FLOPs = nthr·iters·hzb_fma_flops(width).
float hzb_fma(int width, int nthr, long long iters) {
	float sink = 0;
#pragma omp parallel num_threads(nthr) reduction(+ : sink)
	sink += width == 512 ? fma_loop512(iters) : fma_loop256(iters);
	return sink;
}

// hzb_fma_flops is one iteration's FLOPs on one thread: accumulators × lanes × 2.
int hzb_fma_flops(int width) { return width == 512 ? 16 * 16 * 2 : 12 * 8 * 2; }
