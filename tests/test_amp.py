"""The hand-written recurrences under autocast (models/amp.py): float32 inside, close to float32 outside, and
untouched without autocast. Every cell and implementation, forward and backward, under CPU bfloat16 autocast."""

from __future__ import annotations

import pytest
import torch

from rnnbench.models.amp import onednn_lacks_bf16
from rnnbench.models.recurrent import Recurrent

CASES = [
    ("lstm", "fused", "none"),
    ("lstm", "custom", "none"),  # fast_lstm
    ("peephole_lstm", "custom", "none"),  # fast_lstm with peepholes
    ("gru", "fused", "none"),
    ("gru", "custom", "none"),  # fast_gru
    ("rnn", "fused", "none"),
    ("rnn", "custom", "none"),  # the per-step loop
    ("lstm", "custom", "cell"),  # layer_norm.py: the per-step loop
    ("gru", "custom", "cell"),
    ("rnn", "custom", "output"),
]


def _grads(model: Recurrent, x: torch.Tensor, lengths: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, list]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out, _ = model(x, lengths=lengths)
    out.float().square().mean().backward()
    return out, [p.grad for p in model.parameters()]


@pytest.mark.parametrize(("cell", "impl", "layer_norm"), CASES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_cell_trains_under_bf16_autocast(cell: str, impl: str, layer_norm: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = Recurrent(cell, 3, 8, num_layers=2, bidirectional=bidirectional, impl=impl, layer_norm=layer_norm)
    x, lengths = torch.randn(4, 6, 3), torch.tensor([6, 2, 5, 1])
    out32, grads32 = _grads(model, x, lengths, autocast=False)
    out16, grads16 = _grads(model, x, lengths, autocast=True)
    if impl == "custom" and cell in ("lstm", "peephole_lstm", "gru") and layer_norm == "none":
        assert out16.dtype == torch.float32  # fast_lstm / fast_gru ran in float32 on a bf16 input projection
    # bfloat16 keeps 8 significant bits: outputs move by < 0.02 and each gradient by < 2 % of its norm (measured
    # <= 0.7 %; 1.5 % for the bidirectional fused GRU), except in the layer-normalised cells, whose normalisation of
    # W_h h_0 = 0 amplifies the rounding (measured up to 8 % in the LSTM's): nothing is lost or non-finite
    out_tol, grad_tol = (0.03, 0.15) if layer_norm == "cell" else (0.02, 0.03)
    torch.testing.assert_close(out16.float(), out32, atol=out_tol, rtol=0)
    for g16, g32 in zip(grads16, grads32, strict=True):
        assert g16 is not None and g16.dtype == torch.float32 and torch.isfinite(g16).all()
        assert (g16 - g32).norm() <= grad_tol * g32.norm()


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm", "gru"])
def test_without_autocast_nothing_changes(cell: str) -> None:
    """The decorators are a no-op outside autocast: float64 stays float64 (gradcheck's dtype), float32 as before."""
    torch.manual_seed(0)
    model = Recurrent(cell, 3, 4, impl="custom").double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    out, _ = model(x)
    assert out.dtype == torch.float64
    assert torch.autograd.gradcheck(lambda inp: model(inp)[0], (x,))


def test_the_fused_lstm_runs_in_float32_exactly_where_onednn_lacks_bfloat16() -> None:
    """Where oneDNN has bfloat16 kernels the fused LSTM runs in bfloat16 as autocast asks; where it has none (this
    project's AVX2-less CPU) it would fail, so it runs in float32. The predicate holds only under CPU bf16 autocast."""
    cpu = torch.device("cpu")
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert not onednn_lacks_bf16(cpu)  # no autocast
    with torch.autocast("cpu", dtype=torch.float16):
        assert not onednn_lacks_bf16(cpu)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lacks = onednn_lacks_bf16(cpu)
        assert lacks is (torch.backends.mkldnn.is_available() and not bf16)
        assert not onednn_lacks_bf16(torch.device("meta"))
        out, _ = Recurrent("lstm", 3, 8, impl="fused")(torch.randn(2, 5, 3))
    assert out.dtype == (torch.float32 if lacks else torch.bfloat16)
