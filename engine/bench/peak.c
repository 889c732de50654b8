//go:build cgo

// An fp32 FMA loop: 16 independent AVX-512 accumulators per thread (enough to
// cover the FMA latency on two pipes), no memory traffic.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>

__attribute__((target("avx512f"))) static float fma_loop(int64_t iters) {
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

int hzb_has_avx512(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
}

// hzb_fma runs iters iterations on each of nthr threads and returns a value that
// depends on every FMA (so none is optimised away). FLOPs = nthr·iters·16·16·2.
float hzb_fma(int nthr, long long iters) {
	float sink = 0;
#pragma omp parallel num_threads(nthr) reduction(+ : sink)
	sink += fma_loop(iters);
	return sink;
}
