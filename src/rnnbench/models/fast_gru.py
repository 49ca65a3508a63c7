"""GRU over time with a hand-written backward (BPTT): `fast_lstm`'s method for the GRU.

Why: torch has no oneDNN GRU on CPU. Its fused `torch._VF.gru` loops a GRU cell in C++ under autograd, and an
H=64 GRU trained at T=200 took ~2.5x the LSTM's time (73 vs 29 ms per step, B=32, one thread): the cell sweeps'
GRU jobs were the longest of every sweep. As in `fast_lstm`, the forward saves the activations instead of a graph,
the backward walks time in reverse computing only the deltas that recur (dh), and the recurrent weight and bias
gradients of all steps are one matmul and one sum after the loop. The input projection stays hoisted and under
autograd: its gradient is the stacked input-side deltas. (Computing the backward's dh-independent factors for all
steps before the loop, three ops per step left in it, measured no faster at T=200 and slower at 64x100x32x128,
113 against 89 ms in separate runs: whole-tensor passes stream from memory, as `fast_lstm` found.)

torch.nn's GRU (gate order r, z, n; b_hh stays inside the reset gate's product):
    gh = h W_hh^T + b_hh,  r = sigmoid(gx_r + gh_r),  z = sigmoid(gx_z + gh_z),
    n = tanh(gx_n + r * gh_n),  h' = n + z * (h - n).
The forward uses torch.tanh_ and torch.lerp (h' = lerp(n, h, z)): at these sizes one op beats `fast_lstm`'s
sigmoid-based tanh, which takes four. The mask is `run_layer`'s: where it is False the state is
carried unchanged and the output is zero. First-order gradients only (no double backward). The two time loops
run compiled (`fast_loops.cpp`: the same ops in C++, the unmasked step fused, its tanh as 2 sigmoid(2x) - 1; on
AVX2 CPUs its recurrent matmul on packed weights, threads sharing each step by units) where a compiler exists;
the Python loops here are the reference and the fallback.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnbench.models.amp import float32_backward, float32_forward
from rnnbench.models.fast_loops import compiled


def _gate_blocks(x: Tensor, hidden: int) -> list[tuple[Tensor, ...]]:
    """Per-step views of a (T, B, 3H) gate-ordered tensor: its (r, z) block, then r, z and n, each unbound over
    time (one unbind per block up front: cheaper than slicing inside the time loop)."""
    bounds = ((0, 2 * hidden), (0, hidden), (hidden, 2 * hidden), (2 * hidden, 3 * hidden))
    return [x[:, :, lo:hi].unbind(0) for lo, hi in bounds]


def _forward(
    gx: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run the recurrence without autograd; returns (acts, gh, out, hs).

    acts (T, B, 3H): r, z, n; gh (T, B, 3H): h_{t-1} W_hh^T + b_hh (its n block is what r multiplied);
    out (T, B, H): the new hidden states, not zeroed where masked; hs (T, B, H): the carried states
    h_1..h_T (the tensor `out` itself without a mask).
    """
    steps, batch, hidden3 = gx.shape
    hidden = hidden3 // 3
    w_t = w_hh.t().contiguous()  # (H, 3H): row-major (K, N) is MKL's faster layout for these matmuls
    acts = torch.empty_like(gx)
    gh = torch.empty_like(gx)
    out = gx.new_empty(steps, batch, hidden)
    hs = out if mask is None else torch.empty_like(out)
    loops = compiled()
    if loops is not None:  # in C++ (fast_loops.cpp)
        loops.gru_forward(gx, h0, w_t, b_hh, mask, acts, gh, out, hs)
        return acts, gh, out, hs
    per_step = zip(
        gx[:, :, : 2 * hidden].unbind(0),
        gx[:, :, 2 * hidden :].unbind(0),
        gh.unbind(0),
        gh[:, :, : 2 * hidden].unbind(0),
        gh[:, :, 2 * hidden :].unbind(0),
        *_gate_blocks(acts, hidden),
        out.unbind(0),
        strict=True,
    )
    h = h0
    for t, (gx_rz, gx_n, g, g_rz, g_n, a_rz, r, z, n, h_new) in enumerate(per_step):
        torch.addmm(b_hh, h, w_t, out=g)
        torch.add(gx_rz, g_rz, out=a_rz).sigmoid_()
        torch.addcmul(gx_n, r, g_n, out=n).tanh_()
        torch.lerp(n, h, z, out=h_new)  # n + z (h - n)
        if mask is not None:
            h_new = torch.where(mask[t], h_new, h, out=hs[t])
        h = h_new
    return acts, gh, out, hs


