"""The temporal order task: determinism, splits, the order rule, variable lengths, baseline, a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.tasks.temporal_order import END, START, VOCAB, TemporalOrderTask, X, Y, relevant_windows
from rnnbench.training.config import compose_config
from rnnbench.training.train import train

SMALL = {"n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 16}


def first_batch(**kwargs: object) -> dict[str, torch.Tensor]:
    task = TemporalOrderTask(**{**SMALL, **kwargs})
    task.setup()
    return next(iter(task.val_dataloader()))


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = (first_batch(seq_len=30, data_seed=s) for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "lengths"))
    assert a["x"].shape != c["x"].shape or not torch.equal(a["x"], c["x"])


def test_split_sizes() -> None:
    task = TemporalOrderTask(seq_len=20, **SMALL)
    task.setup()
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 64, "val": 32, "test": 32}


def order_class(seq: list[int]) -> int:
    """Independent reading of the rule: the X/Y symbols left to right, X=0 and Y=1, as a binary number."""
    bits = "".join("0" if s == X else "1" for s in seq if s in (X, Y))
    return int(bits, 2)


@pytest.mark.parametrize("n_relevant", [2, 3])
def test_generated_sequences_follow_the_paper_layout(n_relevant: int) -> None:
    rng = np.random.default_rng(5)
    cols = TemporalOrderTask.generate(200, rng, seq_len=100, n_relevant=n_relevant, length_jitter=0.1)
    windows = [(10, 20), (50, 60)] if n_relevant == 2 else [(10, 20), (33, 43), (66, 76)]
    assert relevant_windows(100, n_relevant) == windows
    lengths = [len(s) for s in cols["x"]]
    assert min(lengths) >= 100 and max(lengths) <= 110 and len(set(lengths)) > 5
    for seq, label in zip(cols["x"], cols["y"], strict=True):
        seq = seq.tolist()
        assert seq[0] == START and seq[-1] == END
        assert START not in seq[1:-1] and END not in seq[1:-1]
        relevant = [t for t, s in enumerate(seq) if s in (X, Y)]
        assert len(relevant) == n_relevant
        assert all(lo <= t <= hi for t, (lo, hi) in zip(relevant, windows, strict=True))
        assert label == order_class(seq)


def test_class_names_match_the_paper() -> None:
    cols = TemporalOrderTask.generate(16, np.random.default_rng(0), seq_len=20, n_relevant=2, length_jitter=0.1)
    classes = {"XX": 0, "XY": 1, "YX": 2, "YY": 3}
    for seq, label in zip(cols["x"], cols["y"], strict=True):
        (t1, t2) = np.flatnonzero((seq == X) | (seq == Y))
        assert 2 <= t1 <= 4 and 10 <= t2 <= 12  # 10-20% and 50-60% of 20
        assert label == classes["XY"[seq[t1] - X] + "XY"[seq[t2] - X]]
    assert set(cols["y"].tolist()) == {0, 1, 2, 3}


def test_batches_are_padded_one_hot_with_lengths() -> None:
    batch = first_batch(seq_len=40)
    x, lengths = batch["x"], batch["lengths"]
    assert x.shape == (16, int(lengths.max()), VOCAB) and lengths.min() >= 40 and lengths.max() <= 44
    assert torch.equal(x.sum(-1).sum(1), lengths.float())  # one symbol per valid step, zeros after
    assert torch.all(x[torch.arange(16), lengths - 1, END] == 1)
    fixed = first_batch(seq_len=40, length_jitter=0)
    assert fixed["x"].shape == (16, 40, VOCAB) and torch.all(fixed["lengths"] == 40)


@pytest.mark.parametrize("n_relevant", [2, 3])
def test_baseline_is_chance_on_uniform_classes(n_relevant: int) -> None:
    task = TemporalOrderTask(seq_len=20, n_relevant=n_relevant, n_train=8, n_val=8, n_test=4000)
    task.setup()
    n_classes = 2**n_relevant
    assert task.baseline() == pytest.approx({"loss": math.log(n_classes), "acc": 1 / n_classes})
    freq = torch.bincount(task.splits["test"].columns["y"], minlength=n_classes).float() / 4000
    assert freq.max().item() == pytest.approx(1 / n_classes, abs=0.02)  # the majority-class guess
    entropy = -(freq * freq.log()).sum().item()
    assert entropy == pytest.approx(task.baseline()["loss"], abs=0.01)


@pytest.mark.parametrize(
    ("bad", "key"),
    [({"seq_len": 9}, "seq_len"), ({"n_relevant": 4}, "n_relevant"), ({"length_jitter": 1.0}, "length_jitter")],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} must be"):
        TemporalOrderTask(**{"seq_len": 100, **bad})


def test_every_allowed_length_has_disjoint_windows_between_the_markers() -> None:
    for n_relevant in (2, 3):
        for seq_len in range(10, 301):
            bounds = [b for w in relevant_windows(seq_len, n_relevant) for b in w]
            assert bounds[0] >= 1 and bounds[-1] <= seq_len - 2 and bounds == sorted(set(bounds))


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    overrides = ["task=temporal_order", "task.seq_len=30", "task.n_relevant=3", "model=gru", "model.hidden_size=16"]
    sizes = ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=32"]
    record = train(compose_config(["trainer=smoke", "logger=none", *sizes, *overrides]), tmp_path / "run")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/acc"}
    assert record["baseline"]["acc"] == 1 / 8
