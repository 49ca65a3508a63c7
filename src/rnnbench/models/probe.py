"""Gradient-vs-lag curves and gate statistics of a `Recurrent` stack on one batch.

These are the measurements behind the seed's two claims: a vanilla RNN's gradient ||dL/dh_t|| vanishes
geometrically with the lag T - t, while the LSTM's additive cell path carries dL/dc_t back unchanged when the
forget gate sits near 1 (and the input gate does not write).

`probe(body, loss_fn)` re-runs the body's own forward (residual, layer norm, masks and both directions included) on
a copy switched to the custom step loop, so a fused body is probed with its exact weights: both implementations
share one state_dict. The copy's cell step is wrapped to keep every per-step state h_t (and c_t) and the gate
activations of `CellSpec.gate_fn`. One `torch.autograd.grad` call with those states as inputs gives dL/dh_t, so
neither the body's `.grad` fields nor any optimiser state are touched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from rnnbench.models.cells import CellSpec, State
from rnnbench.models.layer import step_loop_only
from rnnbench.models.recurrent import Recurrent

SIGMOID_GATES = ("input", "forget", "output", "reset", "update")  # the gates whose saturation is reported
LOW, HIGH = 0.1, 0.9  # a gate value below LOW counts as saturated closed, above HIGH as saturated open


@dataclass(frozen=True)
class ProbeResult:
    """One probe's measurements. Index s is the s-th step a direction processed: s = t for the forward direction,
    s = T-1-t for the backward one, so for a loss read at the readout both curves run from the longest lag to 0."""

    loss: float
    grad_h: Tensor  # (L, D, T): mean over the batch of the per-example ||dL/dh_s||
    grad_c: Tensor | None  # (L, D, T): the same for c_s (total derivative, via h_s too); None without a cell
    gates: list[dict[str, float]]  # per layer, directions pooled: "<gate>_mean", "<gate>_low", "<gate>_high"
    cell_abs_mean: list[float] | None  # per layer: mean |c_t| over batch, units, steps and directions

    def first_over_last(self, layer: int = 0, cell: bool = False) -> float:
        """||dL/d state|| at the first step over the last one, forward direction: 1 = no decay over the lag."""
        curve = (self.grad_c if cell else self.grad_h)[layer, 0]  # (T,)
        last = float(curve[-1])
        return float(curve[0]) / last if last > 0 else float("nan")


class _Recorder:
    """A cell step that also keeps its new states and its sigmoid gates, in call order (layer, direction, step)."""

    def __init__(self, spec: CellSpec) -> None:
        self.spec = spec
        self.sigmoid_gates = [name for name in spec.gate_names if name in SIGMOID_GATES]
        self.h: list[Tensor] = []  # (B, H_k) each
        self.c: list[Tensor] = []  # (B, H_k) each
        self.gates: list[Tensor] = []  # (n_sigmoid_gates, B, H_k) each, detached

    def step(self, gx: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None, extra: object) -> State:
        h_new, c_new = self.spec.step(gx, h, c, w_hh, b_hh, extra)
        self.h.append(h_new)
        if c_new is not None:
            self.c.append(c_new)
        if self.spec.gate_fn is not None:
            with torch.no_grad():
                acts = dict(zip(self.spec.gate_names, self.spec.gate_fn(gx, h, c, w_hh, b_hh, extra), strict=True))
            self.gates.append(torch.stack([acts[name] for name in self.sigmoid_gates]))
        return h_new, c_new


def _per_layer(items: list[Tensor], layers: int) -> list[list[Tensor]]:
    """Split call-ordered per-step tensors into one list per layer (directions and steps together)."""
    per = len(items) // layers
    return [items[k * per : (k + 1) * per] for k in range(layers)]


def _gate_stats(names: list[str], steps: list[Tensor]) -> dict[str, float]:
    """Mean and saturation fractions of each sigmoid gate over every (step, example, unit) of one layer."""
    acts = torch.stack(steps)  # (D*T, n_gates, B, H)
    stats = {}
    for i, name in enumerate(names):
        a = acts[:, i]
        stats[f"{name}_mean"] = float(a.mean())
        stats[f"{name}_low"] = float((a < LOW).float().mean())
        stats[f"{name}_high"] = float((a > HIGH).float().mean())
    return stats


def probe(body: Recurrent, loss_fn: Callable[[Recurrent], Tensor]) -> ProbeResult:
    """Measure ||dL/dh_t|| (and ||dL/dc_t||) for every step of every layer and direction, plus gate statistics.

    `loss_fn(body)` runs the given body on the probe batch and returns the scalar loss; it is called once, with an
    eval-mode copy of `body` on the custom step loop. Pass a loss read at the last step to get the
    gradient-vs-lag curve.
    """
    recorder = _Recorder(body.spec)
    twin = copy.deepcopy(body).eval()
    twin.impl = "custom"
    twin.spec = replace(body.spec, step=recorder.step)
    with torch.enable_grad(), step_loop_only():
        loss = loss_fn(twin)
        states = recorder.h + recorder.c
        grads = torch.autograd.grad(loss, states, allow_unused=True, materialize_grads=True)
    layers, dirs = body.num_layers, body.num_directions
    if not recorder.h or len(recorder.h) % (layers * dirs):
        raise RuntimeError(f"loss_fn must run the body exactly once; recorded {len(recorder.h)} steps")
    steps = len(recorder.h) // (layers * dirs)
    norms = torch.stack([g.detach().norm(dim=-1).mean() for g in grads])  # (n_states,): h's, then c's
    norms = norms.view(-1, layers, dirs, steps)  # (1 or 2, L, D, T)
    gates = [_gate_stats(recorder.sigmoid_gates, g) if g else {} for g in _per_layer(recorder.gates, layers)]
    cell_abs = None
    if recorder.c:
        cell_abs = [float(torch.stack(c).detach().abs().mean()) for c in _per_layer(recorder.c, layers)]
    return ProbeResult(float(loss.detach()), norms[0], norms[1] if recorder.c else None, gates, cell_abs)
