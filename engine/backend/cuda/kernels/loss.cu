// Losses and Adam. A loss is one block of HZ_RED threads: each thread writes
// the gradient of its elements and adds their loss terms (in double); the block
// sum divided by n is the loss. One launch, no host round trip.
#include "common.cuh"

#define HZ_RED 1024

// kind 0: BCE with logits, stable form max(x, 0) − x·t + log(1 + e^−|x|),
//         gradient (σ(x) − t)/n;
// kind 1: MSE, (x − t)², gradient 2(x − t)/n;
// kind 2: hinge, max(0, 1 − sign·x), gradient −sign/n where the margin is
//         positive (NaN where it is NaN), else 0; t is unused.
extern "C" __global__ void hz_loss(long long kind, const float* x, const float* t, float sign,
                                   float* loss, float* grad, long long n_) {
  __shared__ double s[HZ_RED];
  const unsigned n = n_;
  const double dn = n;
  double acc = 0;
  for (unsigned i = threadIdx.x; i < n; i += blockDim.x) {
    double xv = x[i], g;
    if (kind == 0) {
      double tv = t[i];
      float ax = fabsf(x[i]);
      acc += fmax(xv, 0.0) - xv * tv + (double)log1pf(expf(-ax));
      float sg = x[i] >= 0.0f ? 1.0f / (1.0f + expf(-x[i])) : expf(x[i]) / (1.0f + expf(x[i]));
      g = ((double)sg - tv) / dn;
    } else if (kind == 1) {
      double e = xv - (double)t[i];
      acc += e * e;
      g = 2 * e / dn;
    } else {
      double m = 1 - (double)sign * xv;
      g = 0;
      if (m > 0) { acc += m; g = -(double)sign / dn; }
      else if (isnan(m)) { acc += m; g = m; }
    }
    grad[i] = (float)g;
  }
  acc = hz_block_sum(acc, s);
  if (threadIdx.x == 0) loss[0] = (float)(acc / dn);
}

// One Adam step (torch.optim.Adam without weight decay). step = lr/(1 − β1ᵗ) and
// rbc2 = 1/√(1 − β2ᵗ) are computed on the host in float64.
extern "C" __global__ void hz_adam(float* p, const float* g, float* m, float* v, float b1, float b2,
                                   double step, double rbc2, float eps, long long n) {
  unsigned i = hz_index();
  if (i >= n) return;
  float gi = g[i];
  float mi = b1 * m[i] + (1.0f - b1) * gi;
  float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = (float)((double)p[i] - step * mi / (sqrt((double)vi) * rbc2 + eps));
}
