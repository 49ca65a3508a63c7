// The time loops of fast_lstm.py and fast_gru.py in C++, without Python's per-op cost (~100 us per time step,
// forward + backward, on a loaded 2-core CPU). Each function fills tensors the Python side allocated; the Python
// docstrings there give the equations and shapes. Built once by fast_loops.py and cached by
// torch.utils.cpp_extension; the Python loops stay as the fallback and the reference.
//
// Each step's elementwise work (LSTM and peephole gates and cell, GRU gates; their deltas backward) is one fused
// loop over (B, H) where nothing is masked and the tensors are contiguous float32 / float64: the ATen ops it
// replaces, ~10 per LSTM step, each read and wrote the (B, 4H) block again (74 us of a 300 us step at B32 H256 on a
// loaded 2-core CPU, issue 19). Its float32 exp is a branch-free polynomial (Cephes expf, ~1 ulp) that the compiler
// vectorises; float64 uses std::exp. Masked or strided inputs run the ATen ops as the Python loops do, in the same
// order.
//
// Each step's ATen elementwise ops run on one thread (c10::ParallelGuard), the matmuls on all of torch's. A (B, 4H)
// op is a few microseconds of work, less than waking and joining OpenMP threads, which on a loaded machine can wait
// for a core; oneDNN's fused kernel likewise parallelises the step, not each op. The fused elementwise loops are
// serial too, except in the packed loops (below), where each thread runs its own hidden units' share of a step.
// Elementwise results do not depend on the thread count.
#include <c10/util/ParallelGuard.h>
#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

using at::Tensor;

// The fused loops are compiled twice on x86-64 GCC >= 12, for x86-64-v3 (AVX2, FMA) and for the baseline, and the
// loader picks the one this CPU supports (an ifunc on its features; `arch=haswell` would test the CPU model, and an
// AMD EPYC is no Haswell): a cached build stays valid on an older CPU sharing the home directory.
// The loops' helpers are forced inline into each clone: a helper compiled once, for the baseline, would be what
// both clones call.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define RNNBENCH_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RNNBENCH_CLONES
#endif
#if defined(__GNUC__)
#define RNNBENCH_INLINE inline __attribute__((always_inline))
#else
#define RNNBENCH_INLINE inline
#endif

namespace {

Tensor block(const Tensor& x, int64_t k, int64_t hidden) { return x.narrow(1, k * hidden, hidden); }

// exp(x), float32: Cephes expf (range reduction by ln 2 in two parts, degree-5 polynomial, 2^n from the exponent
// bits), branch-free so that loops of it vectorise. x is clamped to [-87, 88] so that 2^n stays a normal float
// (exp(-87) = 1.6e-38: a sigmoid of -87 or less reads 0 to float precision either way); NaN passes through, so a
// diverged run still shows NaN downstream.
RNNBENCH_INLINE float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

RNNBENCH_INLINE double exp_approx(double x) { return std::exp(x); }

template <typename T>
RNNBENCH_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + exp_approx(-x));
}

// One LSTM step's elementwise work after the matmul, for `rows` rows: a (rows, 4H) holds the pre-activations (the
// g block doubled, as in lstm_forward) and gets the activations i, f, g, o; c_new, tc, h_new (rows, H) are filled.
// w_p (3, H) or null. Every tanh is 2 sigmoid(2x) - 1, as in the ATen path.
template <typename T, bool Peep>
RNNBENCH_INLINE void lstm_cell_forward(T* __restrict__ a, const T* __restrict__ c_prev, const T* __restrict__ w_p,
                              T* __restrict__ c_new, T* __restrict__ tc, T* __restrict__ h_new, int64_t rows,
                              int64_t hidden, int64_t j0, int64_t j1) {
  for (int64_t b = 0; b < rows; ++b) {
    T* __restrict__ row = a + b * 4 * hidden;
    const T* __restrict__ cp = c_prev + b * hidden;
    T* __restrict__ cn = c_new + b * hidden;
    T* __restrict__ tcr = tc + b * hidden;
    T* __restrict__ hr = h_new + b * hidden;
    for (int64_t j = j0; j < j1; ++j) {
      T pre_i = row[j], pre_f = row[hidden + j], pre_o = row[3 * hidden + j];
      if (Peep) {
        pre_i += w_p[j] * cp[j];
        pre_f += w_p[hidden + j] * cp[j];
      }
      const T i = sigmoid(pre_i), f = sigmoid(pre_f), s_g = sigmoid(row[2 * hidden + j]);
      const T g = s_g + s_g - T(1);
      const T c = f * cp[j] + i * g;
      if (Peep) pre_o += w_p[2 * hidden + j] * c;
      const T o = sigmoid(pre_o), s_c = sigmoid(c + c);
      const T t = s_c + s_c - T(1);
      row[j] = i;
      row[hidden + j] = f;
      row[2 * hidden + j] = g;
      row[3 * hidden + j] = o;
      cn[j] = c;
      tcr[j] = t;
      hr[j] = o * t;
    }
  }
}

// One LSTM step's deltas (the equations of fast_lstm._backward): from the activations a (rows, 4H), c_prev, tc and
// the incoming dh, dc (rows, H), fill dg (rows, 4H) and overwrite dc with dL/dc_{t-1}.
template <typename T, bool Peep>
RNNBENCH_INLINE void lstm_cell_backward(const T* __restrict__ a, const T* __restrict__ c_prev, const T* __restrict__ tc,
                               const T* __restrict__ w_p, const T* __restrict__ dh, T* __restrict__ dc,
                               T* __restrict__ dg, int64_t rows, int64_t hidden, int64_t j0,
                               int64_t j1) {
  for (int64_t b = 0; b < rows; ++b) {
    const T* __restrict__ row = a + b * 4 * hidden;
    T* __restrict__ drow = dg + b * 4 * hidden;
    const int64_t at = b * hidden;
    for (int64_t j = j0; j < j1; ++j) {
      const T i = row[j], f = row[hidden + j], g = row[2 * hidden + j], o = row[3 * hidden + j];
      const T t = tc[at + j], d_h = dh[at + j];
      const T k_i = (i - i * i) * g, k_f = (f - f * f) * c_prev[at + j];
      const T k_g = (T(1) - g * g) * i, k_o = (o - o * o) * t;
      T a_c = (T(1) - t * t) * o, a_prev = f;
      if (Peep) {
        a_c += k_o * w_p[2 * hidden + j];
        a_prev += k_i * w_p[j] + k_f * w_p[hidden + j];
      }
      const T dcs = dc[at + j] + d_h * a_c;
      drow[j] = k_i * dcs;
      drow[hidden + j] = k_f * dcs;
      drow[2 * hidden + j] = k_g * dcs;
      drow[3 * hidden + j] = k_o * d_h;
      dc[at + j] = dcs * a_prev;
    }
  }
}

