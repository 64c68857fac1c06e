// Runs every kernel of kernels/cuda/ on the CPU through emu.h and compares it with a plain
// C++ reference (f16 decoding of all 65536 bit patterns, matmuls of every weight type with
// token strides, RMS norm, softmax with -inf, SwiGLU and RoPE with grid strides, paged
// attention with GQA and shuffled tables, KV block copies). A GPU-free check of the kernels'
// index arithmetic; the real check is tests/cuda_diff.rs on a GPU. Run with ./run.sh.
#include "emu.h"
#include <random>
#include <algorithm>
#include "../common.cu"
#include "../matmul.cu"
#include "../ops.cu"
#include "../attention.cu"
#include "../kv.cu"
static std::mt19937 rng(7);
static float rnd(float s) { return std::uniform_real_distribution<float>(-s, s)(rng); }
static int fails = 0;
static void check(bool ok, const char* what, double a, double b) {
  if (!ok) { if (fails < 20) printf("FAIL %s: got %g want %g\n", what, a, b); ++fails; }
}
static bool close(double a, double b, double tol) { return std::fabs(a - b) <= tol * (1 + std::fabs(b)); }
static float h2f(uint16_t b) { _Float16 h; memcpy(&h, &b, 2); return (float)h; }
static uint16_t rand_f16() { // moderate normal halves, random sign
  unsigned e = 8 + rng() % 10, m = rng() % 1024, s = rng() % 2;
  return (uint16_t)((s << 15) | (e << 10) | m);
}
int main() {
  // f16 decode: every bit pattern.
  for (unsigned b = 0; b < 65536; ++b) {
    float a = f16_to_f32(b), r = h2f((uint16_t)b);
    bool ok = (std::isnan(a) && std::isnan(r)) || memcmp(&a, &r, 4) == 0;
    check(ok, "f16", a, r);
  }
  // matmul, every type.
  struct Ty { const char* name; unsigned bytes; int kind; };
  Ty tys[] = {{"q4_0", 18, 0}, {"q4_1", 20, 1}, {"q8_0", 34, 2}, {"f16", 0, 3}};
  for (auto& ty : tys)
    for (unsigned rows : {1u, 5u, 7u, 9u})
      for (unsigned cols : {32u, 96u})
        for (unsigned n : {1u, 3u})
          for (unsigned gy : {1u, 2u, 3u}) {
            unsigned nb = cols / 32;
            unsigned row_bytes = ty.kind == 3 ? cols * 2 : nb * ty.bytes;
            std::vector<uint8_t> w(rows * row_bytes);
            for (auto& v : w) v = rng() & 0xff;
            std::vector<float> wf(rows * cols);
            for (unsigned r = 0; r < rows; ++r) {
              uint8_t* row = &w[r * row_bytes];
              if (ty.kind == 3) {
                for (unsigned i = 0; i < cols; ++i) { uint16_t h = rand_f16(); memcpy(row + 2 * i, &h, 2); wf[r * cols + i] = h2f(h); }
                continue;
              }
              for (unsigned b = 0; b < nb; ++b) {
                uint8_t* blk = row + b * ty.bytes;
                uint16_t d = rand_f16(), m = rand_f16();
                memcpy(blk, &d, 2);
                if (ty.kind == 1) memcpy(blk + 2, &m, 2);
                for (unsigned i = 0; i < 32; ++i) {
                  float v;
                  if (ty.kind == 2) v = (float)(int8_t)blk[2 + i] * h2f(d);
                  else {
                    const uint8_t* qs = blk + (ty.kind == 0 ? 2 : 4);
                    int q = i < 16 ? (qs[i] & 15) : (qs[i - 16] >> 4);
                    v = ty.kind == 0 ? (q - 8) * h2f(d) : q * h2f(d) + h2f(m);
                  }
                  wf[r * cols + b * 32 + i] = v;
                }
              }
            }
            std::vector<float> x(n * cols), y(n * rows, -999.f);
            for (auto& v : x) v = rnd(1);
            dim3 grid{(rows + MATMUL_WARPS - 1) / MATMUL_WARPS, std::min(n, gy), 1};
            dim3 block{MATMUL_WARPS * 32};
            switch (ty.kind) {
              case 0: launch([&] { matmul_q4_0(w.data(), x.data(), y.data(), rows, cols, n); }, grid, block); break;
              case 1: launch([&] { matmul_q4_1(w.data(), x.data(), y.data(), rows, cols, n); }, grid, block); break;
              case 2: launch([&] { matmul_q8_0(w.data(), x.data(), y.data(), rows, cols, n); }, grid, block); break;
              case 3: launch([&] { matmul_f16((const unsigned short*)w.data(), x.data(), y.data(), rows, cols, n); }, grid, block); break;
            }
            for (unsigned j = 0; j < n; ++j)
              for (unsigned r = 0; r < rows; ++r) {
                double ref = 0, mag = 0;
                for (unsigned i = 0; i < cols; ++i) { ref += (double)wf[r * cols + i] * x[j * cols + i]; mag += std::fabs(wf[r * cols + i] * x[j * cols + i]); }
                check(std::fabs(y[j * rows + r] - ref) <= 1e-5 * mag + 1e-6, ty.name, y[j * rows + r], ref);
              }
          }
  // rms_norm
  for (unsigned d : {1u, 17u, 300u, 576u}) {
    unsigned rows = 3;
    std::vector<float> x(rows * d), w(d), o(rows * d);
    for (auto& v : x) v = rnd(3);
    for (auto& v : w) v = rnd(1);
    launch([&] { rms_norm_f32(x.data(), w.data(), o.data(), d, 1e-5f); }, {rows}, {256});
    for (unsigned r = 0; r < rows; ++r) {
      double ss = 0; for (unsigned i = 0; i < d; ++i) ss += (double)x[r*d+i] * x[r*d+i];
      double s = 1 / std::sqrt(ss / d + 1e-5);
      for (unsigned i = 0; i < d; ++i) check(close(o[r*d+i], x[r*d+i] * s * w[i], 1e-5), "rms", o[r*d+i], x[r*d+i]*s*w[i]);
    }
  }
  // softmax (with -inf entries and a big offset)
  for (unsigned len : {1u, 31u, 700u}) {
    unsigned rows = 2;
    std::vector<float> x(rows * len), ref(rows * len);
    for (auto& v : x) v = rnd(20) + 500;
    if (len > 1) x[len + 1] = -INFINITY;
    ref = x;
    for (unsigned r = 0; r < rows; ++r) {
      double m = -INFINITY, s = 0; for (unsigned i = 0; i < len; ++i) m = std::max(m, (double)ref[r*len+i]);
      for (unsigned i = 0; i < len; ++i) s += std::exp(ref[r*len+i] - m);
      for (unsigned i = 0; i < len; ++i) ref[r*len+i] = std::exp(ref[r*len+i] - m) / s;
    }
    launch([&] { softmax_f32(x.data(), len); }, {rows}, {256});
    for (unsigned i = 0; i < rows * len; ++i) check(close(x[i], ref[i], 1e-5), "softmax", x[i], ref[i]);
  }
  // silu_mul with a grid smaller than the data (grid-stride)
  {
    unsigned len = 1537; std::vector<float> g(len), u(len), o(len);
    for (auto& v : g) v = rnd(10);
    for (auto& v : u) v = rnd(2);
    launch([&] { silu_mul_f32(g.data(), u.data(), o.data(), len); }, {2}, {256});
    for (unsigned i = 0; i < len; ++i) { double r = g[i] / (1 + std::exp(-(double)g[i])) * u[i]; check(close(o[i], r, 1e-5), "silu", o[i], r); }
  }
  // rope, both modes
  for (unsigned neox : {0u, 1u}) {
    unsigned T = 3, H = 2, D = 8; std::vector<float> x(T * H * D); std::vector<unsigned> pos = {0, 7, 511};
    for (auto& v : x) v = rnd(1);
    std::vector<float> ref = x;
    for (unsigned t = 0; t < T; ++t) for (unsigned h = 0; h < H; ++h) for (unsigned i = 0; i < D / 2; ++i) {
      double th = pos[t] * std::pow(10000.0, -2.0 * i / D);
      unsigned a = neox ? i : 2 * i, b = neox ? i + D / 2 : 2 * i + 1;
      float* p = &ref[(t * H + h) * D];
      double x0 = p[a], x1 = p[b]; p[a] = x0 * std::cos(th) - x1 * std::sin(th); p[b] = x0 * std::sin(th) + x1 * std::cos(th);
    }
    launch([&] { rope_f32(x.data(), pos.data(), T, H, D, 10000.f, neox); }, {1}, {32});
    for (unsigned i = 0; i < x.size(); ++i) check(std::fabs(x[i] - ref[i]) < 1e-4, "rope", x[i], ref[i]);
  }
  // paged attention, GQA, shuffled tables, partial last block, head_dim not a multiple of 32
  for (unsigned hd : {40u, 64u, 256u})
    for (unsigned len : {1u, 3u, 9u, 13u, 40u}) {
      unsigned bs = 4, nkv = 2, nh = 6, nblocks = 12;
      std::vector<float> k(nblocks * bs * nkv * hd), v(k.size()), q(nh * hd), out(nh * hd, -9);
      for (auto& e : k) e = rnd(1);
      for (auto& e : v) e = rnd(1);
      for (auto& e : q) e = rnd(1);
      std::vector<unsigned> table(nblocks); for (unsigned i = 0; i < nblocks; ++i) table[i] = i;
      std::shuffle(table.begin(), table.end(), rng);
      unsigned used = (len + bs - 1) / bs; unsigned lens[1] = {len};
      float scale = 1.f / std::sqrt((float)hd);
      launch([&] { attention_paged_f32(q.data(), k.data(), v.data(), table.data(), lens, out.data(), used, nh, nkv, hd, bs, scale); }, {nh, 1}, {ATTN_WARPS * 32});
      for (unsigned h = 0; h < nh; ++h) {
        unsigned kvh = h / (nh / nkv);
        std::vector<double> s(len); double m = -INFINITY, z = 0;
        for (unsigned t = 0; t < len; ++t) {
          size_t at = ((size_t)table[t / bs] * bs + t % bs) * nkv * hd + kvh * hd;
          double d = 0; for (unsigned e = 0; e < hd; ++e) d += (double)q[h*hd+e] * k[at+e];
          s[t] = d * scale; m = std::max(m, s[t]);
        }
        for (auto& e : s) { e = std::exp(e - m); z += e; }
        for (unsigned e = 0; e < hd; ++e) {
          double o = 0;
          for (unsigned t = 0; t < len; ++t) { size_t at = ((size_t)table[t / bs] * bs + t % bs) * nkv * hd + kvh * hd; o += s[t] / z * v[at+e]; }
          check(close(out[h*hd+e], o, 1e-5), "attention", out[h*hd+e], o);
        }
      }
    }
  // kv block copy with pairs beyond gridDim.y and elements beyond the grid
  {
    unsigned be = 300, nb = 6; std::vector<float> pool(nb * be); for (auto& e : pool) e = rnd(1);
    std::vector<float> ref = pool; std::vector<unsigned> pairs = {0, 3, 1, 4, 0, 5};
    for (unsigned p = 0; p < 3; ++p) std::copy_n(&ref[pairs[2*p] * be], be, &ref[pairs[2*p+1] * be]);
    launch([&] { kv_block_copy_f32(pool.data(), pairs.data(), 3, be); }, {1, 2}, {256});
    for (unsigned i = 0; i < pool.size(); ++i) check(pool[i] == ref[i], "kv copy", pool[i], ref[i]);
  }
  {
    unsigned len = 1000; std::vector<float> a(len), b(len); for (auto& e : a) e = rnd(1);
    launch([&] { copy_f32(a.data(), b.data(), len); }, {2}, {256});
    check(a == b, "copy", 0, 0);
  }
  printf("%s (%d failures)\n", fails ? "FAILED" : "all kernels match", fails);
  return fails != 0;
}
