"""The custom path's time loop: one layer, one direction, over a time-major, right-padded batch.

Variable lengths are handled by a per-step mask: where a sequence has ended, its state is carried unchanged
and its output is zero, which is exactly what `torch.nn.LSTM` returns on a `PackedSequence` after
`pad_packed_sequence`. The reverse direction is run on per-sequence reversed inputs (`reverse_padded`), so
padding never reaches the backward direction's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

from rnnbench.models.cells import CellSpec
from rnnbench.models.fast_gru import gru_layer
from rnnbench.models.fast_lstm import lstm_layer

_FAST_LSTM_CELLS = frozenset({"lstm", "peephole_lstm"})  # cells that `fast_lstm.lstm_layer` computes
_STEP_LOOP_ONLY: ContextVar[bool] = ContextVar("step_loop_only", default=False)  # per thread / task


@contextmanager
def step_loop_only() -> Iterator[None]:
    """Force `run_layer` onto the per-step autograd loop (no hand-written BPTT), e.g. to hook per-step tensors."""
    token = _STEP_LOOP_ONLY.set(True)
    try:
        yield
    finally:
        _STEP_LOOP_ONLY.reset(token)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of a time-major (T, B, ...) batch within its own length; padding stays at the end."""
    if lengths is None:
        return x.flip(0)
    steps = x.shape[0]
    t = torch.arange(steps, device=x.device).unsqueeze(1)  # (T, 1)
    lens = lengths.to(x.device).unsqueeze(0)  # (1, B)
    index = torch.where(t < lens, lens - 1 - t, t)  # (T, B)
    index = index.view(steps, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def step_mask(lengths: Tensor | None, steps: int, device: torch.device) -> Tensor | None:
    """(T, B, 1) boolean mask, True where step t is inside sequence b; None when all are full length."""
    if lengths is None:
        return None
    return (torch.arange(steps, device=device).unsqueeze(1) < lengths.to(device).unsqueeze(0)).unsqueeze(-1)


def run_layer(
    spec: CellSpec,
    gx: Tensor,
    h: Tensor,
    c: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None,
    extra: tuple[Tensor, ...] | None,
    mask: Tensor | None,
    scratch: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Loop `spec.step` over time. gx: (T, B, G*H) hoisted input projection; returns (out (T, B, H), h_T, c_T).
    `scratch=True`: gx was made for this call alone, so `fast_lstm` writes its gate activations into it (no copy).

    LSTM-family cells take `fast_lstm.lstm_layer` and the GRU `fast_gru.gru_layer` (same results, hand-written
    backward) unless inside `step_loop_only()`; other cells (the layer-normalised ones) always loop `spec.step`.
    """
    if not _STEP_LOOP_ONLY.get():
        if spec.name in _FAST_LSTM_CELLS:
            return lstm_layer(gx, h, c, w_hh, extra, mask, scratch)
        if spec.name == "gru":
            out, h_n = gru_layer(gx, h, w_hh, b_hh, mask)
            return out, h_n, None
    outputs = []
    for t in range(gx.shape[0]):
        h_new, c_new = spec.step(gx[t], h, c, w_hh, b_hh, extra)
        if mask is not None:
            keep = mask[t]
            h_new = torch.where(keep, h_new, h)
            c_new = None if c is None else torch.where(keep, c_new, c)
            outputs.append(h_new * keep)
        else:
            outputs.append(h_new)
        h, c = h_new, c_new
    return torch.stack(outputs), h, c
