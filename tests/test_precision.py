"""`trainer.precision`: bf16-mixed trains every implementation end to end on CPU, and every value Lightning accepts is
either run or refused at launch with its reason (training/precision.py)."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
import pytorch_lightning as pl

from rnnbench.training.config import compose_config
from rnnbench.training.precision import REFUSED, SUPPORTED, canonical, check_precision
from rnnbench.training.train import train
from rnnbench.training.typecheck import annotations

SMOKE = ["trainer=smoke", "logger=none", "task=adding", "task.seq_len=20", "task.n_train=64", "task.n_val=32"]
SMOKE += ["task.n_test=32", "task.batch_size=32"]


def _lightning_precisions() -> list[object]:
    """Every value `pytorch_lightning.Trainer(precision=...)` declares (its annotation: Optional[Union[Literal...]])."""
    members = typing.get_args(annotations(pl.Trainer)["precision"])  # nested unions come flattened
    return [v for m in members if typing.get_origin(m) is typing.Literal for v in typing.get_args(m)]


def test_every_lightning_precision_is_run_or_refused_with_a_reason() -> None:
    values = _lightning_precisions()
    assert {"bf16-mixed", "16-true", 32, "bf16"} <= set(values)
    for value in values:
        assert canonical(value) in (*SUPPORTED, *REFUSED), value
        error = check_precision(value, "gpu")
        assert (error is None) is (canonical(value) in SUPPORTED), (value, error)
        if error is not None:
            assert error.startswith(f"trainer.precision={value} is not supported: it ") and "\n" not in error
    assert check_precision(None) is None  # Lightning's default, 32-true
    assert check_precision("16-mixed", "auto") is None  # a GPU may be there when the job runs (SLURM, Ray)
    assert check_precision("16-mixed", "cpu").startswith("trainer.precision=16-mixed needs a GPU")
    assert check_precision(True, "cpu").startswith("trainer.precision must be one of 32-true, bf16-mixed")


@pytest.mark.parametrize(
    ("model", "precision"),
    [
        (["model=lstm"], "bf16-mixed"),  # torch's fused kernel (oneDNN on CPU)
        (["model=peephole_lstm"], "bf16-mixed"),  # the custom path: fast_lstm
        (["model=gru"], "bf16-mixed"),  # the custom path on CPU (impl=auto): fast_gru
        (["model=rnn", "model.layer_norm=cell"], "bf16-mixed"),  # the per-step loop (layer_norm.py)
        (["model=lstm", "model.impl=custom"], "64-true"),
    ],
)
def test_a_smoke_run_finishes_with_finite_metrics(model: list[str], precision: str, run_dir: Path) -> None:
    overrides = [*SMOKE, *model, f"trainer.precision={precision}"]
    record = train(compose_config(overrides), run_dir, overrides)
    assert record["status"] == "finished" and record["steps_completed"] == 2
    metrics = [*record["test"].values(), *record["best_val"].values(), record["history"][-1]["train/loss"]]
    assert len(metrics) >= 7 and all(math.isfinite(v) for v in metrics)
    assert record["device"]["accelerator"] == "cpu" and record["device"]["precision"] == precision
