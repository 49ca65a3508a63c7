"""The counting task (a^n b^n, a^n b^n c^n): the strings and their legal-next-symbol targets, per-split lengths,
the acceptance metrics (max_n exact over every n), the baselines (analytic == empirical), errors, a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.tasks.counting import CountingTask, encode, memoryless_loss
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train

SMALL = {"train_max_n": 5, "val_max_n": 8, "test_max_n": 12, "n_train": 64, "batch_size": 16}


def legal_next(prefix: str, variant: str) -> set[str]:
    """Independent reading of the language: the symbols that can follow `prefix` in some string of it."""
    letters = "ab" if variant == "anbn" else "abc"
    longest = 2 * len(prefix) + 2
    strings = ["S" + "".join(c * n for c in letters) + "E" for n in range(1, longest)]
    return {s[len(prefix)] for s in strings if s.startswith(prefix) and len(s) > len(prefix)}


@pytest.mark.parametrize("variant", ["anbn", "anbncn"])
def test_targets_are_the_legal_next_symbols(variant: str) -> None:
    units = ("ab" if variant == "anbn" else "abc") + "E"
    symbols = "S" + units[:-1]
    ns = torch.tensor([1, 2, 3, 7])
    ids, target, mask = encode(ns, variant)
    k = len(units) - 1
    assert mask.sum(1).tolist() == [k * n + 1 for n in ns.tolist()]
    for row, n in enumerate(ns.tolist()):
        string = "".join(symbols[i] for i in ids[row, : k * n + 1].tolist())
        assert string == "S" + "".join(c * n for c in units[:-1])
        for t in range(k * n + 1):
            expected = legal_next(string[: t + 1], variant)
            assert {units[u] for u in torch.nonzero(target[row, t]).flatten().tolist()} == expected
        assert torch.all(target[row, k * n + 1 :] == 0) and torch.all(ids[row, k * n + 1 :] == 0)


def test_splits_hold_every_length_once_and_train_only_short_ones() -> None:
    task = CountingTask(**SMALL)
    task.setup()
    assert task.splits["val"].columns["n"].tolist() == list(range(1, 9))
    assert task.splits["test"].columns["n"].tolist() == list(range(1, 13))
    train_n = task.splits["train"].columns["n"]
    assert len(train_n) == 64 and set(train_n.tolist()) == set(range(1, 6))  # 64 draws cover all 5 lengths
    batch = next(iter(task.test_dataloader()))
    lengths = batch["lengths"]
    assert batch["x"].shape == (12, 25, 3) and lengths.tolist() == [2 * n + 1 for n in range(1, 13)]
    assert torch.equal(batch["x"].sum(-1), batch["mask"].float())  # one symbol per valid step, zeros after
    other = CountingTask(**SMALL, data_seed=1)
    other.setup()
    assert not torch.equal(other.splits["train"].columns["n"], train_n)
    assert torch.equal(other.splits["test"].columns["n"], task.splits["test"].columns["n"])


def test_caps_keep_the_shortest_strings() -> None:
    task = CountingTask(**SMALL, n_val=3, n_test=100)
    task.setup()
    assert task.splits["val"].columns["n"].tolist() == [1, 2, 3]
    assert len(task.splits["test"]) == 12 and task.perfect == 12.0


def scores(task: CountingTask, batch: dict[str, torch.Tensor], wrong_at: dict[int, int]) -> dict[str, float]:
    """The task's metrics for perfect logits, except one flipped unit at step t of string n (n -> t)."""
    logits = batch["y"] * 20 - 10
    for n, t in wrong_at.items():
        logits[n - 1, t, 0] *= -1
    metrics = task.make_metrics()
    metrics.update(*task.metric_inputs(logits, batch))
    return {k: v.item() for k, v in metrics.compute().items()}


def test_max_n_is_the_longest_unbroken_run_of_accepted_lengths() -> None:
    task = CountingTask(**SMALL)
    task.setup()
    batch = task.collate(task.splits["test"].columns)
    assert scores(task, batch, {}) == {"max_n": 12.0, "accept_rate": 1.0}
    assert scores(task, batch, {7: 0}) == pytest.approx({"max_n": 6.0, "accept_rate": 11 / 12})
    assert scores(task, batch, {7: 3, 3: 5}) == pytest.approx({"max_n": 2.0, "accept_rate": 10 / 12})
    assert scores(task, batch, {1: 0}) == pytest.approx({"max_n": 0.0, "accept_rate": 11 / 12})
    # A wrong prediction on a padded step (past the string's end) does not reject it.
    padded = batch["y"] * 20 - 10
    padded[0, -1] = 10.0
    metrics = task.make_metrics()
    metrics.update(*task.metric_inputs(padded, batch))
    assert metrics.compute()["max_n"].item() == 12.0