// One GRU step's elementwise work after the matmul gh = h W_hh^T + b_hh: from gx, gh (rows, 3H) and h (rows, H),
// fill a (rows, 3H) with r, z, n and h_new (rows, H). tanh as 2 sigmoid(2x) - 1, the one transcendental here.
template <typename T>
RNNBENCH_INLINE void gru_cell_forward(const T* __restrict__ gx, const T* __restrict__ gh, const T* __restrict__ h,
                                      T* __restrict__ a, T* __restrict__ h_new, int64_t rows, int64_t hidden,
                                      int64_t j0, int64_t j1) {
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t at3 = b * 3 * hidden, at = b * hidden;
    for (int64_t j = j0; j < j1; ++j) {
      const T r = sigmoid(gx[at3 + j] + gh[at3 + j]);
      const T z = sigmoid(gx[at3 + hidden + j] + gh[at3 + hidden + j]);
      const T s_n = sigmoid(T(2) * (gx[at3 + 2 * hidden + j] + r * gh[at3 + 2 * hidden + j]));
      const T n = s_n + s_n - T(1);
      a[at3 + j] = r;
      a[at3 + hidden + j] = z;
      a[at3 + 2 * hidden + j] = n;
      h_new[at + j] = n + z * (h[at + j] - n);
    }
  }
}

// One GRU step's deltas (fast_gru._backward's equations): from a (r, z, n), gh, h_prev, dh and the output gradient
// of step t-1 (null at t = 0), fill dgx, dgh (rows, 3H) and carry = dh z + grad_out_{t-1} (rows, H).
template <typename T>
RNNBENCH_INLINE void gru_cell_backward(const T* __restrict__ a, const T* __restrict__ gh,
                                       const T* __restrict__ h_prev, const T* __restrict__ dh,
                                       const T* __restrict__ out_prev, T* __restrict__ dgx, T* __restrict__ dgh,
                                       T* __restrict__ carry, int64_t rows, int64_t hidden, int64_t j0,
                                       int64_t j1) {
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t at3 = b * 3 * hidden, at = b * hidden;
    for (int64_t j = j0; j < j1; ++j) {
      const T r = a[at3 + j], z = a[at3 + hidden + j], n = a[at3 + 2 * hidden + j], d_h = dh[at + j];
      const T d_n = (T(1) - n * n) * (d_h - d_h * z);
      const T d_z = (z - z * z) * (h_prev[at + j] - n) * d_h;
      const T d_r = (r - r * r) * d_n * gh[at3 + 2 * hidden + j];
      dgx[at3 + j] = d_r;
      dgx[at3 + hidden + j] = d_z;
      dgx[at3 + 2 * hidden + j] = d_n;
      dgh[at3 + j] = d_r;
      dgh[at3 + hidden + j] = d_z;
      dgh[at3 + 2 * hidden + j] = d_n * r;
      carry[at + j] = out_prev ? d_h * z + out_prev[at + j] : d_h * z;
    }
  }
}

// The compiled entry points of the cell loops above, overloaded per dtype, each cloned per CPU target (the
// peephole branch is taken once per step, outside the loops). Each works on the hidden units [j0, j1) of every row:
// a step's units are independent of each other, so threads can share a step by units (`over_units`).
#define RNNBENCH_LSTM_CELL(T)                                                                                      \
  RNNBENCH_CLONES void lstm_forward_cell(bool peep, T* a, const T* c_prev, const T* w_p, T* c_new, T* tc,         \
                                         T* h_new, int64_t rows, int64_t hidden, int64_t j0, int64_t j1) {        \
    if (peep) {                                                                                                  \
      lstm_cell_forward<T, true>(a, c_prev, w_p, c_new, tc, h_new, rows, hidden, j0, j1);                        \
    } else {                                                                                                     \
      lstm_cell_forward<T, false>(a, c_prev, w_p, c_new, tc, h_new, rows, hidden, j0, j1);                       \
    }                                                                                                            \
  }                                                                                                              \
  RNNBENCH_CLONES void lstm_backward_cell(bool peep, const T* a, const T* c_prev, const T* tc, const T* w_p,      \
                                          const T* dh, T* dc, T* dg, int64_t rows, int64_t hidden, int64_t j0,    \
                                          int64_t j1) {                                                           \
    if (peep) {                                                                                                  \
      lstm_cell_backward<T, true>(a, c_prev, tc, w_p, dh, dc, dg, rows, hidden, j0, j1);                         \
    } else {                                                                                                     \
      lstm_cell_backward<T, false>(a, c_prev, tc, w_p, dh, dc, dg, rows, hidden, j0, j1);                        \
    }                                                                                                            \
  }
RNNBENCH_LSTM_CELL(float)
RNNBENCH_LSTM_CELL(double)
#undef RNNBENCH_LSTM_CELL
#define RNNBENCH_GRU_CELL(T)                                                                                       \
  RNNBENCH_CLONES void gru_forward_cell(const T* gx, const T* gh, const T* h, T* a, T* h_new, int64_t rows,        \
                                        int64_t hidden, int64_t j0, int64_t j1) {                                 \
    gru_cell_forward<T>(gx, gh, h, a, h_new, rows, hidden, j0, j1);                                              \
  }                                                                                                              \
  RNNBENCH_CLONES void gru_backward_cell(const T* a, const T* gh, const T* h_prev, const T* dh, const T* out_prev, \
                                         T* dgx, T* dgh, T* carry, int64_t rows, int64_t hidden, int64_t j0,      \
                                         int64_t j1) {                                                            \
    gru_cell_backward<T>(a, gh, h_prev, dh, out_prev, dgx, dgh, carry, rows, hidden, j0, j1);                    \
  }
RNNBENCH_GRU_CELL(float)
RNNBENCH_GRU_CELL(double)
#undef RNNBENCH_GRU_CELL

