"""The forecasting task: chronological splits whose windows never straddle a border, train-only normalisation,
hand-checked values of the shipped series, co2's filled gaps, both naive baselines, caps, bad params, a smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnbench.tasks.forecast import ForecastTask, load_series, segment, segment_bounds, train_stats
from rnnbench.training.config import compose_config, preflight
from rnnbench.training.train import train


def original(task: ForecastTask, split: str) -> dict[str, np.ndarray]:
    """A built split's columns, inputs and targets back on the original scale."""
    mean, std = train_stats(task.series, task.val_fraction, task.test_fraction)
    cols = task.splits[split].columns
    return {"x": cols["x"][..., 0].double().numpy() * std + mean, "y": cols["y"].double().numpy() * std + mean}


def test_sizes_follow_the_series_and_the_data_ignores_data_seed() -> None:
    tasks = [ForecastTask(data_seed=seed) for seed in (0, 1)]
    for task in tasks:
        task.setup()
    # 309 years: test the last round(0.2 * 309) = 62, val the round(0.15 * 309) = 46 before, train the first 201.
    assert segment_bounds(309, 0.15, 0.2) == {"train": (0, 201), "val": (201, 247), "test": (247, 309)}
    assert {k: len(v) for k, v in tasks[0].splits.items()} == {"train": 179, "val": 24, "test": 40}
    assert tasks[0].sizes == {"train": 179, "val": 24, "test": 40}
    a, b = (next(iter(t.test_dataloader())) for t in tasks)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert a["x"].shape == (32, 22, 1) and a["y"].shape == (32, 1)


def test_first_train_window_starts_in_1700_and_the_last_target_is_2008() -> None:
    task = ForecastTask(seq_len=22, horizon=2)
    task.setup()
    train_split, test_split = original(task, "train"), original(task, "test")
    np.testing.assert_allclose(train_split["x"][0, :3], [5.0, 11.0, 16.0], atol=1e-4)  # 1700, 1701, 1702
    np.testing.assert_allclose(train_split["y"][0], [22.0, 11.0], atol=1e-4)  # 1722, 1723
    np.testing.assert_allclose(test_split["y"][-1], [7.5, 2.9], atol=1e-4)  # 2007, 2008
    assert task.splits["train"].columns["start"][0] == 0


@pytest.mark.parametrize("series", ["sunspots", "co2"])
def test_windows_stay_inside_their_segment(series: str) -> None:
    seq_len, horizon = (11, 3) if series == "sunspots" else (52, 4)
    task = ForecastTask(series=series, seq_len=seq_len, horizon=horizon, val_fraction=0.1, test_fraction=0.25)
    task.setup()
    length = len(load_series(series))
    for split, (lo, hi) in segment_bounds(length, 0.1, 0.25).items():
        starts = task.splits[split].columns["start"]
        assert starts.min() == lo and starts.max() + seq_len + horizon == hi  # the first and last window that fit
        assert torch.all(starts.diff() == 1)


def test_normalised_with_the_train_segment_only() -> None:
    task = ForecastTask()
    mean, std = train_stats("sunspots", 0.15, 0.2)
    train_values = load_series("sunspots")[:201]
    assert (mean, std) == pytest.approx((train_values.mean(), train_values.std()))
    task.setup()
    first_inputs = task.splits["train"].columns["x"][:, 0, 0].double()  # windows start at every train year
    assert first_inputs[:10].tolist() == pytest.approx(((train_values[:10] - mean) / std).tolist(), abs=1e-5)


def test_co2_gaps_are_interpolated_inside_each_segment() -> None:
    raw = load_series("co2")
    assert len(raw) == 2284 and np.isnan(raw).sum() == 59
    train_values = segment("co2", "train", 0.15, 0.2)
    assert not np.isnan(train_values).any()
    assert train_values[6] == pytest.approx((316.9 + 317.5) / 2)  # 1958-05-10 missing between 05-03 and 05-17
    assert train_values[9:14].tolist() == pytest.approx(np.linspace(317.9, 315.8, 7)[1:-1].tolist())  # 5 weeks
    # a gap at a segment's edge is held at the segment's own last known value, never filled from the next segment
    lo, hi = segment_bounds(2284, 0.15, 0.2)["val"]
    edge = segment("co2", "val", 0.15, 0.2)
    known = np.flatnonzero(~np.isnan(raw[lo:hi]))
    assert np.all(edge[known[-1] :] == raw[lo:hi][known[-1]])


