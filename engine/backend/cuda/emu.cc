//go:build cudaemu && !cuda

// A CPU emulation of the CUDA execution model, just enough for this package's
// kernels: the .cu files are compiled here as C++ and each launch runs its
// blocks one after another. Kernels that call __syncthreads run a block's
// threads as OS threads meeting at a barrier (__shared__ becomes static,
// shared by the one block running); the others run a block's threads in a
// loop. Parameters are unpacked from 8-byte slots exactly as the driver reads
// them (a float from the low 4 bytes). It checks index arithmetic and the Go
// side's arguments, not the GPU: no PTX, no memory model, no warps.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <math.h>
#include <thread>
#include <utility>
#include <vector>

struct dim3 { unsigned x = 0, y = 0, z = 0; };
static thread_local dim3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
static std::barrier<>* hz_barrier;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)
static inline void __syncthreads() { hz_barrier->arrive_and_wait(); }

#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#include "kernels/elementwise.cu"
#include "kernels/reduce.cu"
#include "kernels/gemm.cu"
#include "kernels/conv.cu"
#include "kernels/resample.cu"
#include "kernels/norm.cu"
#include "kernels/loss.cu"

template <typename T> static T unpack(uint64_t v) {
  if constexpr (std::is_pointer_v<T>) return reinterpret_cast<T>(static_cast<uintptr_t>(v));
  else if constexpr (std::is_same_v<T, float>) { uint32_t u = (uint32_t)v; float f; memcpy(&f, &u, 4); return f; }
  else if constexpr (std::is_same_v<T, double>) { double d; memcpy(&d, &v, 8); return d; }
  else { static_assert(std::is_same_v<T, long long>); return (long long)v; }
}

template <typename... P, size_t... I>
static void call(void (*k)(P...), const uint64_t* a, std::index_sequence<I...>) { k(unpack<P>(a[I])...); }

// pool is a block's worth of persistent threads (one pool per block size), so
// that a launch of many blocks does not create threads per block. Workers
// are detached: the process ends with them parked.
struct pool {
  explicit pool(unsigned n) : n(n), start(n + 1), done(n + 1), sync(n) {
    for (unsigned t = 0; t < n; t++)
      std::thread([this, t] {
        for (;;) {
          start.arrive_and_wait();
          job(t);
          done.arrive_and_wait();
        }
      }).detach();
  }
  void run(std::function<void(unsigned)> f) {
    job = std::move(f);
    hz_barrier = &sync;
    start.arrive_and_wait();
    done.arrive_and_wait();
  }
  unsigned n;
  std::barrier<> start, done, sync;
  std::function<void(unsigned)> job;
};

static pool& pool_for(unsigned n) {
  static std::map<unsigned, std::unique_ptr<pool>> pools;
  auto& p = pools[n];
  if (!p) p = std::make_unique<pool>(n);
  return *p;
}

// run launches k over the grid; nargs must be the kernel's parameter count.
template <typename... P>
static int run(void (*k)(P...), bool syncs, const uint64_t* a, int nargs, const unsigned* g) {
  if (nargs != (int)sizeof...(P)) return 1;
  gridDim = {g[0], g[1], 1};
  blockDim = {g[2], g[3], 1};
  unsigned nt = g[2] * g[3];
  for (unsigned by = 0; by < g[1]; by++)
    for (unsigned bx = 0; bx < g[0]; bx++) {
      auto body = [&, bx, by](unsigned t) {
        blockIdx = {bx, by, 0};
        threadIdx = {t % g[2], t / g[2], 0};
        call(k, a, std::index_sequence_for<P...>{});
      };
      if (!syncs) {
        for (unsigned t = 0; t < nt; t++) body(t);
        continue;
      }
      pool_for(nt).run(body);
    }
  return 0;
}

// hz_emu_launch runs kernel name; g = grid x, y, block x, y. Returns 0, 1 for
// a wrong parameter count, 2 for an unknown kernel.
extern "C" int hz_emu_launch(const char* name, const uint64_t* a, int nargs, const unsigned* g) {
  static std::mutex mu; // one launch at a time: the grid and the pools are global
  std::lock_guard<std::mutex> lock(mu);
#define K(f, s) if (strcmp(name, #f) == 0) return run(f, s, a, nargs, g);
  K(hz_fill, false) K(hz_axpby, false) K(hz_mul, false) K(hz_clamp, false)
  K(hz_activate, false) K(hz_activate_backward, false) K(hz_add_bias, false)
  K(hz_sum, true) K(hz_bias_grad, true) K(hz_sgemm, true)
  K(hz_im2col, false) K(hz_col2im, false)
  K(hz_upsample2x, false) K(hz_upsample2x_backward, false) K(hz_maxpool2, false) K(hz_maxpool2_backward, false)
  K(hz_pixel_shuffle, false)
  K(hz_batchnorm_train, true) K(hz_batchnorm_infer, false) K(hz_batchnorm_backward, true)
  K(hz_loss, true) K(hz_adam, false)
#undef K
  return 2;
}
