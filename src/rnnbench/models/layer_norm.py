"""Layer normalisation inside the cell step (Ba, Kiros & Hinton 2016, "Layer Normalization"): `layer_norm=cell`.

Ba et al.'s layer-normalised LSTM (supplementary material) normalises the two summed inputs separately, each with
its own gain and bias, and the cell state before the output tanh, at every step:

    (i, f, g, o) = LN(W_h h_{t-1}; a1, b1) + LN(W_x x_t; a2, b2) + b      (each LN over the whole 4H vector)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(LN(c_t; a3, b3))

LN(z; a, b) = (z - mean(z)) / sqrt(var(z) + eps) * a + b over the feature axis, with eps = 1e-5 (torch's): the
paper writes eps = 0, which is undefined at the usual h_0 = 0 (W_h h_0 = 0 has zero variance). b is torch.nn's
b_ih + b_hh, so the forget-gate initialisation (`forget_bias`, chrono) works unchanged; gains start at 1, biases
at 0 (the paper's text swaps the names of its two init constants; this is the identity start every implementation
uses). The recurrent state c_t itself is not normalised, only its image through the output tanh.

The same rule, "normalise each of the two matrix products, keep the biases outside", gives the GRU form: r and z
read LN(W_x x)_{r,z} + LN(W_h h)_{r,z} + b, and n = tanh(LN(W_x x)_n + b_in + r * (LN(W_h h)_n + b_hn)), torch.nn's
variant of where r acts. The vanilla RNN takes Ba et al.'s own equation (section 3.1): one LN of the summed input,
h_t = tanh(LN(W_x x_t + W_h h_{t-1}; g) + b), a gain and no second bias. The peephole LSTM is refused: neither
paper says where its diagonal c-terms go relative to the normalisation.

Each cell here is a `CellSpec` with its own `inputs` (the hoisted input projection: LN over each step's row is
per-step, so it is still computed for all steps at once) and its LN weights in `extra`; state_dict keys are
torch.nn's four plus `ln_ih_{weight,bias}_l{k}`, `ln_hh_{weight,bias}_l{k}` (4H for the LSTM, 3H for the GRU),
`ln_c_{weight,bias}_l{k}` (H, LSTM only) and, for the RNN, `ln_weight_l{k}` (H); `_reverse` for the backward
direction. These cells run on the per-step autograd loop (there is no fused kernel and no hand-written backward).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnbench.models.cells import CELLS, CellInputs, CellSpec, Gates, State, gru_from_products

EPS = 1e-5  # torch.nn.LayerNorm's default
GAIN, BIAS = 1.0, 0.0  # initial LN gain and bias: the identity affine map


def ln(z: Tensor, gain: Tensor, bias: Tensor | None) -> Tensor:
    """LN(z; gain, bias) over the last axis."""
    return F.layer_norm(z, z.shape[-1:], gain, bias, EPS)


def _norm_weights(*names: str, width: int) -> tuple[tuple[str, int, float], ...]:
    """(name_weight, width, 1), (name_bias, width, 0) for each LN name."""
    return tuple(w for n in names for w in ((f"ln_{n}_weight", width, GAIN), (f"ln_{n}_bias", width, BIAS)))


def normalised_inputs(spec: CellSpec, x: Tensor, w: dict[str, Tensor]) -> CellInputs:
    """LSTM / GRU: gx = LN(x W_ih^T; a2, b2) + b, hoisted; the rest of `extra` (recurrent LN, ...) goes to the step."""
    bias = w["bias_ih"] + w["bias_hh"] if spec.fold_b_hh else w["bias_ih"]
    gx = ln(F.linear(x, w["weight_ih"]), w["ln_ih_weight"], w["ln_ih_bias"]) + bias
    extra = tuple(w[name] for name, _, _ in spec.extra if not name.startswith("ln_ih_"))
    return gx, (None if spec.fold_b_hh else w["bias_hh"]), extra


def ln_lstm_gates(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: None, extra: tuple[Tensor, ...]) -> Gates:
    """Gate activations (i, f, g, o) from LN(W_h h; a1, b1) + [LN(W_x x; a2, b2) + b] (= gx)."""
    i, f, g, o = (gx + ln(h @ w_hh.t(), extra[0], extra[1])).chunk(4, dim=1)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)


def ln_lstm_step(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: None, extra: tuple[Tensor, ...]) -> State:
    """Ba et al.'s LSTM step: c' = f c + i g as usual, h' = o tanh(LN(c'; a3, b3))."""
    i, f, g, o = ln_lstm_gates(gx, h, c, w_hh, b_hh, extra)
    c_new = f * c + i * g
    return o * torch.tanh(ln(c_new, extra[2], extra[3])), c_new


def ln_gru_gates(gx: Tensor, h: Tensor, c: None, w_hh: Tensor, b_hh: Tensor, extra: tuple[Tensor, ...]) -> Gates:
    """GRU gates (r, z, n) with both products normalised: gx = LN(W_x x) + b_ih, gh = LN(W_h h) + b_hh."""
    return gru_from_products(gx, ln(h @ w_hh.t(), extra[0], extra[1]) + b_hh)


def ln_gru_step(gx: Tensor, h: Tensor, c: None, w_hh: Tensor, b_hh: Tensor, extra: tuple[Tensor, ...]) -> State:
    """GRU step h' = n + z (h - n) on the normalised gates."""
    _, z, n = ln_gru_gates(gx, h, c, w_hh, b_hh, extra)
    return n + z * (h - n), None