@pytest.mark.parametrize(("series", "seq_len", "horizon"), [("sunspots", 22, 1), ("sunspots", 11, 14), ("co2", 52, 3)])
def test_baselines_are_the_naive_and_seasonal_naive_forecasts(series: str, seq_len: int, horizon: int) -> None:
    task = ForecastTask(series=series, seq_len=seq_len, horizon=horizon)
    task.setup()
    test = original(task, "test")
    season = 11 if series == "sunspots" else 52
    naive = np.repeat(test["x"][:, -1:], horizon, axis=1)
    seasonal = np.stack([test["x"][:, seq_len - season + (h % season)] for h in range(horizon)], axis=1)
    base = task.baseline()
    for kind, forecast in (("naive", naive), ("seasonal_naive", seasonal)):
        err = forecast - test["y"]
        assert base[f"mse_{kind}"] == pytest.approx((err**2).mean(), rel=1e-4)
        assert base[f"mae_{kind}"] == pytest.approx(np.abs(err).mean(), rel=1e-4)
        smape = 2 * np.abs(err) / (np.abs(forecast) + np.abs(test["y"]))
        assert base[f"smape_{kind}"] == pytest.approx(smape.mean(), rel=1e-4)
    best = "naive" if base["mse_naive"] <= base["mse_seasonal_naive"] else "seasonal_naive"
    assert base["mse"] == min(base["mse_naive"], base["mse_seasonal_naive"]) and base["mae"] == base[f"mae_{best}"]
    # the task's own metric path, fed the stronger forecast in normalised units, scores the same as baseline()
    mean, std = train_stats(series, 0.15, 0.2)
    pred = torch.as_tensor((naive if best == "naive" else seasonal) - mean) / std
    batch = {"y": task.splits["test"].columns["y"].double()}
    metrics = task.make_metrics()(*task.metric_inputs(pred, batch))
    assert float(metrics["mse"]) == pytest.approx(base["mse"], rel=1e-4)
    assert float(task.loss(pred, batch)) == pytest.approx(base["loss"], rel=1e-4)


def test_sunspot_seasonal_naive_is_weaker_than_naive_one_year_ahead() -> None:
    base = ForecastTask().baseline()
    assert base["mse_naive"] < base["mse_seasonal_naive"] and base["mse"] == base["mse_naive"]


def test_n_caps_keep_evenly_spaced_windows_and_leave_other_splits_alone() -> None:
    capped = ForecastTask(n_train=64, n_val=1000)
    assert capped.sizes == {"train": 64, "val": 24, "test": 40}
    capped.setup()
    starts = capped.splits["train"].columns["start"]
    assert starts[0] == 0 and starts[-1] <= 178 and torch.all(starts.diff() >= 2)
    full = ForecastTask()
    full.setup()
    assert torch.equal(capped.splits["test"].columns["x"], full.splits["test"].columns["x"])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"series": "airline"}, "series must be one of sunspots, co2"),
        ({"horizon": 0}, "horizon must be a positive int"),
        ({"val_fraction": 1.5}, "val_fraction must be a number in \\(0, 1\\)"),
        ({"test_fraction": 0.6, "val_fraction": 0.5}, "val_fraction \\+ test_fraction must be < 1"),
        ({"series": "co2", "seq_len": 22}, "seq_len must be >= 52, the season of co2"),
        ({"seq_len": 46}, "seq_len must be <= 45"),  # val segment: 46 values, one target
        ({"n_train": 0}, "n_train must be a positive int"),
    ],
)
def test_bad_params_name_the_parameter(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        ForecastTask(**bad)


def test_bidirectional_bodies_are_allowed() -> None:
    assert preflight(["task=forecast", "model.bidirectional=true"]) == 1


def test_smoke_run_finishes_with_the_task_metrics(tmp_path: Path) -> None:
    overrides = ["task=forecast", "model=gru", "model.hidden_size=16", "task.horizon=3"]
    record = train(compose_config(["trainer=smoke", "logger=none", *overrides]), tmp_path / "run")
    assert record["status"] == "finished"
    assert set(record["test"]) == {"test/loss", "test/mse", "test/mae", "test/smape"}
    assert {"mse", "mse_naive", "mse_seasonal_naive", "smape_seasonal_naive"} <= set(record["baseline"])
