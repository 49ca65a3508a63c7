"""fast_lstm's and fast_gru's hand-written BPTT equal the per-step autograd loop of run_layer (values, gradients),
with their time loops in Python and compiled (fast_loops.cpp); the compiled loops fall back to Python."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from rnnbench.models import fast_loops, layer
from rnnbench.models.cells import get_cell
from rnnbench.models.layer import run_layer, step_loop_only

CELL_NAMES = ("lstm", "peephole_lstm", "gru")
# The compiled loops are the default; their first build on a machine takes 31 s to 3 min, once (cached), and every
# test of this file runs in one xdist worker (--dist loadfile), so the build is paid once per test session.
LOOPS = ("python", "compiled")


@pytest.fixture(params=LOOPS)
def loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with fast_lstm / fast_gru's time loops in Python, then compiled (skipped where unbuildable)."""
    if request.param == "python":
        monkeypatch.setenv(fast_loops.ENV, "0")
    else:
        monkeypatch.setenv(fast_loops.ENV, "1")
        if fast_loops.compiled() is None:
            pytest.skip("the compiled loops cannot be built here (no C++ compiler or ninja)")
    return request.param


def _inputs(cell: str, masked: bool, steps: int = 7, batch: int = 5, hidden: int = 6, dtype=torch.float32):
    """Leaves requiring grad, LSTM family (gx, h0, c0, w_hh, *peep) or GRU (gx, h0, w_hh, b_hh), and a mask."""
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (scale * torch.randn(*shape, generator=gen, dtype=dtype)).requires_grad_()

    lengths = torch.tensor([steps, 3, 1, steps - 2, steps][:batch])
    mask = (torch.arange(steps).unsqueeze(1) < lengths).unsqueeze(-1) if masked else None  # (T, B, 1)
    if cell == "gru":
        gx, h0 = leaf(steps, batch, 3 * hidden), leaf(batch, hidden)
        return [gx, h0, leaf(3 * hidden, hidden, scale=0.5), leaf(3 * hidden)], mask
    gx, h0, c0 = leaf(steps, batch, 4 * hidden), leaf(batch, hidden), leaf(batch, hidden)
    w_hh = leaf(4 * hidden, hidden, scale=0.5)
    peep = [leaf(hidden) for _ in range(3)] if cell == "peephole_lstm" else []
    return [gx, h0, c0, w_hh, *peep], mask


def _layer(cell: str, leaves: list[torch.Tensor], mask: torch.Tensor | None) -> list[torch.Tensor]:
    """run_layer over the leaves of `_inputs`: [out, h_T] (+ c_T for the LSTM family)."""
    if cell == "gru":
        gx, h0, w_hh, b_hh = leaves
        return list(run_layer(get_cell(cell), gx, h0, None, w_hh, b_hh, None, mask)[:2])
    gx, h0, c0, w_hh, *peep = leaves
    return list(run_layer(get_cell(cell), gx, h0, c0, w_hh, None, tuple(peep) or None, mask))


