// Upsampling, 2×2 max pooling and pixel shuffle: index arithmetic only, one
// thread per output element (per pooled element for max pooling).
#include "common.cuh"

// y[p, h, w] = x[p, h/2, w/2] over planes p of h_ × w_ (the input's sides).
extern "C" __global__ void hz_upsample2x(const float* x, float* y, long long h_, long long w_, long long n) {
  const unsigned H = h_, W = w_;
  unsigned i = hz_index();
  if (i >= n) return;
  unsigned w = i % (2 * W), h = (i / (2 * W)) % (2 * H), p = i / (4 * H * W);
  y[i] = x[(p * H + h / 2) * W + w / 2];
}

// dx[p, h, w] = sum of the 2×2 block of dy, in ref's order (row sums first).
extern "C" __global__ void hz_upsample2x_backward(const float* dy, float* dx, long long h_, long long w_, long long n) {
  const unsigned H = h_, W = w_;
  unsigned i = hz_index();
  if (i >= n) return;
  unsigned w = i % W, h = (i / W) % H, p = i / (H * W);
  const float* s = dy + (size_t)p * 4 * H * W + (2 * h) * (2 * W) + 2 * w;
  float a = s[0] + s[1], b = s[2 * W] + s[2 * W + 1];
  dx[i] = a + b;
}

// The offset within the plane (of width W) of the largest value of the 2×2
// block at (h, w0); the first in row-major order wins ties.
__device__ __forceinline__ unsigned hz_argmax2(const float* x, unsigned W, unsigned h, unsigned w0) {
  unsigned best = h * W + w0;
  unsigned o[3] = {h * W + w0 + 1, (h + 1) * W + w0, (h + 1) * W + w0 + 1};
  for (int k = 0; k < 3; k++)
    if (x[o[k]] > x[best]) best = o[k];
  return best;
}

// n = number of pooled outputs; h_, w_ are the input's (even) sides.
extern "C" __global__ void hz_maxpool2(const float* x, float* y, long long h_, long long w_, long long n) {
  const unsigned H = h_, W = w_, OH = H / 2, OW = W / 2;
  unsigned i = hz_index();
  if (i >= n) return;
  unsigned ow = i % OW, oh = (i / OW) % OH, p = i / (OH * OW);
  const float* plane = x + (size_t)p * H * W;
  y[i] = plane[hz_argmax2(plane, W, 2 * oh, 2 * ow)];
}

// Writes all four dx entries of each block: dy at the maximum, 0 elsewhere.
extern "C" __global__ void hz_maxpool2_backward(const float* x, const float* dy, float* dx, long long h_, long long w_, long long n) {
  const unsigned H = h_, W = w_, OH = H / 2, OW = W / 2;
  unsigned i = hz_index();
  if (i >= n) return;
  unsigned ow = i % OW, oh = (i / OW) % OH, p = i / (OH * OW);
  const float* plane = x + (size_t)p * H * W;
  float* d = dx + (size_t)p * H * W;
  unsigned best = hz_argmax2(plane, W, 2 * oh, 2 * ow);
  unsigned o[4] = {2 * oh * W + 2 * ow, 2 * oh * W + 2 * ow + 1, (2 * oh + 1) * W + 2 * ow, (2 * oh + 1) * W + 2 * ow + 1};
  for (int k = 0; k < 4; k++) d[o[k]] = o[k] == best ? dy[i] : 0.0f;
}

// wide[n, c, h·r + a, w·r + b] = deep[n, c·r² + a·r + b, h, w]; one thread per
// element of wide. inverse copies wide → deep (pixel unshuffle). c_, h_, w_ are
// the wide tensor's channels and the deep tensor's sides.
extern "C" __global__ void hz_pixel_shuffle(const float* src, float* dst, long long c_, long long h_, long long w_, long long r_, long long inverse, long long n) {
  const unsigned C = c_, H = h_, W = w_, R = r_;
  unsigned i = hz_index();
  if (i >= n) return;
  unsigned WW = W * R, HH = H * R;
  unsigned x = i % WW, y = (i / WW) % HH, c = (i / (WW * HH)) % C, b = i / (WW * HH * C);
  unsigned h = y / R, a = y % R, w = x / R, bb = x % R;
  unsigned deep = (((b * C + c) * R * R + a * R + bb) * H + h) * W + w;
  if (inverse) dst[deep] = src[i];
  else dst[i] = src[deep];
}
