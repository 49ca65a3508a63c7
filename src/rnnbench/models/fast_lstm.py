"""LSTM and peephole LSTM over time with a hand-written backward (BPTT), for the custom path's speed.

Why: the eager step loop of `layer.run_layer` records ~10 autograd nodes per step, and its backward replays them one
by one: 1.4-5x slower than `torch.nn.LSTM` per train step on CPU (`rnnbench-bench` measures it). Fused RNN kernels
(cuDNN, oneDNN; Appleyard et al. 2016, "Optimizing performance of recurrent neural networks on GPUs") are fast for
three reasons this module copies: the forward saves the gate activations instead of a graph, the backward walks time
in reverse computing only the per-step deltas that truly recur (dh, dc), and the recurrent weight gradient of all
steps is ONE matmul after the loop, dW_hh = sum_t dgates_t^T h_{t-1} as a (4H x T*B) @ (T*B x H) product. The input
projection stays hoisted and under autograd: its gradient dgx is just the stacked dgates, so dW_ih and the biases
come from torch.

Two CPU findings shape the code (measured on 2 cores, torch 2.13): torch.tanh is ~3x slower than sigmoid and with
2 threads parallelises per-step sizes into heavy contention, so every tanh is 2 sigmoid(2x) - 1; and elementwise
passes over whole (T, B, H) tensors stream from memory and cost more than the same work done per step on
cache-resident (B, H) slices, so all elementwise work stays inside the time loops (views prepared by one `unbind`).

Semantics are those of `run_layer` with `cells.lstm_step` / `cells.peephole_lstm_step` (gate order i, f, g, o;
peepholes after Gers & Schmidhuber 2000: i, f see c_{t-1}, o sees c_t), including the mask: where the mask is
False the state is carried unchanged and the output is zero. The peephole LSTM is this LSTM plus diagonal terms,
one code path for both. First-order gradients only (no double backward).

The two time loops run compiled (`fast_loops.cpp`: the same ops in C++, the unmasked step fused; on AVX2 CPUs its
recurrent matmul on packed weights, threads sharing each step by units) where a compiler exists; the Python loops
here are the reference and the fallback.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnbench.models.amp import float32_backward, float32_forward
from rnnbench.models.fast_loops import compiled

Peepholes = tuple[Tensor, Tensor, Tensor]  # (w_pi, w_pf, w_po), each (H,)


def _tanh_from_sigmoid_(s: Tensor, one: Tensor) -> Tensor:
    """In place 2 s - 1 = tanh(y) for s = sigmoid(2 y); `one` is a 0-dim tensor (Python scalars cost a copy)."""
    return s.add_(s).sub_(one)


def _forward(
    gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, w_p: Tensor | None, mask: Tensor | None, scratch: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run the recurrence without autograd; returns (acts, out, hs, cs, tcs).

    acts (T, B, 4H): the gate activations sigmoid(i), sigmoid(f), tanh(g), sigmoid(o); cs (T+1, B, H): the carried
    cell states, cs[0] = c0; hs (T, B, H): the carried hidden states h_1..h_T (the tensor `out` itself without a
    mask); tcs (T, B, H): tanh of the new cell states; out (T, B, H): the new hidden states, not zeroed where masked.
    Every tanh is 2 sigmoid(2x) - 1: the g rows of W_hh are doubled and each step's g block of gx is doubled.

    acts is gx itself when `scratch` (the caller made gx for this call alone: `Recurrent`'s input projection),
    else a copy: each step's pre-activations are accumulated in place onto its gx slice. Measured, writing a
    fresh (T, B, 4H) buffer step by step cost ~10 % of a train step at B32 T200 H256 on CPU, mostly first-touch
    page faults of memory the projection had already touched.
    """
    steps, batch, hidden4 = gx.shape
    hidden = hidden4 // 4
    one = gx.new_ones(())
    w2_t = w_hh.clone()
    w2_t[2 * hidden : 3 * hidden] *= 2
    w2_t = w2_t.t().contiguous()  # (H, 4H), g columns doubled; row-major (K, N) is MKL's faster layout here
    acts = gx if scratch else gx.clone()  # (T, B, 4H), overwritten step by step with the activations
    out = gx.new_empty(steps, batch, hidden)  # (T, B, H)
    cs = gx.new_empty(steps + 1, batch, hidden)  # (T+1, B, H)
    tcs = torch.empty_like(out)  # (T, B, H)
    cs[0] = c0
    hs = out if mask is None else torch.empty_like(out)  # (T, B, H)
    c_new_all = cs[1:] if mask is None else torch.empty_like(out)  # (T, B, H) unmasked new cell states
    loops = compiled()
    if loops is not None:  # in C++ (fast_loops.cpp)
        loops.lstm_forward(h0, c0, w2_t, w_p, mask, acts, out, hs, cs, c_new_all, tcs)
        return acts, out, hs, cs, tcs
    gates4 = acts.view(steps, batch, 4, hidden)
    # Per-step views made up front: one unbind per tensor instead of several view ops per step.
    per_step = zip(
        acts.unbind(0),
        gates4[:, :, :2].unbind(0),  # (B, 2, H): i, f, which see c_{t-1} through the peepholes
        acts[:, :, : 3 * hidden].unbind(0),  # i, f, g: one sigmoid
        *(gates4[:, :, k].unbind(0) for k in range(4)),
        c_new_all.unbind(0),
        tcs.unbind(0),
        out.unbind(0),
        strict=True,
    )
    h, c = h0, c0
    for t, (a, a_if, a_ifg, i, f, g, o, c_new, tc, h_new) in enumerate(per_step):
        g.add_(g)  # 2 gx_g, then + 2 h W_g: 2 * (g pre-activation)
        a.addmm_(h, w2_t)  # (B, 4H) pre-activations, activated in place
        if w_p is not None:
            a_if.addcmul_(w_p[:2], c.unsqueeze(1))
        a_ifg.sigmoid_()
        _tanh_from_sigmoid_(g, one)
        torch.addcmul(f * c, i, g, out=c_new)
        if w_p is not None:
            o.addcmul_(w_p[2], c_new)
        o.sigmoid_()
        _tanh_from_sigmoid_(torch.add(c_new, c_new, out=tc).sigmoid_(), one)
        torch.mul(o, tc, out=h_new)
        if mask is None:
            h, c = h_new, c_new
        else:
            keep = mask[t]  # (B, 1)
            h = torch.where(keep, h_new, h, out=hs[t])
            c = torch.where(keep, c_new, c, out=cs[t + 1])
    return acts, out, hs, cs, tcs


