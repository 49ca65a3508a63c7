"""One time step of each recurrent cell, as pure functions over torch.nn-shaped weights.

The split follows pytorch's `benchmarks/fastrnns/custom_lstms.py`: a *cell* is one step, a layer loops it
over time (`layer.py`), the stack (`recurrent.py`) owns the parameters. The input projection of all steps is
hoisted out of the time loop, so a step only sees `gx_t = x_t W_ih^T + b_ih (+ b_hh)` and does the recurrent
matmul. Gate order is torch.nn's (LSTM i,f,g,o; GRU r,z,n) so one state_dict serves both implementations.

Peephole LSTM follows Gers & Schmidhuber (2000) and the seed notes: diagonal peepholes, the input and forget
gates see c_{t-1}, the output gate sees the new c_t.

A step's last argument, `extra`, holds the cell's own weights beyond torch.nn's four (the peephole vectors; the
layer-norm gains and biases of `layer_norm.py`), in the order of `CellSpec.extra`; None for cells without any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

State = tuple[Tensor, Tensor | None]  # (h, c); c is None for cells without a memory cell
Gates = tuple[Tensor, ...]  # activated gates in torch.nn's order, each (B, H)


def rnn_tanh_step(gx: Tensor, h: Tensor, c: None, w_hh: Tensor, b_hh: Tensor | None, extra: None) -> State:
    """Elman step h' = tanh(gx + h W_hh^T); b_hh is folded into gx."""
    return torch.tanh(torch.addmm(gx, h, w_hh.t())), None


def rnn_relu_step(gx: Tensor, h: Tensor, c: None, w_hh: Tensor, b_hh: Tensor | None, extra: None) -> State:
    """Elman step with ReLU, as torch.nn.RNN(nonlinearity='relu')."""
    return torch.relu(torch.addmm(gx, h, w_hh.t())), None


def lstm_gates(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: None) -> Gates:
    """LSTM gate activations (i, f, g, o), each (B, H): sigmoid, sigmoid, tanh, sigmoid."""
    i, f, g, o = torch.addmm(gx, h, w_hh.t()).chunk(4, dim=1)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)


def lstm_step(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: None) -> State:
    """LSTM step (Hochreiter & Schmidhuber 1997 with forget gate): c' = f*c + i*g is the additive path."""
    i, f, g, o = lstm_gates(gx, h, c, w_hh, b_hh, extra)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


def peephole_lstm_gates(
    gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: tuple[Tensor, Tensor, Tensor]
) -> Gates:
    """Peephole gate activations (i, f, g, o): i and f peek at c_{t-1}, o peeks at the freshly written c_t."""
    w_pi, w_pf, w_po = extra
    i, f, g, o = torch.addmm(gx, h, w_hh.t()).chunk(4, dim=1)
    i = torch.sigmoid(i + w_pi * c)
    f = torch.sigmoid(f + w_pf * c)
    g = torch.tanh(g)
    return i, f, g, torch.sigmoid(o + w_po * (f * c + i * g))


def peephole_lstm_step(
    gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: tuple[Tensor, Tensor, Tensor]
) -> State:
    """Peephole LSTM step: the LSTM update with `peephole_lstm_gates` (c_t is recomputed here; the training
    path is `fast_lstm`, so the extra multiply-add only costs the step loop)."""
    i, f, g, o = peephole_lstm_gates(gx, h, c, w_hh, b_hh, extra)
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


def gru_gates(gx: Tensor, h: Tensor, c: None, w_hh: Tensor, b_hh: Tensor | None, extra: None) -> Gates:
    """GRU gate activations (r, z, n), each (B, H); torch.nn variant: r multiplies W_hn h + b_hn."""
    return gru_from_products(gx, h @ w_hh.t() if b_hh is None else torch.addmm(b_hh, h, w_hh.t()))


