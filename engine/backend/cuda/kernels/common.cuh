// Shared by every kernel file. Sizes reach the kernels as long long (cu copies
// every launch parameter as 8 bytes) and are at most backend.MaxElements
// (2³¹ − 1), checked in Go before any launch, so indices fit an unsigned int:
// i < 2³¹ and i + a grid's stride < 2³².
#pragma once

#define HZ_THREADS 256

// hz_index is the flat index of this thread in a 1-D grid.
__device__ __forceinline__ unsigned hz_index() { return blockIdx.x * blockDim.x + threadIdx.x; }

// hz_block_sum reduces one double per thread of a 1-D block (blockDim.x a power
// of two, at most 1024) into thread 0's return value; s is shared scratch of
// blockDim.x doubles. Every thread of the block must call it.
__device__ double hz_block_sum(double v, double* s) {
  s[threadIdx.x] = v;
  __syncthreads();
  for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
    __syncthreads();
  }
  double r = s[0];
  __syncthreads(); // s may be reused at once by the caller
  return r;
}
