"""fast_lstm's hand-written BPTT equals the per-step autograd loop of run_layer (values and every gradient)."""

from __future__ import annotations

import pytest
import torch

from rnnbench.models import layer
from rnnbench.models.cells import get_cell
from rnnbench.models.fast_lstm import lstm_layer
from rnnbench.models.layer import run_layer, step_loop_only

CELL_NAMES = ("lstm", "peephole_lstm")


def _inputs(cell: str, masked: bool, steps: int = 7, batch: int = 5, hidden: int = 6, dtype=torch.float32):
    """Leaves (gx, h0, c0, w_hh, *peep) requiring grad, the peephole tuple (or None) and a mask (or None)."""
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (scale * torch.randn(*shape, generator=gen, dtype=dtype)).requires_grad_()

    gx, h0, c0 = leaf(steps, batch, 4 * hidden), leaf(batch, hidden), leaf(batch, hidden)
    w_hh = leaf(4 * hidden, hidden, scale=0.5)
    peep = tuple(leaf(hidden) for _ in range(3)) if cell == "peephole_lstm" else None
    lengths = torch.tensor([steps, 3, 1, steps - 2, steps][:batch])
    mask = (torch.arange(steps).unsqueeze(1) < lengths).unsqueeze(-1) if masked else None  # (T, B, 1)
    return [gx, h0, c0, w_hh, *(peep or ())], peep, mask


def _run(cell: str, leaves: list[torch.Tensor], peep, mask, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """Outputs (out, h_T, c_T) and the gradients of a random weighted sum of them w.r.t. every leaf."""
    gx, h0, c0, w_hh = leaves[:4]
    results = run_layer(get_cell(cell), gx, h0, c0, w_hh, None, peep, mask)
    loss = sum((r * w).sum() for r, w in zip(results, weights, strict=True))
    return [r.detach() for r in results] + list(torch.autograd.grad(loss, leaves))


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_equals_step_loop(cell: str, masked: bool) -> None:
    leaves, peep, mask = _inputs(cell, masked)
    weights = [torch.randn(7, 5, 6), torch.randn(5, 6), torch.randn(5, 6)]
    fast = _run(cell, leaves, peep, mask, weights)
    with step_loop_only():
        slow = _run(cell, leaves, peep, mask, weights)
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if masked:  # output is zero past each sequence's end
        assert torch.all(fast[0][~mask.expand_as(fast[0])] == 0)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_gradcheck(cell: str, masked: bool) -> None:
    leaves, _, mask = _inputs(cell, masked, steps=4, batch=5, hidden=3, dtype=torch.float64)

    def fn(gx, h0, c0, w_hh, *peep_leaves):
        return lstm_layer(gx, h0, c0, w_hh, tuple(peep_leaves) or None, mask)

    assert torch.autograd.gradcheck(fn, leaves)


def test_partial_requires_grad() -> None:
    """Only gx requires grad (frozen recurrent weights, constant state): the other gradients are skipped."""
    leaves, _, _ = _inputs("lstm", masked=False)
    gx, h0, c0, w_hh = (t.detach() for t in leaves)
    gx.requires_grad_()
    out, _, _ = lstm_layer(gx, h0, c0, w_hh)
    (grad,) = torch.autograd.grad(out.sum(), [gx])
    with step_loop_only():
        out_ref, _, _ = run_layer(get_cell("lstm"), gx, h0, c0, w_hh, None, None, None)
        (grad_ref,) = torch.autograd.grad(out_ref.sum(), [gx])
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)


def test_step_loop_only_forces_the_loop() -> None:
    """Inside the context the graph is per-step cell ops (no fast node); it nests and restores on exit."""
    leaves, _, _ = _inputs("lstm", masked=False)
    gx, h0, c0, w_hh = leaves

    def grad_fn_name() -> str:
        return type(run_layer(get_cell("lstm"), gx, h0, c0, w_hh, None, None, None)[0].grad_fn).__name__

    assert "LSTMFunction" in grad_fn_name()
    with step_loop_only():
        assert grad_fn_name() == "StackBackward0"
        with step_loop_only():
            pass
        assert grad_fn_name() == "StackBackward0"
    assert "LSTMFunction" in grad_fn_name()
    assert not layer._STEP_LOOP_ONLY.get()
