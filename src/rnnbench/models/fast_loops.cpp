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
// for a core; oneDNN's fused kernel likewise parallelises the step, not each op. The fused loops are serial too.
// Elementwise results do not depend on the thread count.
#include <c10/util/ParallelGuard.h>
#include <torch/extension.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

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
                              int64_t hidden) {
  for (int64_t b = 0; b < rows; ++b) {
    T* __restrict__ row = a + b * 4 * hidden;
    const T* __restrict__ cp = c_prev + b * hidden;
    T* __restrict__ cn = c_new + b * hidden;
    T* __restrict__ tcr = tc + b * hidden;
    T* __restrict__ hr = h_new + b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
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
                               T* __restrict__ dg, int64_t rows, int64_t hidden) {
  for (int64_t b = 0; b < rows; ++b) {
    const T* __restrict__ row = a + b * 4 * hidden;
    T* __restrict__ drow = dg + b * 4 * hidden;
    const int64_t at = b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
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
                                      T* __restrict__ a, T* __restrict__ h_new, int64_t rows, int64_t hidden) {
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t at3 = b * 3 * hidden, at = b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
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
                                       T* __restrict__ carry, int64_t rows, int64_t hidden) {
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t at3 = b * 3 * hidden, at = b * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
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
// peephole branch is taken once per step, outside the loops).
#define RNNBENCH_LSTM_CELL(T)                                                                                      \
  RNNBENCH_CLONES void lstm_forward_cell(bool peep, T* a, const T* c_prev, const T* w_p, T* c_new, T* tc,         \
                                         T* h_new, int64_t rows, int64_t hidden) {                                \
    if (peep) {                                                                                                  \
      lstm_cell_forward<T, true>(a, c_prev, w_p, c_new, tc, h_new, rows, hidden);                                \
    } else {                                                                                                     \
      lstm_cell_forward<T, false>(a, c_prev, w_p, c_new, tc, h_new, rows, hidden);                               \
    }                                                                                                            \
  }                                                                                                              \
  RNNBENCH_CLONES void lstm_backward_cell(bool peep, const T* a, const T* c_prev, const T* tc, const T* w_p,      \
                                          const T* dh, T* dc, T* dg, int64_t rows, int64_t hidden) {              \
    if (peep) {                                                                                                  \
      lstm_cell_backward<T, true>(a, c_prev, tc, w_p, dh, dc, dg, rows, hidden);                                 \
    } else {                                                                                                     \
      lstm_cell_backward<T, false>(a, c_prev, tc, w_p, dh, dc, dg, rows, hidden);                                \
    }                                                                                                            \
  }
RNNBENCH_LSTM_CELL(float)
RNNBENCH_LSTM_CELL(double)
#undef RNNBENCH_LSTM_CELL
#define RNNBENCH_GRU_CELL(T)                                                                                       \
  RNNBENCH_CLONES void gru_forward_cell(const T* gx, const T* gh, const T* h, T* a, T* h_new, int64_t rows,        \
                                        int64_t hidden) {                                                         \
    gru_cell_forward<T>(gx, gh, h, a, h_new, rows, hidden);                                                      \
  }                                                                                                              \
  RNNBENCH_CLONES void gru_backward_cell(const T* a, const T* gh, const T* h_prev, const T* dh, const T* out_prev, \
                                         T* dgx, T* dgh, T* carry, int64_t rows, int64_t hidden) {                \
    gru_cell_backward<T>(a, gh, h_prev, dh, out_prev, dgx, dgh, carry, rows, hidden);                            \
  }
RNNBENCH_GRU_CELL(float)
RNNBENCH_GRU_CELL(double)
#undef RNNBENCH_GRU_CELL

template <typename T>
const T* data_or_null(const c10::optional<Tensor>& x) {
  return x ? x->data_ptr<T>() : nullptr;
}

// Time loops run fused since the module loaded (forward and backward counted apart), so that tests can tell that
// an unmasked layer took the fused loops and a masked one the ATen ops.
std::atomic<int64_t> fused_forwards{0}, fused_backwards{0};

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
                      tcs.select(0, t).data_ptr<T>(), h_new.data_ptr<T>(), rows, hidden);
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
                       rows, hidden);
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
                     acts.select(0, t).data_ptr<T>(), h_new.data_ptr<T>(), rows, hidden);
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
                      dg.data_ptr<T>(), carry.data_ptr<T>(), rows, hidden);
    dh = at::addmm(carry, dg, w_hh);
  }
  return dh;
}
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
}
