"""Forecasting real series: predict the next `horizon` values from the last `seq_len` ones.

Two public-domain series shipped inside the statsmodels wheel (nothing downloaded): `sunspots`, yearly sunspot
numbers 1700-2008 (309 values, NOAA NGDC; solar cycle ~11 years), and `co2`, weekly Mauna Loa CO2 from March 1958
to December 2001 (2284 weeks, Keeling & Whorf; yearly cycle = 52 weeks, trend upward). co2 misses 59 weeks (22
gaps, the longest 18 weeks): they are filled by linear interpolation inside each split's segment (held constant at a
segment's edge), so the weekly grid and the 52-week season stay aligned and no split borrows a value of another.

This tests the seed's claim that recurrent nets model real dynamics, on data nobody designed for them: does a cell
beat the forecasts that need no learning? The series is cut chronologically into train, val and test segments
(the last `test_fraction` of the values is test); a window never straddles a border, and values are normalised
with the mean and std of the train segment only. The readout is the last step over past values only, so a
bidirectional body sees nothing it should not: `causal` stays False.

Split sizes are fixed by the series, seq_len, horizon and the two fractions. `n_train`, `n_val`, `n_test` are caps
(None: every window), so a budget's sizes still apply: a capped split keeps evenly spaced windows of its segment.

Metrics on the original scale (sunspot numbers, ppm): MSE (primary), MAE and sMAPE (torchmetrics: 2|y - p| /
(|y| + |p|), in [0, 2]); the loss is the MSE of normalised values. Baselines on the test windows: naive (the last
input repeated) and seasonal naive (the value one season before each target, within the window: seq_len >= season).
`baseline()` reports both (`mse_naive`, `mse_seasonal_naive`, ...); its plain keys are the stronger one by MSE.
With the default fractions every co2 test value lies above every train value (353.2 > 350.2 ppm): the trend makes
the test an extrapolation, which favours the naive forecast over the seasonal one.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import version
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, SymmetricMeanAbsolutePercentageError

from rnnbench.tasks.base import SPLITS, Batch, SequenceTask, check_positive_int


class Series(NamedTuple):
    """One shipped series: its statsmodels dataset and column, how many values it holds and its season."""

    dataset: str
    column: str
    length: int
    season: int


SERIES = {"sunspots": Series("sunspots", "SUNACTIVITY", 309, 11), "co2": Series("co2", "co2", 2284, 52)}
BASELINES = ("naive", "seasonal_naive")


@cache
def load_series(series: str) -> np.ndarray:
    """The raw series as float64, NaN where a value is missing (co2's gaps); imports statsmodels on first use."""
    module = importlib.import_module(f"statsmodels.datasets.{SERIES[series].dataset}")
    return module.load_pandas().data[SERIES[series].column].to_numpy(dtype=np.float64)


def segment_bounds(length: int, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    """Chronological [start, stop) of each split's segment: train, then val, then the last values as test."""
    n_test = round(test_fraction * length)
    n_val = round(val_fraction * length)
    train_stop = length - n_val - n_test
    return {"train": (0, train_stop), "val": (train_stop, length - n_test), "test": (length - n_test, length)}


@cache
def segment(series: str, split: str, val_fraction: float, test_fraction: float) -> np.ndarray:
    """One split's values, gaps linearly interpolated from that segment's own values only."""
    start, stop = segment_bounds(SERIES[series].length, val_fraction, test_fraction)[split]
    values = load_series(series)[start:stop]
    known = np.flatnonzero(~np.isnan(values))
    return np.interp(np.arange(len(values)), known, values[known])


def train_stats(series: str, val_fraction: float, test_fraction: float) -> tuple[float, float]:
    """Mean and std of the train segment: the normalisation of every split."""
    train = segment(series, "train", val_fraction, test_fraction)
    return float(train.mean()), float(train.std())


def window_count(segment_length: int, seq_len: int, horizon: int) -> int:
    """How many windows of seq_len inputs and horizon targets fit inside a segment (stride 1)."""
    return max(segment_length - seq_len - horizon + 1, 0)


def check_params(series: str, seq_len: int, horizon: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Raise ValueError, naming the parameter, for settings the task cannot build; returns windows per split."""
    if series not in SERIES:
        raise ValueError(f"series must be one of {', '.join(SERIES)}, got {series!r}")
    check_positive_int("horizon", horizon)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 to leave a train segment, got {val_fraction + test_fraction}"
        )
    season = SERIES[series].season
    if seq_len < season:
        raise ValueError(
            f"seq_len must be >= {season}, the season of {series}, for the seasonal-naive baseline, got {seq_len}"
        )
    bounds = segment_bounds(SERIES[series].length, val_fraction, test_fraction)
    shortest = min(stop - start for start, stop in bounds.values())
    if window_count(shortest, seq_len, horizon) == 0:
        raise ValueError(
            f"seq_len must be <= {shortest - horizon} so the shortest segment ({shortest} values) holds "
            f"seq_len + horizon values, got {seq_len}"
        )
    return {split: window_count(stop - start, seq_len, horizon) for split, (start, stop) in bounds.items()}


def raw_windows(
    series: str, split: str, n: int, seq_len: int, horizon: int, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n evenly spaced windows of a split on the original scale: inputs (n, seq_len), targets (n, horizon) and
    the position in the series of each window's first input (n,)."""
    values = segment(series, split, val_fraction, test_fraction)
    count = window_count(len(values), seq_len, horizon)
    if not 0 < n <= count:
        raise ValueError(f"n_{split} must be in 1..{count} (the windows of the {split} segment), got {n}")
    starts = np.arange(n) * count // n
    steps = np.arange(seq_len + horizon)
    windows = values[starts[:, None] + steps]
    offset = segment_bounds(SERIES[series].length, val_fraction, test_fraction)[split][0]
    return windows[:, :seq_len], windows[:, seq_len:], starts + offset


def naive_forecasts(inputs: np.ndarray, horizon: int, season: int) -> dict[str, np.ndarray]:
    """The forecasts that need no learning: the last input repeated, and the value one season before each target
    (for step h, season * ceil(h / season) steps back, so always inside the window when seq_len >= season)."""
    seq_len = inputs.shape[1]
    h = np.arange(1, horizon + 1)
    back = seq_len + h - 1 - season * np.ceil(h / season).astype(int)
    return {"naive": np.repeat(inputs[:, -1:], horizon, axis=1), "seasonal_naive": inputs[:, back]}


class ForecastTask(SequenceTask):
    """Forecast the next `horizon` values of a real series from a window of its past; one input feature."""

    name = "forecast"
    readout = "last"
    causal = False  # inputs are past values only; the targets lie after the window, out of any body's reach
    primary_metric = "mse"
    input_size = 1

    def __init__(
        self,
        series: str = "sunspots",
        seq_len: int = 22,
        horizon: int = 1,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        n_train: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        batch_size: int = 32,
        data_seed: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        """n_train, n_val, n_test cap the windows of each split (None: all of them); the data is one series."""
        available = check_params(series, check_positive_int("seq_len", seq_len), horizon, val_fraction, test_fraction)
        requested = dict(zip(SPLITS, (n_train, n_val, n_test), strict=True))
        sizes = {
            split: available[split] if n is None else min(check_positive_int(f"n_{split}", n), available[split])
            for split, n in requested.items()
        }
        super().__init__(seq_len, sizes["train"], sizes["val"], sizes["test"], batch_size, data_seed, cache_dir)
        self.series = series
        self.horizon = horizon
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.output_size = horizon

    @staticmethod
    def generate(
        n: int,
        rng: np.random.Generator,
        series: str,
        split: str,
        seq_len: int,
        horizon: int,
        val_fraction: float,
        test_fraction: float,
        data_version: str,
    ) -> dict[str, np.ndarray]:
        """Columns x (n, seq_len, 1) and y (n, horizon) float32, normalised; start (n,) int64 position in the series.

        `rng` is unused (windows are a fixed chronological slice); `data_version` only keys the cache to the
        statsmodels version that ships the series."""
        inputs, targets, starts = raw_windows(series, split, n, seq_len, horizon, val_fraction, test_fraction)
        mean, std = train_stats(series, val_fraction, test_fraction)
        return {
            "x": ((inputs - mean) / std).astype(np.float32)[..., None],
            "y": ((targets - mean) / std).astype(np.float32),
            "start": starts.astype(np.int64),
        }

    def generation_params(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "seq_len": self.seq_len,
            "horizon": self.horizon,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "data_version": version("statsmodels"),
        }

    def split_params(self, split: str) -> dict[str, Any]:
        """Fixed data is cut into disjoint slices, so generating a split needs to know which one."""
        return {"split": split}

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        return F.mse_loss(pred, batch["y"])

    def make_metrics(self) -> MetricCollection:
        return MetricCollection(
            {"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "smape": SymmetricMeanAbsolutePercentageError()}
        )

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Predictions and targets back on the original scale."""
        mean, std = train_stats(self.series, self.val_fraction, self.test_fraction)
        return pred * std + mean, batch["y"] * std + mean

    def baseline(self) -> dict[str, float]:
        """Naive and seasonal-naive scores on the scored windows (test; val when tuning); the plain keys (and loss)
        are the stronger by MSE."""
        inputs, targets, _ = raw_windows(
            self.series,
            self.baseline_split,  # test (val when tuning)
            self.sizes[self.baseline_split],
            self.seq_len,
            self.horizon,
            self.val_fraction,
            self.test_fraction,
        )
        target = torch.as_tensor(targets).contiguous()  # torchmetrics flattens with .view
        scores = {}
        for kind, forecast in naive_forecasts(inputs, self.horizon, SERIES[self.series].season).items():
            metrics = self.make_metrics()
            scores[kind] = {k: float(v) for k, v in metrics(torch.as_tensor(forecast).contiguous(), target).items()}
        best = min(BASELINES, key=lambda kind: scores[kind]["mse"])
        std = train_stats(self.series, self.val_fraction, self.test_fraction)[1]
        flat = {f"{metric}_{kind}": value for kind in BASELINES for metric, value in scores[kind].items()}
        return {"loss": scores[best]["mse"] / std**2, **scores[best], **flat}
