"""Parameter counts: measured on a module, and the closed form for a recurrent stack.

Per layer and direction a cell with G gates has G*(H*(I + H) + 2H) parameters (input and recurrent weights plus
torch.nn's two bias vectors b_ih and b_hh), with G = 1 for the Elman RNN, 4 for the LSTM and 3 for the GRU; the
peephole LSTM adds three diagonal peephole vectors, 3H. Layer k > 0 sees I = directions * H_{k-1}.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from rnnbench.models.cells import get_cell

__all__ = ["count_parameters", "recurrent_parameter_count"]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable (requires_grad) scalar parameters in a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def recurrent_parameter_count(
    cell: str,
    input_size: int,
    hidden_size: int | Sequence[int],
    num_layers: int = 1,
    bidirectional: bool = False,
) -> int:
    """Analytic parameter count of a `Recurrent` / torch.nn.RNN/LSTM/GRU stack (no residual or layer norm)."""
    spec = get_cell(cell)
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
        raise ValueError(f"input_size must be a positive int, got {input_size!r}")
    if isinstance(hidden_size, int):
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
        sizes = [hidden_size] * num_layers
    else:
        sizes = list(hidden_size)
    if not sizes or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in sizes):
        raise ValueError(
            f"hidden_size must be a positive int or a non-empty list of positive ints, got {hidden_size!r}"
        )
    dirs = 2 if bidirectional else 1
    total, in_size = 0, input_size
    for h in sizes:
        per_direction = spec.gates * (h * (in_size + h) + 2 * h) + (3 * h if spec.peepholes else 0)
        total += dirs * per_direction
        in_size = dirs * h
    return total
