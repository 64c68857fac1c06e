// CPU emulation of the CUDA subset the agentc kernels use, for check.cpp (not for speed): one
// OS thread per CUDA thread, blocks one after another, __syncthreads and warp shuffles through
// std::barrier. A warp must call a shuffle with all 32 lanes, as on a GPU, or it deadlocks.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>
#include <functional>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline std::unique_ptr<std::barrier<>> g_block;
inline std::vector<std::unique_ptr<std::barrier<>>> g_warp;
inline float g_xbuf[32][32];
inline void __syncthreads() { g_block->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned mask, float v, int off) {
  if (mask != 0xffffffffu) std::abort();
  unsigned lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  g_xbuf[w][lane] = v;
  g_warp[w]->arrive_and_wait();
  float r = g_xbuf[w][lane ^ off];
  g_warp[w]->arrive_and_wait();
  return r;
}
template <class F>
void launch(F f, dim3 grid, dim3 block) {
  gridDim = grid; blockDim = block;
  if (block.x % 32) std::abort();
  for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      g_block = std::make_unique<std::barrier<>>(block.x);
      g_warp.clear();
      for (unsigned w = 0; w < block.x / 32; ++w) g_warp.push_back(std::make_unique<std::barrier<>>(32));
      std::vector<std::thread> ts;
      for (unsigned t = 0; t < block.x; ++t)
        ts.emplace_back([&, t] {
          threadIdx = {t, 0, 0}; blockIdx = {bx, by, 0};
          f();
          g_warp[t >> 5]->arrive_and_drop();
          g_block->arrive_and_drop();
        });
      for (auto& t : ts) t.join();
    }
}
