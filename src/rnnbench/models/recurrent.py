"""`Recurrent`: one drop-in recurrent stack for every cell, with torch.nn's call contract and parameter names.

`Recurrent("lstm", 32, 128, num_layers=2)` behaves like `torch.nn.LSTM(32, 128, 2, batch_first=True)`:
same `forward(x, state) -> (output, final_state)`, same state_dict keys (`weight_ih_l0`, `bias_hh_l1_reverse`,
...), same gate order. Two implementations share those weights:

- `fused`: torch's own kernels (`torch._VF.lstm` and friends: oneDNN on CPU, cuDNN on GPU), called one layer at a
  time so that residual connections, layer norm and per-layer sizes still get the fast kernel;
- `custom`: the Python cells of `cells.py` looped by `layer.py`, needed for peepholes and for diagnostics that
  must see every gate.

On CUDA the fused path is cuDNN, which wants each call's weights as views into one contiguous buffer in its own
layout; given separate tensors it copies them into one on every call and warns ("RNN module weights are not part of
single contiguous chunk of memory"). `flatten_parameters` lays each layer's weights (both directions, the unit of one
kernel call) out that way, as torch.nn.RNNBase's does for a whole stack, and runs after every `.to()` / `.cuda()` /
`.half()` (`_apply`, as in torch.nn): Lightning moves the module to its device that way, and loading a state_dict
or checkpoint copies into the flattened tensors, which keeps the layout. A no-op on CPU. Variable-length batches
run the fused layer one direction at a time (`_fused_layer`), where cuDNN still copies some weights per call: the
LSTM's W_ih gets a padding column appended, and the reverse direction's weights do not start their layer's buffer.

`impl="auto"` picks the faster of the two as measured (`rnnbench-bench`): fused wherever the cell has a fused kernel,
except the GRU on CPU, where torch's kernel is a C++ cell loop under autograd and the custom path's hand-written
backward (`fast_gru.py`) is faster. A state_dict saved under one impl loads under the other and gives the same
outputs (tested to 1e-5).

Two factors of the seed's studies live here:
- `forget_bias` (LSTM family): the initial forget-gate bias, a number (1.0: Jozefowicz et al. 2015; gates keep
  sigmoid(1) = 0.73 of the cell per step at init), or "chrono" (Tallec & Ollivier 2018, "Can recurrent neural
  networks warp time?"): per unit b_f = log(u), u ~ U(1, T_max - 1), and b_i = -b_f, so forget-gate time constants
  spread log-uniformly up to T_max. T_max is `chrono_t_max`, else the task's `lag` (handed over in
  `model_kwargs()`). The values sit in bias_ih with bias_hh's i and f slices zeroed: both impls add the two, so it
  is an initialisation every impl keeps, and the draw comes from torch's RNG after the weights (deterministic
  under the seed; the weights equal those of a numeric forget_bias under the same seed).
- `layer_norm`: "none"; "output" (a LayerNorm on each layer's output, any cell and impl); or "cell" (Ba et al.
  2016 inside every step, `layer_norm.py`: lstm, gru, rnn; custom path only, `auto` picks it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnbench.models.amp import onednn_lacks_bf16
from rnnbench.models.cells import CellSpec, get_cell
from rnnbench.models.layer import reverse_padded, run_layer, step_mask
from rnnbench.models.layer_norm import get_layer_norm_cell

IMPLS = ("auto", "fused", "custom")
CUDNN_MODES = {"rnn_relu": "RNN_RELU", "rnn_tanh": "RNN_TANH", "lstm": "LSTM", "gru": "GRU"}  # torch._VF -> cuDNN
LAYER_NORMS = ("none", "cell", "output")
CHRONO = "chrono"
RecurrentState = Tensor | tuple[Tensor, Tensor] | list


HOLD = 1e4  # a gate pre-activation this large saturates sigmoid to exactly 0 or 1, with exactly zero gradient


def _hold_cell_on_padding(x: Tensor, weight_ih: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Append a padding indicator to an LSTM layer's input, wired to forget +HOLD and input -HOLD: on padded steps
    f = 1 and i = 0 exactly, so c_t = c_{t-1} and the kernel's final c is each sequence's c at its last valid step.
    The column is a constant, not a parameter; saturated gates pass no gradient into the weights."""
    hidden = weight_ih.shape[0] // 4  # gate order i, f, g, o
    column = weight_ih.new_zeros(4, hidden)
    column[0], column[1] = -HOLD, HOLD
    padding = (~mask).to(x.dtype).expand(*x.shape[:2], 1)
    return torch.cat([x, padding], dim=-1), torch.cat([weight_ih, column.reshape(-1, 1)], dim=1)


