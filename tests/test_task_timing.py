"""The precise-timing task (msd and gts): determinism, the spike trains and targets, the timed_acc scoring,
memoryless baselines (analytic == empirical), parameter errors, refusing bidirectional bodies, a smoke run."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.tasks.base import binary_entropy
from rnnbench.tasks.timing import TimingTask, all_timed_probability, gts_hits, spike_probability
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train

SMALL = {"n_train": 64, "n_val": 32, "n_test": 32, "batch_size": 16}


def split(variant: str, n_test: int = 32, **kwargs: object) -> dict[str, torch.Tensor]:
    """The whole test split of a task as one collated batch."""
    task = TimingTask(variant=variant, **{**SMALL, "n_test": n_test, **kwargs})
    task.setup()
    return task.collate(task.splits["test"].columns)


@pytest.mark.parametrize("variant", ["msd", "gts"])
def test_same_seed_same_data_other_seed_other_data(variant: str) -> None:
    batches = []
    for seed in (3, 3, 4):
        task = TimingTask(seq_len=40, variant=variant, data_seed=seed, **SMALL)
        task.setup()
        batches.append(next(iter(task.val_dataloader())))
    a, b, c = batches
    assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "mask"))
    assert not torch.equal(a["x"], c["x"])
    task = TimingTask(seq_len=40, variant=variant, **SMALL)
    task.setup()
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 64, "val": 32, "test": 32}


@pytest.mark.parametrize("variant", ["msd", "gts"])
def test_spike_trains_and_targets_follow_the_rule(variant: str) -> None:
    interval, max_offset = 5, 3
    cols = TimingTask.generate(
        50, np.random.default_rng(1), seq_len=40, variant=variant, interval=interval, max_offset=max_offset
    )
    for spikes, y, mask in zip(cols["spikes"], cols["y"], cols["mask"], strict=True):
        times = np.flatnonzero(spikes)
        gaps = np.diff(times)
        assert times[0] < interval and np.all((gaps >= interval) & (gaps <= interval + max_offset))
        assert 40 - times[-1] <= interval + max_offset  # no room was left for another spike
        if variant == "msd":
            assert np.flatnonzero(mask).tolist() == times[1:].tolist()
            assert y[times[1:]].tolist() == (gaps - interval).tolist()
            assert np.all(y[~mask] == 0)
        else:
            assert mask.all()
            expected = [t + interval for t in times if t + interval < 40]
            assert np.flatnonzero(y).tolist() == expected


def test_hand_checked_example() -> None:
    cols = TimingTask.generate(1, np.random.default_rng(0), seq_len=20, variant="msd", interval=4, max_offset=2)
    times = np.flatnonzero(cols["spikes"][0]).tolist()
    offsets = [b - a - 4 for a, b in itertools.pairwise(times)]
    assert cols["y"][0][times[1:]].tolist() == offsets
    gts = TimingTask.generate(1, np.random.default_rng(0), seq_len=20, variant="gts", interval=4, max_offset=2)
    np.testing.assert_array_equal(gts["spikes"], cols["spikes"])  # the same train; only the targets differ
    assert np.flatnonzero(gts["y"][0]).tolist() == [t + 4 for t in times if t + 4 < 20]


def test_gts_hits_on_a_hand_checked_train() -> None:
    spikes = torch.zeros(1, 12)
    spikes[0, [0, 5, 10]] = 1  # F = 3: targets at 3 and 8; 13 falls outside
    target = torch.roll(spikes, 3, dims=1) * (torch.arange(12) >= 3)
    fired = torch.zeros(1, 12, dtype=torch.bool)
    fired[0, [3, 9]] = True  # on time, then one step late
    timed, scored = gts_hits(spikes, target, fired, tolerance=0)
    assert scored[0].tolist() == [0, 1, 1] + [0] * 10  # windows (0, 5] and (5, 10]; the rest is not closed
    assert timed[0].tolist() == [0, 1, 0] + [0] * 10
    timed, scored = gts_hits(spikes, target, fired, tolerance=1)  # windows (1, 6] and (6, 11]
    assert timed[0].tolist() == [0, 1, 1] + [0] * 10


def timed_acc(task: TimingTask, pred: torch.Tensor, batch: dict[str, torch.Tensor], metric: str = "timed_acc") -> float:
    """timed_acc (or seq_acc) through the task's own metrics, as the module computes them."""
    metrics = task.make_metrics()
    metrics.update(*task.metric_inputs(pred, batch))
    return metrics.compute()[metric].item()


