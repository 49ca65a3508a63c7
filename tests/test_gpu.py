"""The GPU path on a real CUDA device: cuDNN gets flat weights, fused equals custom there, mixed precision and
`trainer=gpu` runs finish, `rnnbench-bench --device cuda` measures. Skipped without CUDA (CI, this project's CPU
machines); `benchmarks/gpu_check.sh` runs it on a GPU. Written by construction: not yet run on a GPU.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

from rnnbench.benchmark import run as bench
from rnnbench.models.recurrent import Recurrent
from rnnbench.training.config import compose_config
from rnnbench.training.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)")

CUDA = torch.device("cuda")
COPY_WARNING = "RNN module weights are not part of single contiguous chunk of memory"
# cuDNN's RNNs may compute in TF32 (torch's default on Ampere and later, 10-bit mantissa): 1e-2 still tells a wrong
# weight layout (gates or directions swapped: differences of order 1) from rounding.
TOL = {"atol": 1e-2, "rtol": 1e-2}
SMALL = ["trainer.enable_progress_bar=false", "task=adding", "task.seq_len=20", "task.n_train=64", "task.n_val=32"]
SMALL += ["task.n_test=32", "task.batch_size=32"]


def _train_step(model: Recurrent, x: torch.Tensor, lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Output and every parameter's gradient of one forward + backward, on CPU."""
    model.zero_grad(set_to_none=True)
    out, _ = model(x, lengths=lengths)
    out.square().sum().backward()
    return [out.detach().cpu(), *(p.grad.cpu() for p in model.parameters())]


def _copy_warnings(step: object) -> list[str]:
    """The warnings torch gives while `step` runs that say cuDNN copied the weights (not flat)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step()
    return [str(w.message) for w in caught if COPY_WARNING in str(w.message)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_cudnn_gets_flat_weights_and_results_match_cpu(cell: str) -> None:
    torch.manual_seed(0)
    cpu = Recurrent(cell, 8, [16, 12], bidirectional=True, impl="fused")
    model = Recurrent(cell, 8, [16, 12], bidirectional=True, impl="fused")
    model.load_state_dict(cpu.state_dict())
    model.to(CUDA)  # flattens (Recurrent._apply)
    for k in range(model.num_layers):
        weights = [w for d in range(2) for w in model.layer_weights(k, d).values()]
        assert len({w.untyped_storage().data_ptr() for w in weights}) == 1  # one cuDNN buffer per layer
    x = torch.randn(4, 9, 8)
    assert _copy_warnings(lambda: _train_step(model, x.to(CUDA))) == []
    for got, want in zip(_train_step(model, x.to(CUDA)), _train_step(cpu, x), strict=True):
        torch.testing.assert_close(got, want, **TOL)
    model.weight_hh_l1.data = model.weight_hh_l1.data.clone()  # break the layout: cuDNN must copy, and says so
    assert _copy_warnings(lambda: _train_step(model, x.to(CUDA)))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_custom_equals_fused_on_cuda_with_lengths(cell: str) -> None:
    torch.manual_seed(0)
    fused = Recurrent(cell, 5, 7, num_layers=2, bidirectional=True, impl="fused").to(CUDA)
    custom = Recurrent(cell, 5, 7, num_layers=2, bidirectional=True, impl="custom").to(CUDA)
    custom.load_state_dict(fused.state_dict())
    x, lengths = torch.randn(3, 6, 5, device=CUDA), torch.tensor([6, 2, 4])
    for got, want in zip(_train_step(custom, x, lengths), _train_step(fused, x, lengths), strict=True):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("cell", "impl"), [("lstm", "fused"), ("lstm", "custom"), ("peephole_lstm", "custom"),
                                            ("gru", "fused"), ("gru", "custom")])  # fmt: skip
def test_autocast_on_cuda_trains_every_implementation(cell: str, impl: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = Recurrent(cell, 5, 16, bidirectional=True, impl=impl).to(CUDA)
    x, lengths = torch.randn(4, 10, 5, device=CUDA), torch.tensor([10, 3, 7, 1])
    reference = _train_step(model, x, lengths)
    with torch.autocast("cuda", dtype=dtype):
        out, _ = model(x, lengths=lengths)
    model.zero_grad(set_to_none=True)
    out.float().square().sum().backward()
    torch.testing.assert_close(out.float().cpu(), reference[0], atol=0.05, rtol=0.05)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("model", [["model=lstm"], ["model=gru"], ["model=peephole_lstm"]])
def test_trainer_gpu_runs_finish_and_record_the_device(model: list[str], precision: str, tmp_path: Path) -> None:
    overrides = ["trainer=gpu", "trainer.max_epochs=1", "logger=none", *SMALL, *model, f"trainer.precision={precision}"]
    record = train(compose_config(overrides), tmp_path, overrides)
    assert record["status"] == "finished" and record["steps_completed"] == 2
    assert all(math.isfinite(v) for v in [*record["test"].values(), *record["best_val"].values()])
    device = record["device"]
    assert (device["accelerator"], device["precision"]) == ("cuda", precision)
    assert device["cuda"] and isinstance(device["cudnn"]["version"], int)
    assert record["peak_memory_scope"] == "cuda" and record["peak_memory_mb"] > 0


def test_bench_on_cuda_measures_both_implementations(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--device", "cuda", "--shapes", "4x5x3x8", "--repeats", "2", "--warmup", "1", "--cells", "lstm", "gru"]
    doc = bench([*argv, "--directions", "uni", "--sizings", "equal_hidden", "--print-json"])
    capsys.readouterr()
    impls = {(e["cell"], e["impl"]) for e in doc["entries"]}
    assert impls == {("lstm", "torch.nn"), ("lstm", "fused"), ("lstm", "custom"), ("gru", "fused"), ("gru", "custom")}
    assert all(e["time_ms"]["median"] > 0 and e["peak_bytes"] > 0 for e in doc["entries"])
    assert doc["environment"]["device"] == torch.cuda.get_device_name(CUDA)
    assert doc["environment"]["device_settings"]["cudnn"]["version"] > 0
