// Reductions. Each sum is one block walking its range with a block-wide
// stride, accumulating in double and reducing in shared memory: the result does
// not depend on scheduling (no atomics), NaN and ±Inf propagate as IEEE
// additions do, and the error is far below float32 rounding.
#include "common.cuh"

#define HZ_RED 1024 // threads of a reduction block

// out[0] = Σ x; one block.
extern "C" __global__ void hz_sum(const float* x, float* out, long long n) {
  __shared__ double s[HZ_RED];
  double acc = 0;
  for (unsigned i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
  acc = hz_block_sum(acc, s);
  if (threadIdx.x == 0) out[0] = (float)acc;
}

// db[c] = Σ over n, h, w of dy[n, c, h, w]; one block per channel c.
extern "C" __global__ void hz_bias_grad(const float* dy, float* db, long long nb, long long c, long long hw) {
  __shared__ double s[HZ_RED];
  unsigned ch = blockIdx.x, m = nb * hw;
  double acc = 0;
  for (unsigned j = threadIdx.x; j < m; j += blockDim.x) {
    unsigned n = j / (unsigned)hw, p = j % (unsigned)hw;
    acc += dy[(n * (unsigned)c + ch) * (unsigned)hw + p];
  }
  acc = hz_block_sum(acc, s);
  if (threadIdx.x == 0) db[ch] = (float)acc;
}
