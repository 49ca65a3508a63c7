"""The tagging task: determinism, splits, the tag rule near borders, input-blind baselines, a smoke run, and that
a bidirectional body is allowed (it is the point of the task)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassF1Score

from rnnbench.tasks.tagging import TaggingTask, tag_distribution
from rnnbench.training.config import compose_config, preflight
from rnnbench.training.train import train

SMALL = {"n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 16}


def test_same_seed_same_data_other_seed_other_data_and_split_sizes() -> None:
    batches = []
    for seed in (3, 3, 4):
        task = TaggingTask(seq_len=20, data_seed=seed, **SMALL)
        task.setup()
        batches.append(next(iter(task.val_dataloader())))
    a, b, c = batches
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a["x"], c["x"])
    assert a["x"].shape == (16, 20, 10) and torch.all(a["x"].sum(-1) == 1)
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 64, "val": 32, "test": 32}


def reference_tags(tokens: list[int], lookahead: int, lookbehind: int) -> list[int]:
    """The rule, position by position: 2*odd(token behind) + odd(token ahead), outside the sequence even."""

    def odd(i: int) -> int:
        return tokens[i] % 2 if 0 <= i < len(tokens) else 0

    return [2 * odd(t - lookbehind) + odd(t + lookahead) for t in range(len(tokens))]


@pytest.mark.parametrize(("lookahead", "lookbehind"), [(1, 0), (2, 1), (3, 3), (5, 2)])
def test_tags_follow_the_rule(lookahead: int, lookbehind: int) -> None:
    cols = TaggingTask.generate(
        20, np.random.default_rng(lookahead), seq_len=12, vocab_size=7, lookahead=lookahead, lookbehind=lookbehind
    )
    assert cols["x"].min() >= 0 and cols["x"].max() <= 6
    for x, y in zip(cols["x"], cols["y"], strict=True):
        assert y.tolist() == reference_tags(x.tolist(), lookahead, lookbehind)
    assert set(cols["y"][:, -lookahead:].flatten().tolist()) == {0, 2}  # the future is padding: even
    assert set(cols["y"][:, :lookbehind].flatten().tolist()) <= {0, 1}  # the past is padding: even


def test_baseline_matches_the_label_distribution_of_a_split() -> None:
    task = TaggingTask(seq_len=12, vocab_size=5, lookahead=3, lookbehind=2, n_train=8, n_val=8, n_test=4000)
    task.setup()
    y = task.splits["test"].columns["y"].flatten()
    freq = torch.bincount(y, minlength=4).double() / y.numel()
    expected = tag_distribution(12, 5, 3, 2)
    np.testing.assert_allclose(freq.numpy(), expected, atol=0.01)
    # vocab 5: P(odd) = 2/5; the 2 first positions have an even past, the 3 last an even future.
    p_odd = 2 / 5
    interior_even_even = (1 - p_odd) ** 2
    assert expected[0] == pytest.approx(
        (7 * interior_even_even + 2 * (1 - p_odd) + 3 * (1 - p_odd)) / 12
    )  # 7 interior positions, 2 with only the future free, 3 with only the past free
    base = task.baseline()
    assert base["acc"] == pytest.approx(freq.max().item(), abs=0.01)  # always the majority tag
    assert base["loss"] == pytest.approx(-(freq * freq.log()).sum().item(), abs=0.01)  # predicting the frequencies
    guesses = torch.multinomial(freq.float(), y.numel(), replacement=True, generator=torch.Generator().manual_seed(0))
    f1 = MulticlassF1Score(4, average="macro")(guesses, y).item()
    assert base["macro_f1"] == 0.25 and f1 == pytest.approx(0.25, abs=0.01)
    assert math.isclose(sum(expected), 1.0)


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"seq_len": 6}, "seq_len"),  # <= lookahead + lookbehind
        ({"lookahead": 0}, "lookahead"),
        ({"lookbehind": -1}, "lookbehind"),
        ({"vocab_size": 1}, "vocab_size"),
    ],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} must be"):
        TaggingTask(**{"seq_len": 50, **bad})


def test_bidirectional_bodies_are_allowed() -> None:
    assert preflight(["task=tagging", "model.bidirectional=true"]) == 1


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    overrides = ["task=tagging", "task.seq_len=20", "model=lstm", "model.hidden_size=16", "model.bidirectional=true"]
    sizes = ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=32"]
    record = train(compose_config(["trainer=smoke", "logger=none", *sizes, *overrides]), tmp_path / "run")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/acc", "test/macro_f1"}
    assert record["baseline"]["macro_f1"] == 0.25