def cudnn_takes(weights: list[Tensor]) -> bool:
    """Whether cuDNN can take these weights as one flat buffer (torch.nn.RNNBase.flatten_parameters' conditions): all
    on CUDA in one dtype cuDNN accepts, cuDNN enabled, none aliasing another."""
    first = weights[0]
    if not torch._use_cudnn_rnn_flatten_weight():  # False on builds without cuDNN (CPU-only torch)
        return False
    if any(w.dtype != first.dtype or not w.is_cuda or not torch.backends.cudnn.is_acceptable(w) for w in weights):
        return False
    return len({w.data_ptr() for w in weights}) == len(weights)


def flatten_layer(weights: list[Tensor], input_size: int, hidden_size: int, mode: str, bidirectional: bool) -> None:
    """Re-point one layer's weights (weight_ih, weight_hh, bias_ih, bias_hh per direction) into one buffer in cuDNN's
    layout, in place: `torch._cudnn_rnn_flatten_weight` copies them and `set_`s each tensor to its view."""
    from torch.backends.cudnn import rnn

    with torch.cuda.device_of(weights[0]), torch.no_grad():  # no_grad: an in-place change of leaf parameters
        torch._cudnn_rnn_flatten_weight(
            weights, 4, input_size, rnn.get_cudnn_mode(CUDNN_MODES[mode]), hidden_size, 0, 1, False, bidirectional
        )


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_layer_norm(value: object) -> str:
    """One of LAYER_NORMS; the bools of earlier configs (true meant a LayerNorm on each layer's output) map on."""
    if isinstance(value, bool):
        return "output" if value else "none"
    if value not in LAYER_NORMS:
        raise ValueError(f"layer_norm must be one of {', '.join(LAYER_NORMS)}, got {value!r}")
    return str(value)


def _check_forget_bias(value: object, cell: str, has_cell: bool) -> float | str | None:
    """A number, "chrono" or None; cells without a forget gate take only the shared default 1.0 or None."""
    if value != CHRONO and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"forget_bias must be a number, {CHRONO!r} or null, got {value!r}")
    if not has_cell and value not in (1.0, None):
        raise ValueError(
            f"forget_bias={value!r} applies to the LSTM family (lstm, peephole_lstm); cell={cell!r} has no forget "
            "gate: leave it at 1.0 (the default, ignored) or null"
        )
    return value if value in (CHRONO, None) else float(value)


def _chrono_t_max(chrono_t_max: object, lag: object) -> int:
    """T_max for the chrono init: chrono_t_max if set, else the task's lag; an int >= 2 (U(1, T_max - 1))."""
    value = lag if chrono_t_max is None else chrono_t_max
    if value is None:
        raise ValueError(
            f"forget_bias={CHRONO!r} needs T_max: set chrono_t_max, or use a task that states its lag (model_kwargs)"
        )
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        if chrono_t_max is None:
            raise ValueError(
                f"forget_bias={CHRONO!r} needs T_max >= 2 and the task's lag is {value!r}: set chrono_t_max"
            )
        raise ValueError(f"chrono_t_max must be an int >= 2 (chrono draws U(1, T_max - 1)), got {value!r}")
    return value


def _layer_sizes(hidden_size: int | Sequence[int], num_layers: int | None) -> list[int]:
    """Per-layer hidden sizes from an int (repeated num_layers times) or an explicit per-layer list."""
    if not isinstance(hidden_size, Sequence) or isinstance(hidden_size, str):
        _check_positive_int("hidden_size", hidden_size)
        return [hidden_size] * _check_positive_int("num_layers", 1 if num_layers is None else num_layers)
    sizes = list(hidden_size)
    if not sizes:
        raise ValueError("hidden_size must be a positive int or a non-empty list of positive ints, got []")
    for size in sizes:
        _check_positive_int("hidden_size", size)
    if num_layers is not None and num_layers != len(sizes):
        raise ValueError(f"num_layers={num_layers} does not match the {len(sizes)} per-layer sizes in hidden_size")
    return sizes


