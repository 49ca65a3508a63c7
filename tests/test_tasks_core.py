"""The two long-lag tasks of the harness: data determinism, splits, targets, baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnbench.tasks.adding import AddingTask
from rnnbench.tasks.base import split_seed
from rnnbench.tasks.copy_memory import BLANK, DELIMITER, CopyMemoryTask

SMALL = {"n_train": 256, "n_val": 64, "n_test": 128, "batch_size": 32}


def first_batch(task_cls: type, **kwargs: object) -> dict[str, torch.Tensor]:
    task = task_cls(**{**SMALL, **kwargs})
    task.setup()
    return next(iter(task.val_dataloader()))


@pytest.mark.parametrize("task_cls", [AddingTask, CopyMemoryTask])
def test_same_seed_same_data_other_seed_other_data(task_cls: type) -> None:
    a = first_batch(task_cls, seq_len=12, data_seed=3)
    b = first_batch(task_cls, seq_len=12, data_seed=3)
    c = first_batch(task_cls, seq_len=12, data_seed=4)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a["x"], c["x"])


@pytest.mark.parametrize("task_cls", [AddingTask, CopyMemoryTask])
def test_split_sizes_and_independent_split_seeds(task_cls: type) -> None:
    task = task_cls(seq_len=10, **SMALL)
    task.setup()
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 256, "val": 64, "test": 128}
    assert len({split_seed(0, s) for s in ("train", "val", "test")}) == 3


def test_adding_targets_are_the_sum_of_the_marked_values() -> None:
    batch = first_batch(AddingTask, seq_len=20)
    x, y = batch["x"], batch["y"]
    assert x.shape == (32, 20, 2)
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((32,), 2.0))
    assert torch.all(markers[:, :10].sum(1) == 1) and torch.all(markers[:, 10:].sum(1) == 1)
    torch.testing.assert_close((x[..., 0] * markers).sum(1), y)


def test_adding_hand_checked_example() -> None:
    cols = AddingTask.generate(1, np.random.default_rng(0), seq_len=6)
    values, markers = cols["x"][0, :, 0], cols["x"][0, :, 1]
    (first, second) = np.flatnonzero(markers)
    assert first < 3 <= second
    assert cols["y"][0] == pytest.approx(values[first] + values[second])


def test_adding_baseline_is_predicting_the_mean() -> None:
    task = AddingTask(seq_len=10, n_train=8, n_val=8, n_test=20000, batch_size=32)
    task.setup()
    y = task.splits["test"].columns["y"]
    assert task.baseline()["mse"] == pytest.approx(1 / 6)
    assert ((y - 1.0) ** 2).mean().item() == pytest.approx(1 / 6, abs=0.006)
    assert (y - 1.0).abs().mean().item() == pytest.approx(1 / 3, abs=0.006)
    assert task.beats_baseline(0.05) and not task.beats_baseline(0.16)


def test_copy_memory_layout_and_targets() -> None:
    cols = CopyMemoryTask.generate(4, np.random.default_rng(1), seq_len=7)
    x, y = cols["x"], cols["y"]
    assert x.shape == y.shape == (4, 27)
    assert np.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
    assert np.all(x[:, 16] == DELIMITER) and np.all(x[:, 10:16] == BLANK) and np.all(x[:, 17:] == BLANK)
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    assert np.all(y[:, :-10] == BLANK)


def test_copy_memory_batches_are_one_hot_and_baseline_matches_formula() -> None:
    task = CopyMemoryTask(seq_len=30, **SMALL)
    batch = first_batch(CopyMemoryTask, seq_len=30)
    assert batch["x"].shape == (32, 50, 10) and torch.all(batch["x"].sum(-1) == 1)
    assert task.baseline()["loss"] == pytest.approx(10 * math.log(8) / 50)
    assert task.baseline()["copy_acc"] == 1 / 8
    # The memoryless predictor (blank, then uniform over the 8 symbols) scores exactly that loss.
    logits = torch.full((32, 50, 10), -1e9)
    logits[:, :40, BLANK] = 0.0
    logits[:, 40:, 1:9] = 0.0
    assert task.loss(logits, batch).item() == pytest.approx(task.baseline()["loss"], rel=1e-5)


@pytest.mark.parametrize("bad", [{"seq_len": 0}, {"n_train": -1}, {"batch_size": 0}, {"seq_len": 2.5}])
def test_bad_sizes_name_the_argument(bad: dict[str, object]) -> None:
    key = next(iter(bad))
    with pytest.raises(ValueError, match=f"^{key} must be a positive int"):
        AddingTask(**{"seq_len": 10, **bad})