def _run(cell: str, leaves: list[torch.Tensor], mask, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """Outputs and the gradients of a random weighted sum of them w.r.t. every leaf."""
    results = _layer(cell, leaves, mask)
    loss = sum((r * w).sum() for r, w in zip(results, weights, strict=False))
    return [r.detach() for r in results] + list(torch.autograd.grad(loss, leaves))


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_equals_step_loop(cell: str, masked: bool, loops: str) -> None:
    leaves, mask = _inputs(cell, masked)
    weights = [torch.randn(7, 5, 6), torch.randn(5, 6), torch.randn(5, 6)]
    fast = _run(cell, leaves, mask, weights)
    with step_loop_only():
        slow = _run(cell, leaves, mask, weights)
    for got, want in zip(fast, slow, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if masked:  # output is zero past each sequence's end
        assert torch.all(fast[0][~mask.expand_as(fast[0])] == 0)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_gradcheck(cell: str, masked: bool, loops: str) -> None:
    leaves, mask = _inputs(cell, masked, steps=4, batch=5, hidden=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *xs: tuple(_layer(cell, list(xs), mask)), leaves)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unmasked_steps_run_fused_and_masked_ones_run_the_aten_ops(
    cell: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equality tests above cover both compiled paths only if each is taken: unmasked float32 / float64 layers
    run the fused elementwise loops, forward and backward; masked ones the ATen ops (the compiled loops count)."""
    monkeypatch.setenv(fast_loops.ENV, "1")
    module = fast_loops.compiled()
    if module is None:
        pytest.skip("the compiled loops cannot be built here (no C++ compiler or ninja)")
    for masked, fused in ((False, 1), (True, 0)):
        leaves, mask = _inputs(cell, masked, dtype=dtype)
        before = module.fused_calls()
        _layer(cell, leaves, mask)[0].sum().backward()
        assert [n - b for n, b in zip(module.fused_calls(), before, strict=True)] == [fused, fused]


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_fast_kernel_is_taken(cell: str) -> None:
    """Outside step_loop_only the layer is one hand-written autograd node, not a per-step graph."""
    leaves, _ = _inputs(cell, masked=False)
    node = "_GRUFunctionBackward" if cell == "gru" else "_LSTMFunctionBackward"
    assert type(_layer(cell, leaves, None)[0].grad_fn).__name__ == node


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_partial_requires_grad(cell: str, loops: str) -> None:
    """Only gx requires grad (frozen recurrent weights, constant state): the other gradients are skipped."""
    leaves = [t.detach() for t in _inputs(cell, masked=False)[0]]
    leaves[0].requires_grad_()
    (grad,) = torch.autograd.grad(_layer(cell, leaves, None)[0].sum(), [leaves[0]])
    with step_loop_only():
        (grad_ref,) = torch.autograd.grad(_layer(cell, leaves, None)[0].sum(), [leaves[0]])
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)


def test_step_loop_only_forces_the_loop() -> None:
    """Inside the context the graph is per-step cell ops (no fast node); it nests and restores on exit."""
    leaves, _ = _inputs("lstm", masked=False)
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


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_compiled_equals_python_loops(cell: str, masked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C++ loops equal the Python loops to float32 rounding, larger sizes too: masked steps run the same ATen ops
    in the same order (1e-6); unmasked ones the fused loops, whose own exp and fused multiply-adds round differently
    in the last bits, compounded over the steps and the backward (1e-5)."""
    monkeypatch.setenv(fast_loops.ENV, "1")
    if fast_loops.compiled() is None:
        pytest.skip("the compiled loops cannot be built here (no C++ compiler or ninja)")
    leaves, mask = _inputs(cell, masked, steps=9, batch=5, hidden=16)
    weights = [torch.randn(9, 5, 16), torch.randn(5, 16), torch.randn(5, 16)]
    compiled = _run(cell, leaves, mask, weights)
    monkeypatch.setenv(fast_loops.ENV, "0")
    python = _run(cell, leaves, mask, weights)
    tolerance = 1e-6 if masked else 1e-5
    for got, want in zip(compiled, python, strict=True):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


@pytest.fixture
def packed(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The compiled loops with the packed-weight loops available (skipped where they cannot run: no compiler, or a
    CPU without AVX2 and FMA); switched back on afterwards."""
    monkeypatch.setenv(fast_loops.ENV, "1")
    module = fast_loops.compiled()
    if module is None:
        pytest.skip("the compiled loops cannot be built here (no C++ compiler or ninja)")
    module.use_packed(True)
    if not module.packed_available():
        pytest.skip("the packed loops need x86-64 with AVX2 and FMA")
    yield module
    module.use_packed(True)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """torch's intra-op thread count for the test (the packed loops share each step among that many threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_packed_loops_equal_the_aten_matmul_loops(
    cell: str, dtype: torch.dtype, packed: ModuleType, threads: int
) -> None:
    """The packed loops (their own AVX2 matmul on packed weights, threads sharing each step by hidden units) equal
    the fused loops that call ATen's matmul, values and gradients. 70 units make a thread's last panel partial
    (float32: 48 + 22 units, panels of 16; float64: 40 + 30, panels of 8), 7 rows a 6-row block and a 1-row tail,
    and the backward's K = 4H = 280 two K chunks (256 + 24). The matmuls sum in another order: float32 agrees to
    1e-4 here (sums of 70-280 terms of size ~4, compounded over 4 steps and the backward), float64 to 1e-12."""
    leaves, _ = _inputs(cell, masked=False, steps=4, batch=7, hidden=70, dtype=dtype)
    blocks = 3 if cell == "gru" else 4
    assert packed.packed_threads(7, 70, blocks) == threads
    weights = [torch.randn(4, 7, 70, dtype=dtype), torch.randn(7, 70, dtype=dtype), torch.randn(7, 70, dtype=dtype)]
    before = packed.packed_calls()
    fast = _run(cell, leaves, None, weights)
    assert [n - b for n, b in zip(packed.packed_calls(), before, strict=True)] == [1, 1]
    packed.use_packed(False)
    before = packed.packed_calls()
    aten = _run(cell, leaves, None, weights)
    assert packed.packed_calls() == before
    tolerance = 1e-4 if dtype == torch.float32 else 1e-12
    for got, want in zip(fast, aten, strict=True):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_packed_loops_gradcheck_on_two_threads(cell: str, packed: ModuleType) -> None:
    """float64 gradcheck of the packed loops with two threads sharing each step (32 units, 11 rows: above the
    size under which one thread runs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        leaves, _ = _inputs(cell, masked=False, steps=3, batch=11, hidden=32, dtype=torch.float64)
        assert packed.packed_threads(11, 32, 3 if cell == "gru" else 4) == 2
        calls = packed.packed_calls()
        assert torch.autograd.gradcheck(lambda *xs: tuple(_layer(cell, list(xs), None)), leaves, fast_mode=True)
        assert all(n > b for n, b in zip(packed.packed_calls(), calls, strict=True))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("value", "on"), [("0", False), ("false", False), ("OFF", False), ("no", False),
                                          ("1", True), ("true", True), ("On", True), ("", True)])  # fmt: skip
def test_the_switch_reads_the_usual_spellings(value: str, on: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast_loops.ENV, value)
    assert fast_loops.enabled() is on


def test_a_misspelt_switch_is_one_line_naming_the_allowed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast_loops.ENV, "maybe")
    with pytest.raises(ValueError, match=r"^RNNBENCH_COMPILED_LOOPS='maybe': expected one of 0, false, off, no, 1,"):
        fast_loops.compiled()


def test_a_lock_left_by_a_killed_build_is_cleared_not_waited_on(tmp_path: Path, monkeypatch) -> None:
    """torch waits forever on its `lock` file while it exists; a build killed mid-way leaves it. Holding the flock,
    the next build knows nobody is building, removes it (one warning) and builds into the same folder."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv(fast_loops.ENV, "1")
    monkeypatch.setattr(fast_loops, "_state", {})
    folder = tmp_path / fast_loops._name()
    folder.mkdir()
    (folder / "lock").write_text("")
    seen: dict[str, object] = {}

    def fake_load(**kwargs: object) -> ModuleType:
        seen.update(kwargs, lock_there=(folder / "lock").exists())
        return ModuleType("built")

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    with pytest.warns(UserWarning, match="stale build lock"):
        assert fast_loops.compiled().__name__ == "built"
    assert seen["build_directory"] == str(folder) and seen["lock_there"] is False


def test_compiled_loops_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disabled: None without a build. A failed build: one RuntimeWarning saying why, None, and the Python loops."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv(fast_loops.ENV, "0")
    assert fast_loops.compiled() is None  # turned off: nothing is built
    monkeypatch.delenv(fast_loops.ENV)
    assert fast_loops.enabled()  # on by default
    monkeypatch.setattr(fast_loops, "_state", {})

    def no_compiler(**_: object) -> None:
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    with pytest.warns(RuntimeWarning, match="Ninja is required.*pure-PyTorch loops"):
        assert fast_loops.compiled() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fast_loops.compiled() is None  # remembered: no second attempt, no second warning
    leaves, _ = _inputs("lstm", masked=False)
    assert type(_layer("lstm", leaves, None)[0].grad_fn).__name__ == "_LSTMFunctionBackward"


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_scratch_projection_is_overwritten_only_when_asked(cell: str, masked: bool, loops: str) -> None:
    """`scratch=True` (Recurrent's own projection) writes the gates into gx and gives the same values and gradients
    as the default, which leaves the caller's gx untouched."""
    leaves, mask = _inputs(cell, masked)
    gx, h0, c0, w_hh, *peep = leaves
    before = gx.detach().clone()
    spec, extra = get_cell(cell), tuple(peep) or None
    kept = run_layer(spec, gx, h0, c0, w_hh, None, extra, mask)
    assert torch.equal(gx, before)
    projected = gx * 1.0  # a non-leaf made for the call, as Recurrent's projection is
    mine = run_layer(spec, projected, h0, c0, w_hh, None, extra, mask, scratch=True)
    assert not torch.equal(projected, before)  # overwritten by the activations
    weights = [torch.randn_like(t) for t in kept]
    grads = [
        torch.autograd.grad(sum((r * w).sum() for r, w in zip(out, weights, strict=True)), leaves)
        for out in (kept, mine)
    ]
    for got, want in zip([*mine, *grads[1]], [*kept, *grads[0]], strict=True):
        torch.testing.assert_close(got, want)
