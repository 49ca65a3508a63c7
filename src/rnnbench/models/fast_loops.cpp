// The time loops of fast_lstm.py and fast_gru.py in C++: the same ATen ops in the same order, without Python's
// per-op cost (~100 us per time step, forward + backward, on a loaded 2-core CPU). Each function fills tensors
// the Python side allocated; the Python docstrings there give the equations and shapes. Built once by
// fast_loops.py and cached by torch.utils.cpp_extension; the Python loops stay as the fallback and the reference.
//
// One difference from Python: each step's elementwise ops run on one thread (c10::ParallelGuard), the matmuls on
// all of torch's. A (B, 4H) op is a few microseconds of work, less than waking and joining OpenMP threads, which
// on a loaded machine can wait for a core; oneDNN's fused kernel likewise parallelises the step, not each op.
// Elementwise results do not depend on the thread count.
#include <c10/util/ParallelGuard.h>
#include <torch/extension.h>

using at::Tensor;

namespace {

Tensor block(const Tensor& x, int64_t k, int64_t hidden) { return x.narrow(1, k * hidden, hidden); }

}  // namespace

// LSTM / peephole LSTM forward over time. acts (T, B, 4H) holds gx on entry (its g block doubled here, step by
// step) and the activations on return; w2_t (H, 4H) with the g columns doubled; every tanh is 2 sigmoid(2x) - 1.
// Fills out, tcs, cs[1:] (where masked: the carried states, hs too), c_new_all (the unmasked new cell states;
// cs[1:] itself without a mask).
void lstm_forward(const Tensor& h0, const Tensor& c0, const Tensor& w2_t, const c10::optional<Tensor>& w_p,
                  const c10::optional<Tensor>& mask, Tensor acts, Tensor out, Tensor hs, Tensor cs,
                  Tensor c_new_all, Tensor tcs) {
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
}