// Threads for a time loop: torch's intra-op count, at most one per 16 hidden units, one where a step's matmul is
// under 32k multiply-adds (a few microseconds: less than a barrier's cost on a loaded machine).
int threads_for(int64_t rows, int64_t hidden, int64_t blocks) {
  const int64_t work = rows * blocks * hidden * hidden;
  if (work < (int64_t(1) << 15)) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), hidden / 16)));
}

// Thread `part` of `parts`' hidden units, whole panels of `width` where there are enough units.
std::pair<int64_t, int64_t> units_of(int64_t part, int64_t parts, int64_t hidden, int64_t width) {
  const int64_t per = std::min(hidden, (hidden + parts * width - 1) / (parts * width) * width);
  return {std::min(hidden, part * per), std::min(hidden, (part + 1) * per)};
}

// The packed loops apply where the CPU has AVX2 and FMA, unless switched off (`use_packed`, for the tests that
// hold them equal to the ATen-matmul fused loops).
std::atomic<bool> packed_wanted{true};

// ---- The recurrent matmul on packed weights, threads sharing each step by hidden units ----
// Why: at B32 H256 the 200 recurrent matmuls h (B, H) @ W (H, 4H) of a forward took 37.6 ms in MKL at 2 threads,
// more than torch.nn.LSTM's whole forward: a library GEMM called once per step repacks W every call, gains only
// 1.5x from the second thread at these small M, and its threads join after every op. Here each thread packs, once
// per time loop, the columns of W that feed its own hidden units (its slice stays in its core's L2 cache over the
// steps), multiplies them with a register-blocked AVX2 kernel and runs its units' elementwise step itself; threads
// meet at one barrier per step (oneDNN's RNN scheme, Appleyard et al. 2016 on GPUs). Measured (B32 T200 H256, one
// process, quiet 2-core machine): the recurrent matmuls 26 ms vs MKL's 42-45 ms at 2 threads, 45 vs 56 ms at one.
// x86-64 with AVX2 and FMA only (checked at run time); elsewhere the fused loops call ATen's matmul as before.
#if defined(__x86_64__) && defined(__GNUC__)
#define RNNBENCH_AVX2 __attribute__((target("avx2,fma")))

template <typename T>
struct Simd;
template <>
struct Simd<float> {
  using V = __m256;
  static constexpr int lanes = 8;
  RNNBENCH_AVX2 static V zero() { return _mm256_setzero_ps(); }
  RNNBENCH_AVX2 static V load(const float* p) { return _mm256_loadu_ps(p); }
  RNNBENCH_AVX2 static void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  RNNBENCH_AVX2 static V splat(const float* p) { return _mm256_broadcast_ss(p); }
  RNNBENCH_AVX2 static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  RNNBENCH_AVX2 static V add(V a, V b) { return _mm256_add_ps(a, b); }
};
template <>
struct Simd<double> {
  using V = __m256d;
  static constexpr int lanes = 4;
  RNNBENCH_AVX2 static V zero() { return _mm256_setzero_pd(); }
  RNNBENCH_AVX2 static V load(const double* p) { return _mm256_loadu_pd(p); }
  RNNBENCH_AVX2 static void store(double* p, V x) { _mm256_storeu_pd(p, x); }
  RNNBENCH_AVX2 static V splat(const double* p) { return _mm256_broadcast_sd(p); }
  RNNBENCH_AVX2 static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  RNNBENCH_AVX2 static V add(V a, V b) { return _mm256_add_pd(a, b); }
};

bool avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

