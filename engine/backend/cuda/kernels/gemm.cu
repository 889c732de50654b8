// Tiled SGEMM: C = alpha·op(A)·op(B) + beta·C for row-major matrices, op(A)
// M×K, op(B) K×N (backend.Gemm). A block of 16×16 threads computes a 64×64
// tile of C, each thread a 4×4 grid of outputs strided by 16 so that a warp's
// loads from shared memory and stores to C are contiguous. K is walked in
// slices of 16 staged through shared memory; both transposes are handled by
// the staging loads (reading A and B along their contiguous dimension), so the
// inner loop is the same for all four cases. Edges are guarded, not padded.
//
// A first, plain version: no register double-buffering, no vector loads, no
// tensor cores. It is here to be correct on every shape; speed comes later.
#include "common.cuh"

#define TM 64
#define TN 64
#define TK 16

extern "C" __global__ void __launch_bounds__(256)
hz_sgemm(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
         long long m_, long long n_, long long k_, long long transA, long long transB,
         float alpha, float beta) {
  const int M = (int)m_, N = (int)n_, K = (int)k_;
  __shared__ float As[TK][TM + 1];
  __shared__ float Bs[TK][TN + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int row0 = blockIdx.y * TM, col0 = blockIdx.x * TN;
  float acc[4][4] = {};
  for (int p0 = 0; p0 < K; p0 += TK) {
    // Stage op(A)[row0.., p0..] and op(B)[p0.., col0..]: 1024 values each, 4 per thread.
#pragma unroll
    for (int r = 0; r < 4; r++) {
      int t = tid + 256 * r;
      int i, p;
      if (transA) { i = t % TM; p = t / TM; } else { p = t % TK; i = t / TK; }
      int gi = row0 + i, gp = p0 + p;
      float v = 0.0f;
      if (gi < M && gp < K) v = transA ? A[(size_t)gp * M + gi] : A[(size_t)gi * K + gp];
      As[p][i] = v;
      int j;
      if (transB) { p = t % TK; j = t / TK; } else { j = t % TN; p = t / TN; }
      int gj = col0 + j;
      gp = p0 + p;
      v = 0.0f;
      if (gj < N && gp < K) v = transB ? B[(size_t)gj * K + gp] : B[(size_t)gp * N + gj];
      Bs[p][j] = v;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < TK; p++) {
      float a[4], b[4];
#pragma unroll
      for (int u = 0; u < 4; u++) { a[u] = As[p][ty + 16 * u]; b[u] = Bs[p][tx + 16 * u]; }
#pragma unroll
      for (int u = 0; u < 4; u++)
#pragma unroll
        for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < 4; u++) {
    int i = row0 + ty + 16 * u;
    if (i >= M) continue;
#pragma unroll
    for (int v = 0; v < 4; v++) {
      int j = col0 + tx + 16 * v;
      if (j >= N) continue;
      float r = alpha * acc[u][v];
      if (beta != 0.0f) r += beta * C[(size_t)i * N + j]; // beta = 0: C is only written
      C[(size_t)i * N + j] = r;
    }
  }
}