def resolved_impl(spec: CellSpec, impl: str, device_type: str) -> str:
    """'fused' or 'custom': the implementation a `Recurrent` of this cell (its layer-normalised spec where
    layer_norm='cell') takes for `impl` on a device of this type; `auto` as the module docstring says. Pure, so a
    report can tell from a run's config which implementation its epoch times were measured on."""
    if impl != "auto":
        return impl
    fused = spec.fused_mode is not None and not (spec.name == "gru" and device_type == "cpu")
    return "fused" if fused else "custom"


class Recurrent(nn.Module):
    """A stack of recurrent layers (any cell, uni- or bidirectional) mirroring torch.nn.RNN/LSTM/GRU."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int | Sequence[int],
        num_layers: int | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = True,
        impl: str = "auto",
        residual: bool = False,
        layer_norm: str = "none",
        forget_bias: float | str | None = 1.0,
        nonlinearity: str = "tanh",
        chrono_t_max: int | None = None,
        lag: int | None = None,
    ) -> None:
        """Arguments as torch.nn.LSTM's where they share a name; `lag` is the task's longest dependency (steps), the
        default T_max of forget_bias="chrono"; chrono_t_max overrides it. Both are read by the chrono init only."""
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be one of tanh, relu, got {nonlinearity!r}")
        if nonlinearity == "relu" and cell != "rnn":
            raise ValueError(f"nonlinearity='relu' applies to cell='rnn' only, got cell={cell!r}")
        self.spec: CellSpec = get_cell("rnn_relu" if nonlinearity == "relu" else cell)
        self.layer_norm = _check_layer_norm(layer_norm)
        if self.layer_norm == "cell":
            if impl == "fused":
                raise ValueError(
                    "impl='fused' cannot run layer_norm='cell' (it normalises inside the cell step, which torch's "
                    "kernels do not); use impl='custom' or 'auto'"
                )
            self.spec = get_layer_norm_cell(self.spec.name)
        self.forget_bias = _check_forget_bias(forget_bias, cell, self.spec.has_cell)
        self.chrono_t_max = _chrono_t_max(chrono_t_max, lag) if self.forget_bias == CHRONO else None
        self.input_size = _check_positive_int("input_size", input_size)
        self.layer_sizes = _layer_sizes(hidden_size, num_layers)
        if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        if impl == "fused" and self.spec.fused_mode is None:
            raise ValueError(f"impl='fused' has no kernel for cell={cell!r}; use impl='custom' or 'auto'")
        self.cell = cell
        self.num_layers = len(self.layer_sizes)
        self.hidden_size = self.layer_sizes[-1]
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.impl = impl
        self.residual = residual
        self._build_parameters()
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------------------------------
    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][: self.num_directions]

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.layer_sizes[layer - 1]

    def _build_parameters(self) -> None:
        gates = self.spec.gates
        for k, size in enumerate(self.layer_sizes):
            in_size = self._layer_input_size(k)
            for sfx in self._suffixes():
                self.register_parameter(f"weight_ih_l{k}{sfx}", nn.Parameter(torch.empty(gates * size, in_size)))
                self.register_parameter(f"weight_hh_l{k}{sfx}", nn.Parameter(torch.empty(gates * size, size)))
                self.register_parameter(f"bias_ih_l{k}{sfx}", nn.Parameter(torch.empty(gates * size)))
                self.register_parameter(f"bias_hh_l{k}{sfx}", nn.Parameter(torch.empty(gates * size)))
                for extra, width, _ in self.spec.extra:  # peepholes, cell layer norm (`CellSpec.extra`)
                    self.register_parameter(f"{extra}_l{k}{sfx}", nn.Parameter(torch.empty(width * size)))
            out_size = self.num_directions * size
            if self.residual and k > 0 and in_size != out_size:
                self.add_module(f"residual_proj_l{k}", nn.Linear(in_size, out_size, bias=False))
            if self.layer_norm == "output":
                self.add_module(f"layer_norm_l{k}", nn.LayerNorm(out_size))

    def reset_parameters(self) -> None:
        """torch.nn's init (uniform +-1/sqrt(H)) in torch.nn's order, the cell's constant-init weights (layer-norm
        gains 1, biases 0), then the LSTM forget-gate bias: a number (Jozefowicz et al. 2015) or chrono."""
        constant = {name: value for name, _, value in self.spec.extra if value is not None}
        for name, param in self.named_parameters(recurse=False):
            base, _, rest = name.rpartition("_l")
            if base in constant:
                nn.init.constant_(param, constant[base])
                continue
            bound = 1.0 / math.sqrt(self.layer_sizes[int(rest.split("_")[0])])
            nn.init.uniform_(param, -bound, bound)
        for module in self.children():
            module.reset_parameters()
        if self.spec.has_cell and self.forget_bias is not None:
            with torch.no_grad():
                for k in range(self.num_layers):
                    for sfx in self._suffixes():
                        self._init_forget_gate(getattr(self, f"bias_ih_l{k}{sfx}"), getattr(self, f"bias_hh_l{k}{sfx}"))

    def _init_forget_gate(self, bias_ih: Tensor, bias_hh: Tensor) -> None:
        """Write the forget-gate init into bias_ih (gate order i, f, g, o) and zero bias_hh's matching slices, so
        the sum every impl uses is exactly it. Chrono: b_f = log U(1, T_max - 1) per unit, b_i = -b_f."""
        size = bias_ih.shape[0] // 4
        if self.forget_bias == CHRONO:
            b_f = bias_ih.new_empty(size).uniform_(1.0, self.chrono_t_max - 1.0).log_()  # (H,)
            bias_ih[size : 2 * size] = b_f
            bias_ih[:size] = -b_f
            bias_hh[: 2 * size].zero_()
        else:
            bias_ih[size : 2 * size].fill_(self.forget_bias)
            bias_hh[size : 2 * size].zero_()

    def flatten_parameters(self) -> None:
        """Lay each layer's fused-kernel weights out as cuDNN's flat buffer (see the module docstring); a no-op unless
        the fused path runs on CUDA with cuDNN. Values, names and Parameter objects stay the same."""
        if self.spec.fused_mode is None:
            return
        for k, size in enumerate(self.layer_sizes):
            weights = [w for d in range(self.num_directions) for w in self.layer_weights(k, d).values()]
            if not self.fused_on(weights[0].device) or not cudnn_takes(weights):
                return
            flatten_layer(weights, self._layer_input_size(k), size, self.spec.fused_mode, self.bidirectional)

    def _apply(self, fn: Any, recurse: bool = True) -> Recurrent:
        """nn.Module's `_apply` (behind .to(), .cuda(), .half(), ...), then `flatten_parameters`, as in torch.nn."""
        out = super()._apply(fn, recurse)
        self.flatten_parameters()
        return out

    def layer_weights(self, layer: int, direction: int) -> dict[str, Tensor]:
        """The named weights of one layer and direction, keys without the `_l{k}` suffix."""
        sfx = f"_l{layer}{self._suffixes()[direction]}"
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", *(name for name, _, _ in self.spec.extra)]
        return {n: getattr(self, n + sfx) for n in names}

    # -- forward ------------------------------------------------------------------------------------------
    def forward(
        self, x: Tensor | PackedSequence, state: RecurrentState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, RecurrentState]:
        """Run the stack. x: (B, T, I) if batch_first else (T, B, I), or a PackedSequence.

        Returns output (B, T, dirs*H_last) (or time-major / packed, matching the input) and the final state:
        h_n, or (h_n, c_n) for the LSTM family, each (num_layers*dirs, B, H); a per-layer list when layer sizes
        differ. Positions past a sequence's length are zero in the output.
        """
        packed_input = isinstance(x, PackedSequence)
        if packed_input:
            sorted_indices, unsorted_indices = x.sorted_indices, x.unsorted_indices
            x, lengths = pad_packed_sequence(x, batch_first=False)
        elif self.batch_first:
            x = x.transpose(0, 1)
        self._check_input(x, lengths)
        steps, batch = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
        h0, c0 = self._initial_state(state, batch, x)

        mask = step_mask(lengths, steps, x.device)
        inp, h_n, c_n = x, [], []
        run = self._fused_layer if self.fused_on(x.device) else self._custom_layer
        for k in range(self.num_layers):
            out, h_k, c_k = run(k, inp, h0[k], None if c0 is None else c0[k], lengths)
            inp = self._between_layers(k, inp, out)
            h_n.append(h_k)
            c_n.append(c_k)
        if mask is not None and (self.residual or self.layer_norm == "output"):
            inp = inp * mask
        final = self._final_state(h_n, c_n)
        if packed_input:
            # Re-pack in the input's own order: re-sorting the lengths could order tied lengths differently.
            if sorted_indices is not None:
                inp, lengths = inp.index_select(1, sorted_indices), lengths[sorted_indices.cpu()]
            inp = pack_padded_sequence(inp, lengths, enforce_sorted=True)
            inp = PackedSequence(inp.data, inp.batch_sizes, sorted_indices, unsorted_indices)
        elif self.batch_first:
            inp = inp.transpose(0, 1)
        return inp, final

    def fused_on(self, device: torch.device) -> bool:
        """Whether `forward` takes torch's fused kernel on `device` (see the module docstring for `auto`)."""
        return resolved_impl(self.spec, self.impl, device.type) == "fused"

    def step(self, x: Tensor, state: RecurrentState | None = None) -> tuple[Tensor, RecurrentState]:
        """One time step of the whole stack: x (B, I) -> (output (B, H_last), final state shaped as `forward`'s).

        For decoders that feed each step's output back into the next step (input feeding, scheduled sampling,
        greedy decoding). A fused kernel called on a single step costs ~1 ms forward and ~1.5 ms backward of fixed
        overhead on CPU (oneDNN, B=32, H=128), several times the step's arithmetic, so this runs the Python cells
        whatever `impl` is: the same weights and the same results as `forward` on a length-1 sequence.
        """
        if self.bidirectional:
            raise ValueError("step() runs forward in time only; a bidirectional stack needs the whole sequence")
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(f"step() input must be (batch, input_size={self.input_size}), got {tuple(x.shape)}")
        h0, c0 = self._initial_state(state, x.shape[0], x)
        inp, h_n, c_n = x, [], []
        for k in range(self.num_layers):
            gx, w_hh, b_hh, extra = self._cell_inputs(k, 0, inp)
            h, c = self.spec.step(gx, h0[k][0], None if c0 is None else c0[k][0], w_hh, b_hh, extra)
            inp = self._between_layers(k, inp, h)
            h_n.append(h.unsqueeze(0))
            c_n.append(None if c is None else c.unsqueeze(0))
        return inp, self._final_state(h_n, c_n)

    def _between_layers(self, k: int, inp: Tensor, out: Tensor) -> Tensor:
        """Layer k's output as the next layer's input: + residual (from layer 2 on), output layer norm, dropout."""
        if self.residual and k > 0:
            proj = getattr(self, f"residual_proj_l{k}", None)
            out = out + (inp if proj is None else proj(inp))
        if self.layer_norm == "output":
            out = getattr(self, f"layer_norm_l{k}")(out)
        if k < self.num_layers - 1 and self.dropout > 0:
            out = F.dropout(out, self.dropout, self.training)
        return out

    def _check_input(self, x: Tensor, lengths: Tensor | None) -> None:
        if x.dim() != 3:
            raise ValueError(f"input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input feature size must equal input_size={self.input_size}, got {x.shape[-1]}")
        if lengths is not None:
            lens = torch.as_tensor(lengths)
            if lens.shape != (x.shape[1],) or lens.min() < 1 or lens.max() > x.shape[0]:
                raise ValueError(f"lengths must be {x.shape[1]} ints in [1, {x.shape[0]}], got {lens.tolist()}")

    def _initial_state(self, state: RecurrentState | None, batch: int, x: Tensor) -> tuple[list, list | None]:
        """Split a torch.nn-shaped state (or a per-layer list) into per-layer (dirs, B, H_k) tensors."""
        dirs = self.num_directions
        if state is None:
            h0 = [x.new_zeros(dirs, batch, size) for size in self.layer_sizes]
            return h0, ([h.clone() for h in h0] if self.spec.has_cell else None)
        if self.spec.has_cell:
            if not isinstance(state, tuple) or len(state) != 2:
                raise ValueError(f"state for cell={self.cell!r} must be a tuple (h_0, c_0)")
            return self._split_state(state[0], batch), self._split_state(state[1], batch)
        return self._split_state(state, batch), None

    def _split_state(self, s: Tensor | list, batch: int) -> list[Tensor]:
        """Per-layer (dirs, B, H_k) views of one state; a wrong shape fails naming the shape expected."""
        layers = s if isinstance(s, list) else list(s.split(self.num_directions, dim=0))
        expected = [(self.num_directions, batch, size) for size in self.layer_sizes]
        if [tuple(t.shape) for t in layers] != expected:
            got = [tuple(t.shape) for t in layers] if isinstance(s, list) else tuple(s.shape)
            want = expected if isinstance(s, list) else (self.num_layers * self.num_directions, batch, expected[0][2])
            raise ValueError(f"state must have shape {want} (num_layers*dirs, batch, hidden), got {got}")
        return layers

    def _final_state(self, h_n: list[Tensor], c_n: list) -> RecurrentState:
        uniform = len(set(self.layer_sizes)) == 1
        h = torch.cat(h_n, 0) if uniform else h_n
        if not self.spec.has_cell:
            return h
        return h, (torch.cat(c_n, 0) if uniform else c_n)

    def _fused_layer(
        self, k: int, inp: Tensor, h0: Tensor, c0: Tensor | None, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One layer (both directions) through torch's fused kernel; inp is time-major (T, B, I).

        Variable lengths run padded, one direction at a time (the reverse one on per-sequence reversed input), not
        packed: torch's packed-sequence backward on CPU is 10-20x slower than the padded one (measured: 1.31 s vs
        0.06 s for an LSTM at B=32, T=220, H=64). Valid steps never see the padding that follows them, so outputs
        are exact; h_n is read from each sequence's last valid output, and the LSTM's c_n is held through the
        padding by `_hold_cell_on_padding`."""
        if self.spec.fused_mode == "lstm" and onednn_lacks_bf16(inp.device):  # oneDNN's LSTM, float32 here
            with torch.autocast("cpu", enabled=False):
                cell = None if c0 is None else c0.float()
                return self._fused_layer(k, inp.float(), h0.float(), cell, lengths)
        kernel = getattr(torch._VF, self.spec.fused_mode)
        if lengths is None:
            weights = [w for d in range(self.num_directions) for w in self.layer_weights(k, d).values()]
            hx = (h0, c0) if self.spec.has_cell else h0
            res = kernel(inp, hx, weights, True, 1, 0.0, self.training, self.bidirectional, False)
            return res[0], res[1], (res[2] if c0 is not None else None)
        mask = step_mask(lengths, inp.shape[0], inp.device)
        last, rows = (lengths - 1).to(inp.device), torch.arange(inp.shape[1], device=inp.device)
        outs, hs, cs = [], [], []
        for d in range(self.num_directions):
            x_d = inp if d == 0 else reverse_padded(inp, lengths)
            weights = list(self.layer_weights(k, d).values())  # weight_ih, weight_hh, bias_ih, bias_hh
            hx = h0[d : d + 1]
            if c0 is not None:
                x_d, weights[0] = _hold_cell_on_padding(x_d, weights[0], mask)
                hx = (hx, c0[d : d + 1])
            res = kernel(x_d, hx, weights, True, 1, 0.0, self.training, False, False)
            out = res[0] * mask
            hs.append(out[last, rows])
            cs.append(res[2][0] if c0 is not None else None)
            outs.append(out if d == 0 else reverse_padded(out, lengths))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return out, torch.stack(hs), (torch.stack(cs) if c0 is not None else None)

    def _custom_layer(
        self, k: int, inp: Tensor, h0: Tensor, c0: Tensor | None, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One layer through the Python cells: each direction runs `run_layer` on its (reversed) input."""
        mask = step_mask(lengths, inp.shape[0], inp.device)
        outs, hs, cs = [], [], []
        for d in range(self.num_directions):
            gx, w_hh, b_hh, extra = self._cell_inputs(k, d, inp if d == 0 else reverse_padded(inp, lengths))
            c_d = None if c0 is None else c0[d]
            out, h, c = run_layer(self.spec, gx, h0[d], c_d, w_hh, b_hh, extra, mask, scratch=True)  # our gx
            outs.append(out if d == 0 else reverse_padded(out, lengths))
            hs.append(h)
            cs.append(c)
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return out, torch.stack(hs), (torch.stack(cs) if c0 is not None else None)

    def _cell_inputs(
        self, k: int, d: int, x: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None, tuple[Tensor, ...] | None]:
        """What the Python cells take for layer k, direction d: (gx, w_hh, b_hh, extra), by `CellSpec.inputs`.

        gx = x W_ih^T + b_ih (+ b_hh where the cell allows folding it) for x (..., I), or the cell's own form: over
        all steps at once when x is a sequence, which hoists the input projection out of the time loop."""
        w = self.layer_weights(k, d)
        gx, b_hh, extra = self.spec.inputs(self.spec, x, w)
        return gx, w["weight_hh"], b_hh, extra

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell}, input_size={self.input_size}, hidden_size={self.layer_sizes}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, impl={self.impl}, "
            f"residual={self.residual}, layer_norm={self.layer_norm}, forget_bias={self.forget_bias}"
            + (f", chrono_t_max={self.chrono_t_max}" if self.chrono_t_max is not None else "")
        )