// c[0:MR, 0:cols] += a[0:MR, 0:K] @ panel, panel (K, NR) k-major, NR = 2 vectors: the MR x NR block of C stays in
// 2 MR registers over the whole K loop (MR <= 6: 12 accumulators, 2 loads and a broadcast, 16 ymm registers).
template <typename T, int MR>
RNNBENCH_AVX2 void kernel(const T* a, int64_t lda, const T* panel, int64_t k_len, T* c, int64_t ldc, int64_t cols) {
  using S = Simd<T>;
  constexpr int L = S::lanes;
  typename S::V c00 = S::zero(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
                c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < k_len; ++k) {
    const typename S::V b0 = S::load(panel + k * 2 * L), b1 = S::load(panel + k * 2 * L + L);
#define RNNBENCH_ROW(r)                                     \
  if constexpr (MR > r) {                                   \
    const typename S::V x = S::splat(a + r * lda + k);      \
    c##r##0 = S::fma(x, b0, c##r##0);                       \
    c##r##1 = S::fma(x, b1, c##r##1);                       \
  }
    RNNBENCH_ROW(0) RNNBENCH_ROW(1) RNNBENCH_ROW(2) RNNBENCH_ROW(3) RNNBENCH_ROW(4) RNNBENCH_ROW(5)
#undef RNNBENCH_ROW
  }
  T spill[2 * L];  // a last, narrower panel adds through a buffer
#define RNNBENCH_OUT(r)                                                      \
  if constexpr (MR > r) {                                                    \
    T* row = c + r * ldc;                                                    \
    if (cols == 2 * L) {                                                     \
      S::store(row, S::add(S::load(row), c##r##0));                          \
      S::store(row + L, S::add(S::load(row + L), c##r##1));                  \
    } else {                                                                 \
      S::store(spill, c##r##0);                                              \
      S::store(spill + L, c##r##1);                                          \
      for (int64_t j = 0; j < cols; ++j) row[j] += spill[j];                 \
    }                                                                        \
  }
  RNNBENCH_OUT(0) RNNBENCH_OUT(1) RNNBENCH_OUT(2) RNNBENCH_OUT(3) RNNBENCH_OUT(4) RNNBENCH_OUT(5)
#undef RNNBENCH_OUT
}

// The columns {g * stride + j : g < blocks, j0 <= j < j1} of a (K, N) matrix (any strides): the weights that feed
// hidden units j0..j1 through each of the `blocks` gates, packed in panels of NR columns, each block's last panel
// zero-padded.
template <typename T>
struct Packed {
  static constexpr int64_t NR = 2 * Simd<T>::lanes;
  int64_t k_len = 0, blocks = 0, stride = 0, j0 = 0, j1 = 0, panels = 0;  // panels per block
  std::vector<T> data;

  Packed(const Tensor& w, int64_t blocks_, int64_t stride_, int64_t j0_, int64_t j1_)
      : k_len(w.size(0)), blocks(blocks_), stride(stride_), j0(j0_), j1(j1_), panels((j1_ - j0_ + NR - 1) / NR) {
    data.assign(blocks * panels * k_len * NR, T(0));
    const T* src = w.data_ptr<T>();
    const int64_t sk = w.stride(0), sn = w.stride(1);
    T* out = data.data();
    for (int64_t g = 0; g < blocks; ++g) {
      for (int64_t p = 0; p < panels; ++p, out += k_len * NR) {
        const int64_t first = g * stride + j0 + p * NR, cols = std::min(NR, j1 - j0 - p * NR);
        for (int64_t k = 0; k < k_len; ++k) {
          for (int64_t j = 0; j < cols; ++j) out[k * NR + j] = src[k * sk + (first + j) * sn];
        }
      }
    }
  }

  // c[r, g * stride + j] += sum_k a[r, k] w[k, g * stride + j] for every row r < rows and packed column. K runs
  // in chunks of KC so that a panel's chunk (16 KiB) stays in L1 over all the row blocks (the backward's K = 4H
  // panels would stream from L2 otherwise).
  RNNBENCH_AVX2 void multiply_add(const T* a, int64_t lda, int64_t rows, T* c, int64_t ldc) const {
    constexpr int64_t KC = 256;
    const T* panel = data.data();
    for (int64_t g = 0; g < blocks; ++g) {
      for (int64_t p = 0; p < panels; ++p, panel += k_len * NR) {
        const int64_t first = g * stride + j0 + p * NR, cols = std::min(NR, j1 - j0 - p * NR);
        for (int64_t k0 = 0; k0 < k_len; k0 += KC) {
          const int64_t kc = std::min(KC, k_len - k0);
          const T* chunk = panel + k0 * NR;
          int64_t r = 0;
          for (; r + 6 <= rows; r += 6) kernel<T, 6>(a + r * lda + k0, lda, chunk, kc, c + r * ldc + first, ldc, cols);
          const T* a_r = a + r * lda + k0;
          T* c_r = c + r * ldc + first;
          switch (rows - r) {
            case 5: kernel<T, 5>(a_r, lda, chunk, kc, c_r, ldc, cols); break;
            case 4: kernel<T, 4>(a_r, lda, chunk, kc, c_r, ldc, cols); break;
            case 3: kernel<T, 3>(a_r, lda, chunk, kc, c_r, ldc, cols); break;
            case 2: kernel<T, 2>(a_r, lda, chunk, kc, c_r, ldc, cols); break;
            case 1: kernel<T, 1>(a_r, lda, chunk, kc, c_r, ldc, cols); break;
            default: break;
          }
        }
      }
    }
  }
};

bool packable() { return packed_wanted.load() && avx2_fma(); }

// One weight packing per part (thread) for `parts` parts, made before the threads start (an allocation failure is
// an ordinary exception here, not one thrown inside an OpenMP region).
template <typename T>
std::vector<Packed<T>> pack_parts(const Tensor& w, int64_t blocks, int64_t hidden, int parts) {
  std::vector<Packed<T>> packs;
  for (int part = 0; part < parts; ++part) {
    const auto [j0, j1] = units_of(part, parts, hidden, Packed<T>::NR);
    packs.emplace_back(w, blocks, hidden, j0, j1);
  }
  return packs;
}

// Runs steps t = 0..steps-1 (reversed if asked) on `parts` threads: first(t, part), a barrier, then second(t, part).
// A thread that the OpenMP runtime did not start (a smaller team) has its parts taken by the others, so every part
// runs each step before the barrier whatever the team's size. Nothing in first / second may throw.
template <typename First, typename Second>
void over_units(int64_t steps, bool reversed, int parts, const First& first, const Second& second) {
#pragma omp parallel num_threads(parts)
  {
#ifdef _OPENMP
    const int team = omp_get_num_threads(), id = omp_get_thread_num();
#else
    const int team = 1, id = 0;
#endif
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reversed ? steps - 1 - s : s;
      for (int part = id; part < parts; part += team) first(t, part);
#pragma omp barrier
      for (int part = id; part < parts; part += team) second(t, part);
    }
  }
}
#else
bool packable() { return false; }
#endif

template <typename T>
const T* data_or_null(const c10::optional<Tensor>& x) {
  return x ? x->data_ptr<T>() : nullptr;
}

// Time loops run fused since the module loaded (forward and backward counted apart), so that tests can tell that
// an unmasked layer took the fused loops and a masked one the ATen ops.
std::atomic<int64_t> fused_forwards{0}, fused_backwards{0};
// Of those, the ones that ran on packed weights (`packable`).
std::atomic<int64_t> packed_forwards{0}, packed_backwards{0};

// Whether the fused loops apply: no mask, float32 / float64, and every tensor they index by pointer (the
// peepholes too, where given) dense, on the CPU and of one dtype. The matmuls' operands may be laid out anyhow.
bool fusable(const c10::optional<Tensor>& mask, const c10::optional<Tensor>& w_p, std::vector<Tensor> dense) {
  if (mask) return false;
  if (w_p) dense.push_back(*w_p);
  const auto dtype = dense.front().scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble) return false;
  for (const Tensor& x : dense) {
    if (!x.is_contiguous() || x.scalar_type() != dtype || x.device().type() != at::kCPU) return false;
  }
  return true;
}

// The unmasked LSTM forward with the fused elementwise step (lstm_forward's contract).
// c_{t-1} is read from cs[t] (cs[0] = c0, as the caller set it).
template <typename T>
void lstm_forward_fused(const Tensor& h0, const Tensor& w2_t, const c10::optional<Tensor>& w_p, Tensor acts,
                        Tensor out, Tensor cs, Tensor tcs) {
  const int64_t steps = acts.size(0), rows = acts.size(1), hidden = out.size(2);
  const T* peep = data_or_null<T>(w_p);
  Tensor h = h0;
  for (int64_t t = 0; t < steps; ++t) {
    Tensor a = acts.select(0, t);  // (B, 4H): gx_t
    T* ap = a.data_ptr<T>();
    for (int64_t b = 0; b < rows; ++b) {  // 2 gx_g, then + 2 h W_g: 2 * (g pre-activation)
      T* g = ap + b * 4 * hidden + 2 * hidden;
      for (int64_t j = 0; j < hidden; ++j) g[j] += g[j];
    }
    a.addmm_(h, w2_t);
    Tensor h_new = out.select(0, t);
    lstm_forward_cell(peep != nullptr, ap, cs.select(0, t).data_ptr<T>(), peep, cs.select(0, t + 1).data_ptr<T>(),
                      tcs.select(0, t).data_ptr<T>(), h_new.data_ptr<T>(), rows, hidden, 0, hidden);
    h = h_new;
  }
}

// The unmasked LSTM backward with the fused elementwise step (lstm_backward's contract).
template <typename T>
std::vector<Tensor> lstm_backward_fused(const Tensor& grad_out, const Tensor& dh0, const Tensor& dc0,
                                        const Tensor& acts, const Tensor& cs, const Tensor& tcs, const Tensor& w_hh,
                                        const c10::optional<Tensor>& w_p, Tensor dgates) {
  const int64_t steps = acts.size(0), rows = acts.size(1), hidden = tcs.size(2);
  const T* peep = data_or_null<T>(w_p);
  Tensor dh = dh0.contiguous();
  Tensor dc = dc0.clone(at::MemoryFormat::Contiguous);  // overwritten step by step
  for (int64_t t = steps - 1; t >= 0; --t) {
    Tensor dg = dgates.select(0, t);
    lstm_backward_cell(peep != nullptr, acts.select(0, t).data_ptr<T>(), cs.select(0, t).data_ptr<T>(),
                       tcs.select(0, t).data_ptr<T>(), peep, dh.data_ptr<T>(), dc.data_ptr<T>(), dg.data_ptr<T>(),
                       rows, hidden, 0, hidden);
    dh = t > 0 ? at::addmm(grad_out.select(0, t - 1), dg, w_hh) : at::mm(dg, w_hh);
  }
  return {dh, dc};
}

// The unmasked GRU forward with the fused elementwise step (gru_forward's contract).
template <typename T>
void gru_forward_fused(const Tensor& gx, const Tensor& h0, const Tensor& w_t, const Tensor& b_hh, Tensor acts,
                       Tensor gh, Tensor out) {
  const int64_t steps = gx.size(0), rows = gx.size(1), hidden = out.size(2);
  Tensor h = h0.contiguous();
  for (int64_t t = 0; t < steps; ++t) {
    Tensor g = gh.select(0, t), h_new = out.select(0, t);
    at::addmm_out(g, b_hh, h, w_t);
    gru_forward_cell(gx.select(0, t).data_ptr<T>(), g.data_ptr<T>(), h.data_ptr<T>(),
                     acts.select(0, t).data_ptr<T>(), h_new.data_ptr<T>(), rows, hidden, 0, hidden);
    h = h_new;
  }
}

// The unmasked GRU backward with the fused elementwise step (gru_backward's contract).
template <typename T>
Tensor gru_backward_fused(const Tensor& grad_out, const Tensor& dh0, const Tensor& acts, const Tensor& gh,
                          const Tensor& h0, const Tensor& hs, const Tensor& w_hh, Tensor dgx, Tensor dgh) {
  const int64_t steps = acts.size(0), rows = acts.size(1), hidden = hs.size(2);
  const Tensor go = grad_out.contiguous(), h_first = h0.contiguous();
  Tensor dh = dh0.contiguous(), carry = at::empty_like(dh, at::MemoryFormat::Contiguous);
  for (int64_t t = steps - 1; t >= 0; --t) {
    Tensor dg = dgh.select(0, t);
    gru_backward_cell(acts.select(0, t).data_ptr<T>(), gh.select(0, t).data_ptr<T>(),
                      (t > 0 ? hs.select(0, t - 1) : h_first).data_ptr<T>(), dh.data_ptr<T>(),
                      t > 0 ? go.select(0, t - 1).data_ptr<T>() : nullptr, dgx.select(0, t).data_ptr<T>(),
                      dg.data_ptr<T>(), carry.data_ptr<T>(), rows, hidden, 0, hidden);
    dh = at::addmm(carry, dg, w_hh);
  }
  return dh;
}
#ifdef RNNBENCH_AVX2
// Whether the packed loops can take these tensors: the fused loops' conditions (checked before) and every other
// operand of the same dtype on the CPU (the packing and the kernel read them by pointer, whatever their strides).
bool packable_with(const Tensor& like, std::initializer_list<Tensor> operands) {
  if (!packable()) return false;
  for (const Tensor& x : operands) {
    if (x.scalar_type() != like.scalar_type() || x.device().type() != at::kCPU) return false;
  }
  return true;
}


// The unmasked LSTM forward on packed weights, threads sharing each step by units (lstm_forward's contract and
// lstm_forward_fused's arithmetic; only the matmul's sums run in another order).
template <typename T>
void lstm_forward_packed(const Tensor& h0, const Tensor& w2_t, const T* peep, Tensor acts, Tensor out, Tensor cs,
                         Tensor tcs) {
  const int64_t steps = acts.size(0), rows = acts.size(1), hidden = out.size(2), width = 4 * hidden;
  const int64_t plane = rows * hidden;
  const int parts = threads_for(rows, hidden, 4);
  const std::vector<Packed<T>> packs = pack_parts<T>(w2_t, 4, hidden, parts);
  const Tensor h_first = h0.contiguous();
  const T* h0p = h_first.data_ptr<T>();
  T *a = acts.data_ptr<T>(), *o = out.data_ptr<T>(), *c = cs.data_ptr<T>(), *tc = tcs.data_ptr<T>();
  over_units(
      steps, false, parts,
      [&](int64_t t, int part) {
        const Packed<T>& w = packs[part];
        T* a_t = a + t * rows * width;
        for (int64_t b = 0; b < rows; ++b) {  // 2 gx_g, then + 2 h W_g: 2 * (g pre-activation)
          T* g = a_t + b * width + 2 * hidden;
          for (int64_t j = w.j0; j < w.j1; ++j) g[j] += g[j];
        }
        w.multiply_add(t > 0 ? o + (t - 1) * plane : h0p, hidden, rows, a_t, width);
        lstm_forward_cell(peep != nullptr, a_t, c + t * plane, peep, c + (t + 1) * plane, tc + t * plane,
                          o + t * plane, rows, hidden, w.j0, w.j1);
      },
      [](int64_t, int) {});
}

// The unmasked LSTM backward on packed weights (lstm_backward's contract): per step each thread's units' deltas,
// a barrier, then its units' dh_{t-1} = grad_out_{t-1} + dgates_t W_hh.
template <typename T>
std::vector<Tensor> lstm_backward_packed(const Tensor& grad_out, const Tensor& dh0, const Tensor& dc0,
                                         const Tensor& acts, const Tensor& cs, const Tensor& tcs, const Tensor& w_hh,
                                         const T* peep, Tensor dgates) {
  const int64_t steps = acts.size(0), rows = acts.size(1), hidden = tcs.size(2), width = 4 * hidden;
  const int64_t plane = rows * hidden;
  const int parts = threads_for(rows, hidden, 4);
  const std::vector<Packed<T>> packs = pack_parts<T>(w_hh, 1, hidden, parts);
  Tensor dh = dh0.clone(at::MemoryFormat::Contiguous), dc = dc0.clone(at::MemoryFormat::Contiguous);
  const Tensor go = grad_out.contiguous();
  const T *a = acts.data_ptr<T>(), *c = cs.data_ptr<T>(), *tc = tcs.data_ptr<T>(), *g_out = go.data_ptr<T>();
  T *dhp = dh.data_ptr<T>(), *dcp = dc.data_ptr<T>(), *dg = dgates.data_ptr<T>();
  over_units(
      steps, true, parts,
      [&](int64_t t, int part) {
        const Packed<T>& w = packs[part];
        lstm_backward_cell(peep != nullptr, a + t * rows * width, c + t * plane, tc + t * plane, peep, dhp, dcp,
                           dg + t * rows * width, rows, hidden, w.j0, w.j1);
      },
      [&](int64_t t, int part) {
        const Packed<T>& w = packs[part];
        const T* base = t > 0 ? g_out + (t - 1) * plane : nullptr;  // the output's gradient of step t-1
        for (int64_t b = 0; b < rows; ++b) {
          for (int64_t j = w.j0; j < w.j1; ++j) dhp[b * hidden + j] = base ? base[b * hidden + j] : T(0);
        }
        w.multiply_add(dg + t * rows * width, width, rows, dhp, hidden);
      });
  return {dh, dc};
}

// The unmasked GRU forward on packed weights (gru_forward's contract): gh_t = b_hh + h W_hh^T per thread's units.
template <typename T>
void gru_forward_packed(const Tensor& gx, const Tensor& h0, const Tensor& w_t, const Tensor& b_hh, Tensor acts,
                        Tensor gh, Tensor out) {
  const int64_t steps = gx.size(0), rows = gx.size(1), hidden = out.size(2), width = 3 * hidden;
  const int64_t plane = rows * hidden;
  const int parts = threads_for(rows, hidden, 3);
  const std::vector<Packed<T>> packs = pack_parts<T>(w_t, 3, hidden, parts);
  const Tensor h_first = h0.contiguous(), bias = b_hh.contiguous();
  const T *h0p = h_first.data_ptr<T>(), *bp = bias.data_ptr<T>(), *x = gx.data_ptr<T>();
  T *a = acts.data_ptr<T>(), *g = gh.data_ptr<T>(), *o = out.data_ptr<T>();
  over_units(
      steps, false, parts,
      [&](int64_t t, int part) {
        const Packed<T>& w = packs[part];
        T* g_t = g + t * rows * width;
        const T* h = t > 0 ? o + (t - 1) * plane : h0p;
        for (int64_t b = 0; b < rows; ++b) {
          for (int64_t k = 0; k < 3; ++k) {
            for (int64_t j = w.j0; j < w.j1; ++j) g_t[b * width + k * hidden + j] = bp[k * hidden + j];
          }
        }
        w.multiply_add(h, hidden, rows, g_t, width);
        gru_forward_cell(x + t * rows * width, g_t, h, a + t * rows * width, o + t * plane, rows, hidden, w.j0,
                         w.j1);
      },
      [](int64_t, int) {});
}

// The unmasked GRU backward on packed weights (gru_backward's contract): each thread's units' deltas, a barrier,
// then its units' dh_{t-1} = carry + dgh_t W_hh.
template <typename T>
Tensor gru_backward_packed(const Tensor& grad_out, const Tensor& dh0, const Tensor& acts, const Tensor& gh,
                           const Tensor& h0, const Tensor& hs, const Tensor& w_hh, Tensor dgx, Tensor dgh) {
  const int64_t steps = acts.size(0), rows = acts.size(1), hidden = hs.size(2), width = 3 * hidden;
  const int64_t plane = rows * hidden;
  const int parts = threads_for(rows, hidden, 3);
  const std::vector<Packed<T>> packs = pack_parts<T>(w_hh, 1, hidden, parts);
  const Tensor go = grad_out.contiguous(), h_first = h0.contiguous();
  Tensor dh = dh0.clone(at::MemoryFormat::Contiguous), carry = at::empty_like(dh, at::MemoryFormat::Contiguous);
  const T *a = acts.data_ptr<T>(), *g = gh.data_ptr<T>(), *h = hs.data_ptr<T>(), *g_out = go.data_ptr<T>();
  const T* h0p = h_first.data_ptr<T>();
  T *dhp = dh.data_ptr<T>(), *cp = carry.data_ptr<T>(), *dx = dgx.data_ptr<T>(), *dg = dgh.data_ptr<T>();
  over_units(
      steps, true, parts,
      [&](int64_t t, int part) {
        const Packed<T>& w = packs[part];
        gru_backward_cell(a + t * rows * width, g + t * rows * width, t > 0 ? h + (t - 1) * plane : h0p, dhp,
                          t > 0 ? g_out + (t - 1) * plane : nullptr, dx + t * rows * width, dg + t * rows * width, cp,
                          rows, hidden, w.j0, w.j1);
      },
      [&](int64_t t, int part) {
        const Packed<T>& w = packs[part];
        for (int64_t b = 0; b < rows; ++b) {
          for (int64_t j = w.j0; j < w.j1; ++j) dhp[b * hidden + j] = cp[b * hidden + j];
        }
        w.multiply_add(dg + t * rows * width, width, rows, dhp, hidden);
      });
  return dh;
}
#endif
}  // namespace

// LSTM / peephole LSTM forward over time. acts (T, B, 4H) holds gx on entry (its g block doubled here, step by
// step) and the activations on return; w2_t (H, 4H) with the g columns doubled; every tanh is 2 sigmoid(2x) - 1.
// Fills out, tcs, cs[1:] (where masked: the carried states, hs too), c_new_all (the unmasked new cell states;
// cs[1:] itself without a mask).
void lstm_forward(const Tensor& h0, const Tensor& c0, const Tensor& w2_t, const c10::optional<Tensor>& w_p,
                  const c10::optional<Tensor>& mask, Tensor acts, Tensor out, Tensor hs, Tensor cs,
                  Tensor c_new_all, Tensor tcs) {
  if (fusable(mask, w_p, {acts, out, cs, tcs})) {
    AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "lstm_forward_fused", [&] {
#ifdef RNNBENCH_AVX2
      if (packable_with(acts, {h0, w2_t})) {
        lstm_forward_packed<scalar_t>(h0, w2_t, data_or_null<scalar_t>(w_p), acts, out, cs, tcs);
        ++packed_forwards;
        return;
      }
#endif
      lstm_forward_fused<scalar_t>(h0, w2_t, w_p, acts, out, cs, tcs);
    });
    ++fused_forwards;
    return;
  }
  const int64_t steps = acts.size(0), hidden = out.size(2);
  const Tensor one = at::ones({}, acts.options());
  Tensor w_if, w_o;
  if (w_p) {
    w_if = w_p->narrow(0, 0, 2);  // (2, H)
    w_o = w_p->select(0, 2);
  }
  Tensor h = h0, c = c0;
  for (int64_t t = 0; t < steps; ++t) {
    Tensor a = acts.select(0, t);  // (B, 4H): gx_t
    Tensor i = block(a, 0, hidden), f = block(a, 1, hidden), g = block(a, 2, hidden), o = block(a, 3, hidden);
    {
      c10::ParallelGuard serial(true);
      g.add_(g);  // 2 gx_g, then + 2 h W_g: 2 * (g pre-activation)
    }
    a.addmm_(h, w2_t);
    c10::ParallelGuard serial(true);
    if (w_p) a.narrow(1, 0, 2 * hidden).view({a.size(0), 2, hidden}).addcmul_(w_if, c.unsqueeze(1));
    a.narrow(1, 0, 3 * hidden).sigmoid_();
    g.add_(g).sub_(one);
    Tensor c_new = c_new_all.select(0, t), tc = tcs.select(0, t), h_new = out.select(0, t);
    at::addcmul_out(c_new, f * c, i, g);
    if (w_p) o.addcmul_(w_o, c_new);
    o.sigmoid_();
    at::add_out(tc, c_new, c_new).sigmoid_();
    tc.add_(tc).sub_(one);
    at::mul_out(h_new, o, tc);
    if (mask) {
      const Tensor keep = mask->select(0, t);  // (B, 1)
      Tensor h_out = hs.select(0, t), c_out = cs.select(0, t + 1);
      at::where_out(h_out, keep, h_new, h);
      at::where_out(c_out, keep, c_new, c);
      h = h_out;
      c = c_out;
    } else {
      h = h_new;
      c = c_new;
    }
  }
}

// LSTM / peephole LSTM backward over time (reversed). grad_out already masked; acts, cs, tcs as saved by
// lstm_forward. Fills dgates (T, B, 4H); returns (dh_0, dc_0), the gradients of the initial state.
std::vector<Tensor> lstm_backward(const Tensor& grad_out, Tensor dh, Tensor dc, const Tensor& acts, const Tensor& cs,
                                  const Tensor& tcs, const Tensor& w_hh, const c10::optional<Tensor>& w_p,
                                  const c10::optional<Tensor>& mask, Tensor dgates) {
  if (fusable(mask, w_p, {acts, cs, tcs, dgates}) && dh.scalar_type() == acts.scalar_type() &&
      dc.scalar_type() == acts.scalar_type()) {
    std::vector<Tensor> result;
    AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "lstm_backward_fused", [&] {
#ifdef RNNBENCH_AVX2
      if (packable_with(acts, {grad_out, w_hh})) {
        result = lstm_backward_packed<scalar_t>(grad_out, dh, dc, acts, cs, tcs, w_hh, data_or_null<scalar_t>(w_p),
                                                dgates);
        ++packed_backwards;
        return;
      }
#endif
      result = lstm_backward_fused<scalar_t>(grad_out, dh, dc, acts, cs, tcs, w_hh, w_p, dgates);
    });
    ++fused_backwards;
    return result;
  }
  const int64_t steps = acts.size(0), hidden = tcs.size(2);
  const Tensor one = at::ones({}, acts.options());
  for (int64_t t = steps - 1; t >= 0; --t) {
    const Tensor a = acts.select(0, t);
    const Tensor i = block(a, 0, hidden), f = block(a, 1, hidden), g = block(a, 2, hidden), o = block(a, 3, hidden);
    Tensor dg = dgates.select(0, t);
    c10::optional<Tensor> base;  // dL/dh_{t-1} from outside the recurrence: the output, or the carried state
    {
      c10::ParallelGuard serial(true);
      Tensor k_i = block(dg, 0, hidden), k_f = block(dg, 1, hidden), k_g = block(dg, 2, hidden);
      Tensor k_o = block(dg, 3, hidden);
      const Tensor c_prev = cs.select(0, t), tc = tcs.select(0, t);
      at::addcmul_out(dg, a, a, a, -1);  // s (1 - s) for the sigmoid gates
      at::addcmul_out(k_g, one, g, g, -1);  // 1 - g^2
      k_i.mul_(g);
      k_f.mul_(c_prev);
      k_g.mul_(i);
      k_o.mul_(tc);
      Tensor a_c = at::addcmul(one, tc, tc, -1).mul_(o);
      Tensor a_prev = f;
      if (w_p) {
        a_c.addcmul_(k_o, w_p->select(0, 2));
        a_prev = at::addcmul(f, k_i, w_p->select(0, 0)).addcmul_(k_f, w_p->select(0, 1));
      }
      c10::optional<Tensor> keep;
      if (mask) keep = mask->select(0, t);
      const Tensor dh_in = keep ? dh * *keep : dh;
      Tensor dcs = at::addcmul(dc, dh_in, a_c);
      if (keep) dcs = at::where(*keep, dcs, 0);
      dg.mul_(at::cat({dcs, dcs, dcs, dh_in}, 1));
      dc = keep ? at::where(*keep, dcs * a_prev, dc) : dcs.mul_(a_prev);
      if (t > 0) base = grad_out.select(0, t - 1);
      if (keep) base = base ? at::where(*keep, *base, *base + dh) : at::where(*keep, 0, dh);
    }
    dh = base ? at::addmm(*base, dg, w_hh) : at::mm(dg, w_hh);
  }
  return {dh, dc};
}

// GRU forward over time: gh = h W_hh^T + b_hh, r, z = sigmoid(gx + gh), n = tanh(gx_n + r gh_n),
// h' = lerp(n, h, z). w_t (H, 3H). Fills acts (r, z, n), gh, out and, where masked, hs.
void gru_forward(const Tensor& gx, const Tensor& h0, const Tensor& w_t, const Tensor& b_hh,
                 const c10::optional<Tensor>& mask, Tensor acts, Tensor gh, Tensor out, Tensor hs) {
  if (fusable(mask, c10::nullopt, {gx, acts, gh, out})) {
    AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "gru_forward_fused", [&] {
#ifdef RNNBENCH_AVX2
      if (packable_with(acts, {h0, w_t, b_hh})) {
        gru_forward_packed<scalar_t>(gx, h0, w_t, b_hh, acts, gh, out);
        ++packed_forwards;
        return;
      }
#endif
      gru_forward_fused<scalar_t>(gx, h0, w_t, b_hh, acts, gh, out);
    });
    ++fused_forwards;
    return;
  }
  const int64_t steps = gx.size(0), hidden = out.size(2);
  Tensor h = h0;
  for (int64_t t = 0; t < steps; ++t) {
    const Tensor x = gx.select(0, t);
    Tensor g = gh.select(0, t), a = acts.select(0, t), h_new = out.select(0, t);
    at::addmm_out(g, b_hh, h, w_t);
    c10::ParallelGuard serial(true);
    Tensor a_rz = a.narrow(1, 0, 2 * hidden), n = block(a, 2, hidden);
    at::add_out(a_rz, x.narrow(1, 0, 2 * hidden), g.narrow(1, 0, 2 * hidden)).sigmoid_();
    at::addcmul_out(n, block(x, 2, hidden), block(a, 0, hidden), block(g, 2, hidden)).tanh_();
    at::lerp_out(h_new, n, h, block(a, 1, hidden));
    if (mask) {
      Tensor h_out = hs.select(0, t);
      at::where_out(h_out, mask->select(0, t), h_new, h);
      h_new = h_out;
    }
    h = h_new;
  }
}