def test_seq_acc_counts_a_sequence_only_when_every_spike_is_timed() -> None:
    task = TimingTask(seq_len=60, variant="msd", interval=6, max_offset=3, **SMALL)
    batch = split("msd", seq_len=60, interval=6, max_offset=3)
    exact = batch["y"].unsqueeze(-1).clone()
    assert timed_acc(task, exact, batch, "seq_acc") == 1.0
    first = batch["mask"].float().argmax(1)  # each sequence's first scored spike
    exact[:16, :, 0][torch.arange(16), first[:16]] += 1.0  # one wrong spike in half the sequences
    assert timed_acc(task, exact, batch, "seq_acc") == 0.5
    assert timed_acc(task, exact, batch) == pytest.approx(1 - 16 / batch["mask"].sum().item())


def test_all_timed_probability_by_hand() -> None:
    assert all_timed_probability(6, 2, np.array([True, True])) == pytest.approx(1.0)
    assert all_timed_probability(6, 2, np.array([False, False])) == 0.0
    # F = 2, T = 6, only offset 0 timed. Start 0 (1/2): spike 2 (I=0, else 3 fails), then 4 (I=0; 5 fails): 1/4.
    # Start 1 (1/2): spike 3 (I=0, else 4 fails), then 5 (timed) or 6 (outside): 1/2.
    assert all_timed_probability(6, 2, np.array([True, False])) == pytest.approx((1 / 4 + 1 / 2) / 2)


def test_gts_scoring_of_perfect_shifted_spamming_and_silent_outputs() -> None:
    task = TimingTask(seq_len=60, variant="gts", interval=6, max_offset=3, tolerance=1, **SMALL)
    batch = split("gts", seq_len=60, interval=6, max_offset=3)
    y = batch["y"]
    as_logits = lambda fired: (fired * 2 - 1).unsqueeze(-1).float()  # noqa: E731
    assert timed_acc(task, as_logits(y), batch) == 1.0
    shifted = torch.roll(y, -1, dims=1)  # one step early: within tolerance 1, not within 0
    assert timed_acc(task, as_logits(shifted), batch) == 1.0
    strict = TimingTask(seq_len=60, variant="gts", interval=6, max_offset=3, tolerance=0, **SMALL)
    assert timed_acc(strict, as_logits(shifted), batch) == 0.0
    double = torch.clamp(y + shifted, max=1)  # two spikes per window: never timed
    assert timed_acc(task, as_logits(double), batch) == 0.0
    assert timed_acc(task, as_logits(torch.zeros_like(y)), batch) == 0.0
    assert timed_acc(task, as_logits(torch.ones_like(y)), batch) == 0.0


def test_msd_baseline_matches_the_best_constant() -> None:
    task = TimingTask(seq_len=100, variant="msd", interval=10, max_offset=4, tolerance=1, **SMALL)
    batch = split("msd", n_test=2000, seq_len=100, interval=10, max_offset=4)
    base = task.baseline()
    assert base["loss"] == 2.0 and base["timed_acc"] == pytest.approx(3 / 5)  # Var U{0..4} = 2; |2 - I| <= 1: 3 of 5
    constant = torch.full((*batch["y"].shape, 1), 2.0)
    assert task.loss(constant, batch).item() == pytest.approx(base["loss"], abs=0.06)
    assert timed_acc(task, constant, batch) == pytest.approx(base["timed_acc"], abs=0.02)
    for other in (0.0, 4.0):  # a constant at the edge covers only 2 of the 5 offsets
        assert timed_acc(task, torch.full_like(constant, other), batch) < base["timed_acc"] - 0.1
    best = max(timed_acc(task, torch.full_like(constant, c), batch, "seq_acc") for c in range(5))
    assert best == pytest.approx(base["seq_acc"], abs=0.03) and 0 < base["seq_acc"] < base["timed_acc"]