def _backward(
    grad_out: Tensor,
    grad_h: Tensor,
    grad_c: Tensor,
    saved: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    w_hh: Tensor,
    w_p: Tensor | None,
    mask: Tensor | None,
    need_w: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """BPTT over the saved (acts, h0, hs, cs, tcs); returns (dgx, dh0, dc0, dw_hh, dw_p), dw_p (3, H) if peepholes."""
    acts, h0, hs, cs, tcs = saved
    steps, batch, hidden4 = acts.shape
    hidden = hidden4 // 4
    if mask is not None:
        grad_out = grad_out * mask
    dgates = torch.empty_like(acts)  # (T, B, 4H)
    # Per step, with dh = dL/dh_t (incl. the output's gradient) and dc = dL/dc_t from step t+1:
    #   dcs = dc + dh * o (1 - tanh(c_t)^2) [+ d_o w_po],  dgates = k * (dcs, dcs, dcs, dh),
    #   k = (g i(1-i), c_{t-1} f(1-f), i (1-g^2), tanh(c_t) o(1-o)) [+ peepholes],  dc_{t-1} = dcs * (f [+ ...]),
    #   dh_{t-1} = dgates @ W_hh [+ dh where masked: the carried state]. All per step: T-wide elementwise passes
    #   stream from memory and cost more than these cache-resident (B, H) ops.
    dh, dc = grad_h + grad_out[-1], grad_c
    loops = compiled()
    if loops is not None:  # in C++ (fast_loops.cpp)
        dh, dc = loops.lstm_backward(grad_out, dh, dc, acts, cs, tcs, w_hh, w_p, mask, dgates)
    else:
        dh, dc = _backward_loop(grad_out, dh, dc, acts, cs, tcs, w_hh, w_p, mask, dgates)
    dw_hh = None
    if need_w:  # (4H, H) = sum_t dgates_t^T h_{t-1}: step 0 against h0, steps 1.. in one (4H, (T-1)B) matmul
        dg_rest = dgates[1:].view(-1, hidden4)  # ((T-1)*B, 4H)
        dw_hh = torch.addmm(dgates[0].t() @ h0, dg_rest.t(), hs[:-1].reshape(-1, hidden))
    dw_p = None
    if w_p is not None:
        dgates4 = dgates.view(steps, batch, 4, hidden)
        d_if = dgates4[:, :, :2] * cs[:-1].unsqueeze(2)  # (T, B, 2, H)
        d_o = dgates4[:, :, 3] * cs[1:]  # (T, B, H); masked rows have zero deltas
        dw_p = torch.cat([d_if.sum((0, 1)), d_o.sum((0, 1)).unsqueeze(0)])
    return dgates, dh, dc, dw_hh, dw_p


def _backward_loop(
    grad_out: Tensor,
    dh: Tensor,
    dc: Tensor,
    acts: Tensor,
    cs: Tensor,
    tcs: Tensor,
    w_hh: Tensor,
    w_p: Tensor | None,
    mask: Tensor | None,
    dgates: Tensor,
) -> tuple[Tensor, Tensor]:
    """The backward's time loop in Python: fills dgates, returns (dh_0, dc_0); grad_out already masked."""
    steps, batch, hidden4 = acts.shape
    hidden = hidden4 // 4
    one = acts.new_ones(())
    per_step = zip(
        acts.unbind(0),
        *(acts.view(steps, batch, 4, hidden).unbind(2)[k].unbind(0) for k in range(4)),
        dgates.unbind(0),
        *(dgates.view(steps, batch, 4, hidden).unbind(2)[k].unbind(0) for k in range(4)),
        cs[:-1].unbind(0),
        tcs.unbind(0),
        [None, *grad_out.unbind(0)[:-1]],  # the output gradient of step t-1, added to dh_{t-1}
        [None] * steps if mask is None else mask.unbind(0),
        strict=True,
    )
    for a, i, f, g, o, dg, k_i, k_f, k_g, k_o, c_prev, tc, base, keep in reversed(list(per_step)):
        torch.addcmul(a, a, a, value=-1, out=dg)  # s (1 - s) for the sigmoid gates
        torch.addcmul(one, g, g, value=-1, out=k_g)  # 1 - g^2
        k_i.mul_(g)
        k_f.mul_(c_prev)
        k_g.mul_(i)
        k_o.mul_(tc)
        a_c = torch.addcmul(one, tc, tc, value=-1).mul_(o)
        a_prev = f
        if w_p is not None:
            a_c.addcmul_(k_o, w_p[2])
            a_prev = torch.addcmul(f, k_i, w_p[0]).addcmul_(k_f, w_p[1])
        dh_in = dh if keep is None else dh * keep
        dcs = torch.addcmul(dc, dh_in, a_c) if keep is None else torch.where(keep, torch.addcmul(dc, dh_in, a_c), 0)
        dg.mul_(torch.cat([dcs, dcs, dcs, dh_in], dim=1))
        dc = dcs.mul_(a_prev) if keep is None else torch.where(keep, dcs * a_prev, dc)
        if keep is not None:
            base = torch.where(keep, 0, dh) if base is None else torch.where(keep, base, base + dh)
        dh = dg @ w_hh if base is None else torch.addmm(base, dg, w_hh)
    return dh, dc


class _LSTMFunction(torch.autograd.Function):
    """autograd.Function wrapper: forward without a graph, backward by `_backward`."""

    @staticmethod
    @float32_forward
    def forward(
        ctx: Any,
        gx: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_hh: Tensor,
        w_p: Tensor | None,
        mask: Tensor | None,
        scratch: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        acts, out, hs, cs, tcs = _forward(gx, h0, c0, w_hh, w_p, mask, scratch)
        ctx.save_for_backward(acts, h0, hs, cs, tcs, w_hh, w_p, mask)
        h_n, c_n = hs[-1].clone(), cs[-1].clone()
        if mask is not None:
            out.mul_(mask)
        return out, h_n, c_n

    @staticmethod
    @float32_backward
    @once_differentiable
    def backward(
        ctx: Any, grad_out: Tensor, grad_h: Tensor, grad_c: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None, None, None]:
        *saved, w_hh, w_p, mask = ctx.saved_tensors
        dgx, dh0, dc0, dw_hh, dw_p = _backward(
            grad_out, grad_h, grad_c, saved, w_hh, w_p, mask, ctx.needs_input_grad[3]
        )
        return dgx, dh0, dc0, dw_hh, dw_p, None, None


def lstm_layer(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    peep: Peepholes | None = None,
    mask: Tensor | None = None,
    scratch: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM (peephole LSTM if peep is given) layer direction: gx (T, B, 4H) -> (out (T, B, H), h_T, c_T).
    `scratch=True` lets the forward overwrite gx (a projection made for this call that nothing else reads)."""
    w_p = None if peep is None else torch.stack(peep)  # (3, H)
    return _LSTMFunction.apply(gx, h0, c0, w_hh, w_p, mask, scratch)
