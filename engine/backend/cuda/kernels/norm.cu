// Batch normalisation. Training and backward run one block per channel: the
// block reduces the channel's N·H·W values (in double, two passes for the
// variance, like ref) and then writes the channel's outputs, so one launch does
// the whole op. Inference is elementwise.
#include "common.cuh"

#define HZ_RED 1024

// Element j of channel ch among nb images of hw values each, C channels.
__device__ __forceinline__ size_t hz_at(unsigned j, unsigned ch, unsigned c, unsigned hw) {
  return ((size_t)(j / hw) * c + ch) * hw + j % hw;
}

extern "C" __global__ void hz_batchnorm_train(const float* x, const float* gamma, const float* beta, float* y,
                                              float* save_mean, float* save_inv, float* run_mean, float* run_var,
                                              long long nb, long long c_, long long hw_, float eps, float momentum) {
  __shared__ double s[HZ_RED];
  const unsigned C = c_, HW = hw_, M = nb * hw_, ch = blockIdx.x;
  double acc = 0;
  for (unsigned j = threadIdx.x; j < M; j += blockDim.x) acc += x[hz_at(j, ch, C, HW)];
  const double mean = hz_block_sum(acc, s) / M;
  acc = 0;
  for (unsigned j = threadIdx.x; j < M; j += blockDim.x) {
    double d = x[hz_at(j, ch, C, HW)] - mean;
    acc += d * d;
  }
  const double var = hz_block_sum(acc, s) / M;
  const double inv = 1.0 / sqrt(var + (double)eps);
  const float fm = (float)mean, scale = (float)(inv * gamma[ch]), shift = beta[ch];
  for (unsigned j = threadIdx.x; j < M; j += blockDim.x) {
    size_t k = hz_at(j, ch, C, HW);
    y[k] = (x[k] - fm) * scale + shift;
  }
  if (threadIdx.x == 0) {
    const double mom = momentum;
    save_mean[ch] = fm;
    save_inv[ch] = (float)inv;
    run_mean[ch] = (float)((1 - mom) * run_mean[ch] + mom * mean);
    run_var[ch] = (float)((1 - mom) * run_var[ch] + mom * var * M / (M - 1));
  }
}

// y = (x − running mean)·γ/√(running var + ε) + β; c = C, hw = H·W.
extern "C" __global__ void hz_batchnorm_infer(const float* x, const float* gamma, const float* beta,
                                              const float* run_mean, const float* run_var, float* y,
                                              long long c_, long long hw_, float eps, long long n) {
  unsigned i = hz_index();
  if (i >= n) return;
  unsigned ch = (i / (unsigned)hw_) % (unsigned)c_;
  float inv = 1.0f / sqrtf(run_var[ch] + eps);
  y[i] = (x[i] - run_mean[ch]) * inv * gamma[ch] + beta[ch];
}

// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·invstd/m · (m·dy − dβ − x̂·dγ), x̂ = (x − mean)·invstd.
extern "C" __global__ void hz_batchnorm_backward(const float* x, const float* dy, const float* gamma,
                                                 const float* save_mean, const float* save_inv,
                                                 float* dx, float* dgamma, float* dbeta,
                                                 long long nb, long long c_, long long hw_) {
  __shared__ double s[HZ_RED];
  const unsigned C = c_, HW = hw_, M = nb * hw_, ch = blockIdx.x;
  const double mean = save_mean[ch], inv = save_inv[ch];
  double a = 0, b = 0;
  for (unsigned j = threadIdx.x; j < M; j += blockDim.x) {
    size_t k = hz_at(j, ch, C, HW);
    a += dy[k];
    b += dy[k] * ((x[k] - mean) * inv);
  }
  const double sdy = hz_block_sum(a, s), sdyx = hz_block_sum(b, s);
  const double kk = gamma[ch] * inv / M;
  for (unsigned j = threadIdx.x; j < M; j += blockDim.x) {
    size_t k = hz_at(j, ch, C, HW);
    double xhat = (x[k] - mean) * inv;
    dx[k] = (float)(kk * ((double)M * dy[k] - sdy - xhat * sdyx));
  }
  if (threadIdx.x == 0) {
    dgamma[ch] = (float)sdyx;
    dbeta[ch] = (float)sdy;
  }
}