def _backward(
    grad_out: Tensor,
    grad_h: Tensor,
    saved: tuple[Tensor, Tensor, Tensor, Tensor],
    w_hh: Tensor,
    mask: Tensor | None,
    need_w: bool,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """BPTT over the saved (acts, gh, h0, hs); returns (dgx, dh0, dw_hh, db_hh)."""
    acts, gh, h0, hs = saved
    hidden3 = acts.shape[2]
    hidden = hidden3 // 3
    if mask is not None:
        grad_out = grad_out * mask
    dgx = torch.empty_like(acts)  # deltas of the input-side pre-activations (r, z, n)
    dgh = torch.empty_like(acts)  # deltas of gh = h W_hh^T + b_hh: as dgx but r * (n delta) in the n block
    # Per step, with dh = dL/dh_t: dn = dh (1 - z) (1 - n^2), dz = dh (h_{t-1} - n) z (1 - z),
    # dr = dn gh_n r (1 - r); dgx = (dr, dz, dn), dgh = (dr, dz, dn r), dh_{t-1} = dh z + dgh W_hh.
    dh = grad_h + grad_out[-1]
    loops = compiled()
    if loops is not None:  # in C++ (fast_loops.cpp)
        dh = loops.gru_backward(grad_out, dh, acts, gh, h0, hs, w_hh, mask, dgx, dgh)
    else:
        dh = _backward_loop(grad_out, dh, acts, gh, h0, hs, w_hh, mask, dgx, dgh)
    dw_hh = db_hh = None
    if need_w:  # (3H, H) = sum_t dgh_t^T h_{t-1}: step 0 against h0, steps 1.. in one matmul; db_hh = sum_t dgh_t
        dw_hh = torch.addmm(dgh[0].t() @ h0, dgh[1:].view(-1, hidden3).t(), hs[:-1].reshape(-1, hidden))
        db_hh = dgh.sum((0, 1))
    return dgx, dh, dw_hh, db_hh


def _backward_loop(
    grad_out: Tensor,
    dh: Tensor,
    acts: Tensor,
    gh: Tensor,
    h0: Tensor,
    hs: Tensor,
    w_hh: Tensor,
    mask: Tensor | None,
    dgx: Tensor,
    dgh: Tensor,
) -> Tensor:
    """The backward's time loop in Python: fills dgx and dgh, returns dh_0; grad_out already masked."""
    steps, _, hidden3 = acts.shape
    hidden = hidden3 // 3
    one = acts.new_ones(())
    per_step = zip(
        *_gate_blocks(acts, hidden),
        gh[:, :, 2 * hidden :].unbind(0),
        *_gate_blocks(dgx, hidden),
        dgh.unbind(0),
        dgh[:, :, : 2 * hidden].unbind(0),
        dgh[:, :, 2 * hidden :].unbind(0),
        [h0, *hs.unbind(0)[:-1]],  # h_{t-1}
        [None, *grad_out.unbind(0)[:-1]],  # the output gradient of step t-1, added to dh_{t-1}
        [None] * steps if mask is None else mask.unbind(0),
        strict=True,
    )
    for a_rz, r, z, n, g_n, d_rz, d_r, d_z, d_n, dg, dg_rz, dg_n, h_prev, base, keep in reversed(list(per_step)):
        dh_in = dh if keep is None else dh * keep
        torch.addcmul(a_rz, a_rz, a_rz, value=-1, out=d_rz)  # s (1 - s) for r and z
        torch.addcmul(one, n, n, value=-1, out=d_n).mul_(torch.addcmul(dh_in, dh_in, z, value=-1))
        d_z.mul_(h_prev - n).mul_(dh_in)
        d_r.mul_(d_n).mul_(g_n)
        dg_rz.copy_(d_rz)
        torch.mul(d_n, r, out=dg_n)
        if keep is None:
            carry = dh * z if base is None else torch.addcmul(base, dh, z)
        else:
            carry = torch.where(keep, dh * z, dh)
            carry = carry if base is None else carry.add_(base)
        dh = torch.addmm(carry, dg, w_hh)
    return dh


class _GRUFunction(torch.autograd.Function):
    """autograd.Function wrapper: forward without a graph, backward by `_backward`."""

    @staticmethod
    @float32_forward
    def forward(
        ctx: Any, gx: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        acts, gh, out, hs = _forward(gx, h0, w_hh, b_hh, mask)
        ctx.save_for_backward(acts, gh, h0, hs, w_hh, mask)
        h_n = hs[-1].clone()
        if mask is not None:
            out.mul_(mask)
        return out, h_n

    @staticmethod
    @float32_backward
    @once_differentiable
    def backward(
        ctx: Any, grad_out: Tensor, grad_h: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, None]:
        *saved, w_hh, mask = ctx.saved_tensors
        need_w = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
        dgx, dh0, dw_hh, db_hh = _backward(grad_out, grad_h, tuple(saved), w_hh, mask, need_w)
        return dgx, dh0, dw_hh, db_hh, None


def gru_layer(gx: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One GRU layer direction: gx (T, B, 3H) = x W_ih^T + b_ih -> (out (T, B, H), h_T)."""
    return _GRUFunction.apply(gx, h0, w_hh, b_hh, mask)