def summed_inputs(spec: CellSpec, x: Tensor, w: dict[str, Tensor]) -> CellInputs:
    """RNN: gx = x W_ih^T without bias (LN acts on the whole summed input); b = b_ih + b_hh is added after LN."""
    return F.linear(x, w["weight_ih"]), w["bias_ih"] + w["bias_hh"], (w["ln_weight"],)


def _ln_rnn(act: str) -> object:
    def step(gx: Tensor, h: Tensor, c: None, w_hh: Tensor, b_hh: Tensor, extra: tuple[Tensor]) -> State:
        """Ba et al. section 3.1: h' = act(LN(W_x x + W_h h; g) + b)."""
        pre = ln(torch.addmm(gx, h, w_hh.t()), extra[0], None) + b_hh
        return (torch.tanh(pre) if act == "tanh" else torch.relu(pre)), None

    return step


LAYER_NORM_CELLS: dict[str, CellSpec] = {
    "lstm": replace(
        CELLS["lstm"],
        name="lstm_ln",
        step=ln_lstm_step,
        fused_mode=None,
        gate_fn=ln_lstm_gates,
        extra=_norm_weights("ih", "hh", width=4) + _norm_weights("c", width=1),
        inputs=normalised_inputs,
    ),
    "gru": replace(
        CELLS["gru"],
        name="gru_ln",
        step=ln_gru_step,
        fused_mode=None,
        gate_fn=ln_gru_gates,
        extra=_norm_weights("ih", "hh", width=3),
        inputs=normalised_inputs,
    ),
    **{
        name: replace(
            CELLS[name],
            name=f"{name}_ln",
            step=_ln_rnn(act),
            fused_mode=None,
            extra=(("ln_weight", 1, GAIN),),
            inputs=summed_inputs,
        )
        for name, act in (("rnn", "tanh"), ("rnn_relu", "relu"))
    },
}


def get_layer_norm_cell(name: str) -> CellSpec:
    """The `layer_norm=cell` variant of a cell; cells without one fail naming those that have one."""
    if name not in LAYER_NORM_CELLS:
        allowed = ", ".join(sorted(n for n in LAYER_NORM_CELLS if n != "rnn_relu"))
        raise ValueError(
            f"layer_norm='cell' is defined for cell in {allowed}, got cell={name!r} (Ba et al. 2016 give no form "
            "for its peepholes); use layer_norm='output' or 'none'"
        )
    return LAYER_NORM_CELLS[name]
