// Elementwise kernels: memory, arithmetic, activations, bias. One thread per
// element; the launcher sizes the grid as ceil(n / HZ_THREADS).
#include "common.cuh"

extern "C" __global__ void hz_fill(float* x, float v, long long n) {
  unsigned i = hz_index();
  if (i < n) x[i] = v;
}

// y = alpha·x + beta·y; beta = 0 writes y without reading it (NaNs in y vanish).
extern "C" __global__ void hz_axpby(float alpha, const float* x, float beta, float* y, long long n) {
  unsigned i = hz_index();
  if (i >= n) return;
  float v = alpha * x[i];
  if (beta != 0.0f) v += beta * y[i];
  y[i] = v;
}

extern "C" __global__ void hz_mul(const float* x, const float* y, float* out, long long n) {
  unsigned i = hz_index();
  if (i < n) out[i] = x[i] * y[i];
}

// Clamp keeps NaN (both comparisons are false), as ref does.
extern "C" __global__ void hz_clamp(const float* x, float* y, float lo, float hi, long long n) {
  unsigned i = hz_index();
  if (i >= n) return;
  float v = x[i];
  if (v < lo) v = lo;
  else if (v > hi) v = hi;
  y[i] = v;
}

// Activation codes follow backend.Activation: 0 identity, 1 ReLU, 2 LeakyReLU,
// 3 tanh, 4 sigmoid. Comparisons are written so that NaN passes through.
__device__ __forceinline__ float hz_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x); // no overflow for very negative x
  return e / (1.0f + e);
}

extern "C" __global__ void hz_activate(long long f, float alpha, const float* x, float* y, long long n) {
  unsigned i = hz_index();
  if (i >= n) return;
  float v = x[i];
  switch (f) {
  case 1: if (v < 0.0f) v = 0.0f; break;
  case 2: if (v < 0.0f) v *= alpha; break;
  case 3: v = tanhf(v); break;
  case 4: v = hz_sigmoid(v); break;
  }
  y[i] = v;
}

// dx = f'(·)·dy, where in is x for ReLU/LeakyReLU and y = f(x) for tanh/sigmoid.
// At ReLU's kink (x = 0) the gradient is 0, as in PyTorch.
extern "C" __global__ void hz_activate_backward(long long f, float alpha, const float* in, const float* dy, float* dx, long long n) {
  unsigned i = hz_index();
  if (i >= n) return;
  float g = dy[i];
  switch (f) {
  case 1: if (in[i] <= 0.0f) g = 0.0f; break;
  case 2: if (in[i] <= 0.0f) g *= alpha; break;
  case 3: { float v = in[i]; g *= 1.0f - v * v; } break;
  case 4: { float v = in[i]; g *= v * (1.0f - v); } break;
  }
  dx[i] = g;
}

// x[n, c, h, w] += bias[c]; hw = H·W, c = C.
extern "C" __global__ void hz_add_bias(float* x, const float* bias, long long c, long long hw, long long n) {
  unsigned i = hz_index();
  if (i < n) x[i] += bias[(i / (unsigned)hw) % (unsigned)c];
}