def gru_from_products(gx: Tensor, gh: Tensor) -> Gates:
    """GRU gates (r, z, n) from the input part gx and the recurrent part gh (each (B, 3H), biases included)."""
    x_r, x_z, x_n = gx.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    return r, torch.sigmoid(x_z + h_z), torch.tanh(x_n + r * h_n)


def gru_step(gx: Tensor, h: Tensor, c: None, w_hh: Tensor, b_hh: Tensor | None, extra: None) -> State:
    """GRU step (Cho et al. 2014): h' = n + z * (h - n)."""
    _, z, n = gru_gates(gx, h, c, w_hh, b_hh, extra)
    return n + z * (h - n), None


StepFn = Callable[..., State]
GateFn = Callable[..., Gates]
CellInputs = tuple[Tensor, Tensor | None, tuple[Tensor, ...] | None]  # (gx, b_hh or None, extra or None)
ProjectFn = Callable[["CellSpec", Tensor, dict[str, Tensor]], CellInputs]


def torch_inputs(spec: CellSpec, x: Tensor, w: dict[str, Tensor]) -> CellInputs:
    """torch.nn's hoisted input projection gx = x W_ih^T + b_ih (+ b_hh where the cell allows folding it)."""
    bias = w["bias_ih"] + w["bias_hh"] if spec.fold_b_hh else w["bias_ih"]
    extra = tuple(w[name] for name, _, _ in spec.extra) if spec.extra else None
    return F.linear(x, w["weight_ih"], bias), (None if spec.fold_b_hh else w["bias_hh"]), extra


PEEPHOLES = (("weight_pi", 1, None), ("weight_pf", 1, None), ("weight_po", 1, None))


@dataclass(frozen=True)
class CellSpec:
    """What the stack needs to know about a cell: gates, memory cell, fused kernel, extra weights, input projection."""

    name: str
    gates: int
    has_cell: bool
    step: StepFn
    fused_mode: str | None  # torch._VF function name, or None where no fused kernel exists
    peepholes: bool = False
    fold_b_hh: bool = True  # b_hh can be added to the hoisted input projection (not for GRU's n gate)
    gate_fn: GateFn | None = None  # same arguments as `step`, returns the gate activations (gated cells only)
    # Per-layer weights beyond torch.nn's four: (name, size in units of H, init: a constant, or None for torch.nn's
    # uniform +-1/sqrt(H)); registered as `<name>_l{k}[_reverse]` and handed to `step` as `extra`, in this order.
    extra: tuple[tuple[str, int, float | None], ...] = ()
    inputs: ProjectFn = torch_inputs  # (spec, x (..., I), layer weights) -> what `step` takes besides h, c, w_hh

    @property
    def gate_names(self) -> tuple[str, ...]:
        """Gate names in torch.nn's order, for diagnostics and docs."""
        return {4: ("input", "forget", "cell", "output"), 3: ("reset", "update", "new"), 1: ("hidden",)}[self.gates]


CELLS: dict[str, CellSpec] = {
    "rnn": CellSpec("rnn", 1, False, rnn_tanh_step, "rnn_tanh"),
    "rnn_relu": CellSpec("rnn_relu", 1, False, rnn_relu_step, "rnn_relu"),
    "lstm": CellSpec("lstm", 4, True, lstm_step, "lstm", gate_fn=lstm_gates),
    "gru": CellSpec("gru", 3, False, gru_step, "gru", fold_b_hh=False, gate_fn=gru_gates),
    "peephole_lstm": CellSpec(
        "peephole_lstm",
        4,
        True,
        peephole_lstm_step,
        None,
        peepholes=True,
        gate_fn=peephole_lstm_gates,
        extra=PEEPHOLES,
    ),
}


def get_cell(name: str) -> CellSpec:
    """Look a cell up by name; unknown names fail with the allowed ones."""
    if name not in CELLS:
        raise ValueError(f"cell: unknown cell {name!r}; allowed: {', '.join(sorted(CELLS))}")
    return CELLS[name]