def test_gts_baseline_matches_the_best_memoryless_predictor() -> None:
    task = TimingTask(seq_len=100, variant="gts", interval=10, max_offset=4, **SMALL)
    batch = split("gts", n_test=2000, seq_len=100, interval=10, max_offset=4)
    base = task.baseline()
    echo = (batch["spikes"] * 2 - 1).unsqueeze(-1)  # fire on every input spike
    assert base["timed_acc"] == 1 / 5
    assert timed_acc(task, echo, batch) == pytest.approx(base["timed_acc"], abs=0.02)
    assert timed_acc(task, echo, batch, "seq_acc") == pytest.approx(base["seq_acc"], abs=0.02)
    # Loss: the entropy of y given x, pooled over all steps of the data, is what the analytic formula predicts.
    x, y = batch["spikes"].flatten(), batch["y"].flatten()
    empirical = sum((x == v).float().mean().item() * binary_entropy(y[x == v].mean().item()) for v in (0.0, 1.0))
    assert empirical == pytest.approx(base["loss"], rel=0.02)
    np.testing.assert_allclose(spike_probability(100, 10, 4), batch["spikes"].mean(0).numpy(), atol=0.04)


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"seq_len": 23}, "seq_len"),  # < 2*10 + 4
        ({"variant": "spikes"}, "variant"),
        ({"interval": 2}, "interval"),
        ({"max_offset": 0}, "max_offset"),
        ({"tolerance": -1}, "tolerance"),
        ({"tolerance": 2}, "tolerance"),  # msd with max_offset 4: |2 - I| <= 2 for every I
        ({"variant": "gts", "tolerance": 4}, "tolerance"),
    ],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} must be"):
        TimingTask(**{"seq_len": 100, **bad})


def test_bidirectional_bodies_are_refused() -> None:
    with pytest.raises(ConfigError, match="bidirectional"):
        preflight(["task=timing", "model.bidirectional=true"])
    with pytest.raises(ConfigError, match=r"^task\.tolerance must be"):
        preflight(["task=timing", "task.tolerance=9"])
    assert preflight(["task=timing", "task.variant=gts", "model=peephole_lstm"]) == 1


@pytest.mark.parametrize(("task", "variant"), [("timing", "msd"), ("timing_gts", "gts")])
def test_smoke_run_finishes_with_the_task_metrics(task: str, variant: str, tmp_path: Path) -> None:
    overrides = [f"task={task}", "task.seq_len=30", "task.interval=10", "model=lstm", "model.hidden_size=16"]
    sizes = ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=32"]
    cfg = compose_config(["trainer=smoke", "logger=none", *sizes, *overrides])
    assert cfg.task.variant == variant
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "finished"
    assert record["task"] == f"timing_{variant}"  # the two problems are reported apart, never averaged together
    assert set(record["test"]) == {"test/loss", "test/timed_acc", "test/seq_acc"}
    assert 0 <= record["test"]["test/timed_acc"] <= 1 and record["baseline"]["timed_acc"] == 1 / 5


def test_paper_regime_configs_tell_apart_49_and_50_and_time_50_steps() -> None:
    from hydra.utils import instantiate

    msd = instantiate(compose_config(["task=timing_msd", *(f"task.{k}={v}" for k, v in SMALL.items())]).task)
    gts = instantiate(compose_config(["task=timing_gts", *(f"task.{k}={v}" for k, v in SMALL.items())]).task)
    assert (msd.label, gts.label) == ("timing_msd", "timing_gts")
    msd.setup()
    spikes = msd.splits["test"].columns["spikes"].numpy()
    gaps = np.concatenate([np.diff(np.flatnonzero(row)) for row in spikes])
    assert set(gaps.tolist()) == {49, 50}
    assert msd.baseline()["timed_acc"] == 0.5 and msd.baseline()["seq_acc"] == pytest.approx(0.1237, abs=1e-4)
    gts.setup()
    batch = gts.collate(gts.splits["test"].columns)
    for x, y in zip(batch["spikes"], batch["y"], strict=True):
        assert (torch.nonzero(y).flatten() - 50).tolist() == [t for t in torch.nonzero(x).flatten().tolist() if t < 150]