def test_max_n_accumulates_over_batches_in_any_order() -> None:
    task = CountingTask(**SMALL)
    task.setup()
    batch = task.collate(task.splits["test"].columns)
    logits = batch["y"] * 20 - 10
    logits[9, 0, 0] = -10.0  # n = 10 rejected
    metrics = task.make_metrics()
    for rows in (torch.tensor([11, 3, 9]), torch.tensor([0, 1, 2, 4, 5, 6, 7, 8, 10])):
        part = task.collate({"n": batch["n"][rows]})
        metrics.update(*task.metric_inputs(logits[rows, : part["x"].shape[1]], part))
    assert metrics.compute()["max_n"].item() == 9.0


@pytest.mark.parametrize("variant", ["anbn", "anbncn"])
def test_memoryless_loss_is_the_conditional_entropy_of_the_test_split(variant: str) -> None:
    task = CountingTask(variant=variant, **SMALL)
    task.setup()
    batch = task.collate(task.splits["test"].columns)
    symbols, mask, y = batch["x"].argmax(-1), batch["mask"], batch["y"]
    nats = 0.0
    for v in range(task.input_size):
        here = mask & (symbols == v)
        p = y[here].mean(0).tolist()
        nats += here.sum().item() * sum(-q * math.log(q) - (1 - q) * math.log(1 - q) for q in p if 0 < q < 1)
    assert nats / mask.sum().item() == pytest.approx(task.baseline()["loss"], rel=1e-6)
    # The memoryless predictor itself (unit frequencies per current symbol) scores that loss.
    freq = torch.stack([y[mask & (symbols == v)].mean(0) for v in range(task.input_size)])
    logits = torch.logit(freq[symbols].clamp(1e-7, 1 - 1e-7))
    assert task.loss(logits, batch).item() == pytest.approx(task.baseline()["loss"], rel=1e-3)
    assert memoryless_loss("anbn", 1) == 0.0  # ab only: nothing left to guess


def test_baseline_is_fitting_the_training_lengths() -> None:
    task = CountingTask()
    base = task.baseline()
    assert base["max_n"] == 50.0 and base["accept_rate"] == 0.25 and task.perfect == 200.0
    assert task.beats_baseline(100.0) and not task.beats_baseline(60.0) and not task.beats_baseline(50.0)


def test_a_memoryless_predictor_accepts_only_n_1() -> None:
    task = CountingTask(**SMALL)
    task.setup()
    batch = task.collate(task.splits["test"].columns)
    symbols = batch["x"].argmax(-1)
    # After b it must guess "more b" or "end": guessing "end" accepts ab and nothing longer.
    sets = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 1]])  # after S, after a, after b
    logits = sets[symbols] * 20 - 10
    metrics = task.make_metrics()
    metrics.update(*task.metric_inputs(logits, batch))
    assert metrics.compute()["max_n"].item() == 1.0


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"variant": "dyck"}, "variant"),
        ({"train_max_n": 0}, "train_max_n"),
        ({"val_max_n": 4}, "val_max_n"),  # < train_max_n
        ({"test_max_n": 7}, "test_max_n"),  # < val_max_n
        ({"n_val": 0}, "n_val"),
    ],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} must be"):
        CountingTask(**{**SMALL, **bad})


def test_generate_every_n_is_the_range() -> None:
    cols = CountingTask.generate(4, np.random.default_rng(0), max_n=9, every_n=True)
    assert cols["n"].tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="at most 9"):
        CountingTask.generate(10, np.random.default_rng(0), max_n=9, every_n=True)


def test_bidirectional_bodies_are_refused() -> None:
    with pytest.raises(ConfigError, match="bidirectional"):
        preflight(["task=counting", "model.bidirectional=true"])
    with pytest.raises(ConfigError, match=r"^task\.test_max_n must be"):
        preflight(["task=counting", "task.test_max_n=60"])
    assert preflight(["task=counting", "task.variant=anbncn", "model=gru"]) == 1


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    overrides = ["task=counting", "task.variant=anbncn", "model=lstm", "model.hidden_size=8", "budget=smoke"]
    record = train(compose_config(["logger=none", *overrides]), tmp_path / "run")
    assert record["status"] == "finished"
    assert record["task"] == "counting_anbncn"  # one counter or two: reported apart
    assert set(record["test"]) == {"test/loss", "test/max_n", "test/accept_rate"}
    # The smoke budget caps the test split at its 32 shortest strings; the baseline follows the cap.
    assert 0 <= record["test"]["test/max_n"] <= 32 and record["baseline"]["max_n"] == 32.0
