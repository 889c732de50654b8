// The convolution's data movement: im2col and its adjoint col2im, one image at
// a time. The arithmetic is hz_sgemm (see conv.go for the three GEMMs).
//
// col is [C·KH·KW, OH·OW] for one image x [C, H, W]:
// col[(c·KH + kh)·KW + kw, oh·OW + ow] = x[c, oh·S − P + kh, ow·S − P + kw] (0 outside).
#include "common.cuh"

// Geometry of one convolution, passed as separate 8-byte parameters.
#define HZ_CONV_PARAMS long long c_, long long h_, long long w_, long long kh_, long long kw_, \
                       long long s_, long long p_, long long oh_, long long ow_

// One thread per element of col.
extern "C" __global__ void hz_im2col(const float* x, float* col, HZ_CONV_PARAMS) {
  const int C = c_, H = h_, W = w_, KH = kh_, KW = kw_, S = s_, P = p_, OH = oh_, OW = ow_;
  unsigned i = hz_index();
  unsigned ohw = OH * OW;
  if (i >= (unsigned)(C * KH * KW) * ohw) return;
  int q = i % ohw, r = i / ohw;
  int ow = q % OW, oh = q / OW;
  int kw = r % KW, kh = (r / KW) % KH, c = r / (KW * KH);
  int h = oh * S - P + kh, w = ow * S - P + kw;
  col[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((size_t)c * H + h) * W + w] : 0.0f;
}

// dx[c, h, w] = Σ of the col entries im2col read it into, gathered per input
// element (no atomics, a fixed order).
extern "C" __global__ void hz_col2im(const float* col, float* dx, HZ_CONV_PARAMS) {
  const int C = c_, H = h_, W = w_, KH = kh_, KW = kw_, S = s_, P = p_, OH = oh_, OW = ow_;
  unsigned i = hz_index();
  if (i >= (unsigned)(C * H * W)) return;
  int w = i % W, h = (i / W) % H, c = i / (W * H);
  unsigned ohw = OH * OW;
  float acc = 0.0f;
  for (int kh = 0; kh < KH; kh++) {
    int oy = h + P - kh;
    if (oy < 0 || oy % S != 0) continue;
    oy /= S;
    if (oy >= OH) continue;
    for (int kw = 0; kw < KW; kw++) {
      int ox = w + P - kw;
      if (ox < 0 || ox % S != 0) continue;
      ox /= S;
      if (ox >= OW) continue;
      acc += col[(size_t)((c * KH + kh) * KW + kw) * ohw + oy * OW + ox];
    }
  }
  dx[i] = acc;
}