// GRU backward over time (reversed). grad_out already masked; acts, gh, hs as saved by gru_forward. Fills dgx
// (input-side deltas r, z, n) and dgh (as dgx, r * (n delta) in the n block); returns dh_0.
Tensor gru_backward(const Tensor& grad_out, Tensor dh, const Tensor& acts, const Tensor& gh, const Tensor& h0,
                    const Tensor& hs, const Tensor& w_hh, const c10::optional<Tensor>& mask, Tensor dgx, Tensor dgh) {
  if (fusable(mask, c10::nullopt, {acts, gh, hs, dgx, dgh}) && dh.scalar_type() == acts.scalar_type() &&
      grad_out.scalar_type() == acts.scalar_type() && h0.scalar_type() == acts.scalar_type()) {
    Tensor result;
    AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "gru_backward_fused", [&] {
#ifdef RNNBENCH_AVX2
      if (packable_with(acts, {w_hh})) {
        result = gru_backward_packed<scalar_t>(grad_out, dh, acts, gh, h0, hs, w_hh, dgx, dgh);
        ++packed_backwards;
        return;
      }
#endif
      result = gru_backward_fused<scalar_t>(grad_out, dh, acts, gh, h0, hs, w_hh, dgx, dgh);
    });
    ++fused_backwards;
    return result;
  }
  const int64_t steps = acts.size(0), hidden = hs.size(2);
  const Tensor one = at::ones({}, acts.options());
  for (int64_t t = steps - 1; t >= 0; --t) {
    const Tensor a = acts.select(0, t);
    const Tensor r = block(a, 0, hidden), z = block(a, 1, hidden), n = block(a, 2, hidden);
    const Tensor g_n = block(gh.select(0, t), 2, hidden);
    Tensor d = dgx.select(0, t), dg = dgh.select(0, t);
    Tensor d_rz = d.narrow(1, 0, 2 * hidden), d_r = block(d, 0, hidden), d_z = block(d, 1, hidden);
    Tensor d_n = block(d, 2, hidden);
    const Tensor h_prev = t > 0 ? hs.select(0, t - 1) : h0;
    Tensor carry;
    {
      c10::ParallelGuard serial(true);
      c10::optional<Tensor> keep;
      if (mask) keep = mask->select(0, t);
      const Tensor dh_in = keep ? dh * *keep : dh;
      at::addcmul_out(d_rz, a.narrow(1, 0, 2 * hidden), a.narrow(1, 0, 2 * hidden), a.narrow(1, 0, 2 * hidden), -1);
      at::addcmul_out(d_n, one, n, n, -1).mul_(at::addcmul(dh_in, dh_in, z, -1));
      d_z.mul_(h_prev - n).mul_(dh_in);
      d_r.mul_(d_n).mul_(g_n);
      dg.narrow(1, 0, 2 * hidden).copy_(d_rz);
      Tensor dg_n = block(dg, 2, hidden);
      at::mul_out(dg_n, d_n, r);
      if (keep) {
        carry = at::where(*keep, dh * z, dh);
        if (t > 0) carry.add_(grad_out.select(0, t - 1));
      } else {
        carry = t > 0 ? at::addcmul(grad_out.select(0, t - 1), dh, z) : dh * z;
      }
    }
    dh = at::addmm(carry, dg, w_hh);
  }
  return dh;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  m.def("fused_calls", [] { return std::vector<int64_t>{fused_forwards.load(), fused_backwards.load()}; });
  m.def("packed_calls", [] { return std::vector<int64_t>{packed_forwards.load(), packed_backwards.load()}; });
  m.def("use_packed", [](bool on) { return packed_wanted.exchange(on); });
  m.def("packed_available", &packable);
  m.def("packed_threads", &threads_for);
}
