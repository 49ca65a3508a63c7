"""Precise timing (Gers, Schraudolph & Schmidhuber 2002, "Learning precise timing with LSTM recurrent networks").

The input is a spike train: the first spike falls in [0, F), and each interval n after it lasts F + I(n) steps,
I(n) uniform on {0, ..., max_offset} (F = `interval`). Two variants, as in the paper:

- `msd` (measuring spike delays): at every spike but the first, regress I(n), the offset of the interval that
  just ended (MSE on those steps only). A spike counts as timed when the rounded prediction is within
  `tolerance` steps of I(n).
- `gts` (generating timed spikes): emit a spike (per-step binary target, BCE on every step) exactly F steps after
  each input spike. Input spikes s_0 < s_1 < ... cut time into windows (s_{k-1} + tolerance, s_k + tolerance], each
  holding exactly one target spike, s_{k-1} + F, with its whole tolerance band (as 2 * tolerance < F). The target
  counts as timed when the model fires (logit > 0) exactly once in its window, within `tolerance` steps of it.
  Windows whose closing input spike s_k is not inside the sequence are not scored.

`timed_acc` is the fraction of scored spikes that are timed; `seq_acc` the fraction of sequences whose scored spikes
are all timed (the paper judges a sequence, not a spike). This is the seed's claim that peepholes help precise
timing: the answer is a count of steps held in the cell state, which a peephole lets the gates read directly.
The task is online (`causal`): timing must come from the past alone, so bidirectional bodies are refused.
The paper's regime (its headline: telling apart spikes 49 or 50 steps apart, with a few memory blocks) is
`task=timing_msd` (F = 49, I(n) in {0, 1}) and `task=timing_gts` (F = 50); docs/tasks.md says what of these
definitions was checked against the paper.

Baselines are the best deterministic memoryless predictor (one that sees only the current input) for each metric:
msd: a constant, MSE Var(I) = (K^2 - 1)/12 and timed_acc min(2*tolerance + 1, K)/K, with K = max_offset + 1;
gts: firing on every input spike hits the target iff I(n) <= tolerance, timed_acc min(tolerance + 1, K)/K (never
firing, always firing, or firing only without input all score 0 once F >= 3); its loss is the conditional entropy
H(y_t | x_t) over the pooled steps, from the exact spike probability per step (a renewal recursion,
`spike_probability`). `seq_acc` of the same predictors (for msd the best constant for this metric) is exact from
another renewal recursion, `all_timed_probability`: every spike of the sequence must fall on a timed offset.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric, Metric, MetricCollection

from rnnbench.tasks.base import Batch, SequenceTask, binary_entropy

VARIANTS = ("msd", "gts")


def _check_int(name: str, value: Any, minimum: int) -> None:
    """Raise ValueError, naming the parameter, unless value is an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_params(seq_len: int, variant: str, interval: int, max_offset: int) -> None:
    """Raise ValueError, naming the parameter, for spike trains the task cannot generate or score."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    _check_int("interval", interval, 3)
    _check_int("max_offset", max_offset, 1)
    if seq_len < 2 * interval + max_offset:
        raise ValueError(
            f"seq_len must be >= 2*interval + max_offset (= {2 * interval + max_offset}) so every sequence holds "
            f"a scored spike, got {seq_len}"
        )


def spike_probability(seq_len: int, interval: int, max_offset: int) -> np.ndarray:
    """P(input spike at t) for t < seq_len: first spike uniform on [0, F), then intervals F + U{0..max_offset}."""
    u = np.where(np.arange(seq_len) < interval, 1.0 / interval, 0.0)
    for t in range(interval, seq_len):
        u[t] += u[max(t - interval - max_offset, 0) : t - interval + 1].sum() / (max_offset + 1)
    return u


def all_timed_probability(seq_len: int, interval: int, hit: np.ndarray) -> float:
    """P(every scored spike of a sequence is timed) when spike n is timed iff hit[I(n)]: a renewal recursion over
    the time of the latest spike (f[t]: a spike at t and every scored one so far timed), closed by the next
    interval falling outside the sequence. The first spike is never scored."""
    k = len(hit)
    f = np.where(np.arange(seq_len) < interval, 1.0 / interval, 0.0)
    for t in range(interval, seq_len):
        f[t] += sum(f[t - interval - i] for i in range(k) if hit[i] and t - interval - i >= 0) / k
    outside = np.array([np.sum(t + interval + np.arange(k) >= seq_len) for t in range(seq_len)]) / k
    return float(f @ outside)


class SequenceTimed(Metric):
    """`seq_acc`: the fraction of sequences whose scored spikes are all timed (Gers et al.'s per-sequence
    criterion: a sequence counts only when every spike of it is right)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("timed", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, timed: Tensor, scored: Tensor) -> None:
        """timed, scored (B, steps or windows) as `metric_inputs` returns them."""
        self.timed += ((timed > 0) | (scored == 0)).all(1).sum()
        self.total += timed.shape[0]

    def compute(self) -> Tensor:
        return self.timed / self.total


def gts_hits(spikes: Tensor, target: Tensor, fired: Tensor, tolerance: int) -> tuple[Tensor, Tensor]:
    """Per window (s_{k-1} + tolerance, s_k + tolerance] between input spikes: (timed, scored), both (B, T+1)."""
    batch, steps = spikes.shape
    before = (spikes.cumsum(1) - spikes).long()  # input spikes strictly before each step
    window = F.pad(before, (tolerance, 0))[:, :steps]  # input spikes before t - tolerance: window k is closed by s_k
    times = torch.arange(steps, device=spikes.device).expand(batch, steps)

    def per_window(values: Tensor) -> Tensor:
        return torch.zeros(batch, steps + 1, device=spikes.device).scatter_add_(1, window, values.float())

    n_fired = per_window(fired)
    offset = per_window(fired * times) - per_window(target * times)  # fired time - target time, if fired once
    ids = torch.arange(steps + 1, device=spikes.device)
    scored = (ids >= 1) & (ids < spikes.sum(1, keepdim=True))  # closed by an input spike inside the sequence
    timed = scored & (n_fired == 1) & (offset.abs() <= tolerance)
    return timed.float(), scored.float()


class TimingTask(SequenceTask):
    """Measure (msd) or reproduce (gts) spike intervals exactly; per-step readout, forward-only bodies."""

    name = "timing"
    readout = "all"
    causal = True
    primary_metric = "timed_acc"
    higher_is_better = True
    perfect = 1.0
    input_size = 1
    output_size = 1

    @property
    def label(self) -> str:
        """timing_msd or timing_gts: measuring and generating are different problems, reported apart."""
        return f"{self.name}_{self.variant}"

    def __init__(
        self,
        seq_len: int = 100,
        variant: str = "msd",
        interval: int = 10,
        max_offset: int = 4,
        tolerance: int = 0,
        **kwargs: Any,
    ) -> None:
        """`interval` F, `max_offset` the largest I(n), `tolerance` the timing error (steps) still counted as hit."""
        super().__init__(seq_len=seq_len, **kwargs)
        check_params(self.seq_len, variant, interval, max_offset)
        _check_int("tolerance", tolerance, 0)
        # Beyond this a memoryless predictor times every spike (or, for gts, consecutive tolerance bands overlap).
        limit = (max_offset + 1) // 2 if variant == "msd" else min(max_offset, (interval + 1) // 2)
        if tolerance >= limit:
            raise ValueError(
                f"tolerance must be < {limit} for variant {variant} with interval={interval} and "
                f"max_offset={max_offset}, got {tolerance}"
            )
        self.variant = variant
        self.interval = interval
        self.max_offset = max_offset
        self.tolerance = tolerance

    @staticmethod
    def generate(
        n: int, rng: np.random.Generator, seq_len: int, variant: str, interval: int, max_offset: int
    ) -> dict[str, np.ndarray]:
        """Columns spikes (n, T) float32, y (n, T) float32 and mask (n, T) bool: the steps the loss counts."""
        check_params(seq_len, variant, interval, max_offset)
        max_spikes = seq_len // interval + 1  # intervals are >= F, so no more spikes fit
        offsets = rng.integers(0, max_offset + 1, size=(n, max_spikes - 1))  # I(n) of the interval ending at spike n
        start = rng.integers(0, interval, size=(n, 1))
        times = start + np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(interval + offsets, 1)], 1)
        inside = times < seq_len
        rows = np.broadcast_to(np.arange(n)[:, None], times.shape)
        spikes = np.zeros((n, seq_len), dtype=np.float32)
        spikes[rows[inside], times[inside]] = 1.0
        y = np.zeros_like(spikes)
        if variant == "gts":
            y[:, interval:] = spikes[:, :-interval]
            return {"spikes": spikes, "y": y, "mask": np.ones((n, seq_len), dtype=bool)}
        ended = inside[:, 1:]  # spikes that end an interval: all but the first
        y[rows[:, 1:][ended], times[:, 1:][ended]] = offsets[ended]
        mask = np.zeros((n, seq_len), dtype=bool)
        mask[rows[:, 1:][ended], times[:, 1:][ended]] = True
        return {"spikes": spikes, "y": y, "mask": mask}

    def generation_params(self) -> dict[str, Any]:
        return {
            "seq_len": self.seq_len,
            "variant": self.variant,
            "interval": self.interval,
            "max_offset": self.max_offset,
        }

    def collate(self, columns: dict[str, Any]) -> Batch:
        """Spikes as a one-feature float input."""
        return {"x": columns["spikes"].unsqueeze(-1), **columns}

    def loss(self, pred: Tensor, batch: Batch) -> Tensor:
        pred = pred.squeeze(-1)
        if self.variant == "gts":
            return F.binary_cross_entropy_with_logits(pred, batch["y"])
        mask = batch["mask"]
        return ((pred - batch["y"]) ** 2)[mask].mean()

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"timed_acc": MeanMetric(), "seq_acc": SequenceTimed()}, compute_groups=False)

    def metric_inputs(self, pred: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """(timed, scored) per spike or window: MeanMetric's value and weight, so it averages over scored spikes."""
        pred = pred.squeeze(-1)
        if self.variant == "gts":
            return gts_hits(batch["spikes"], batch["y"], pred > 0, self.tolerance)
        timed = (pred.round() - batch["y"]).abs() <= self.tolerance
        return timed.float(), batch["mask"].float()

    def baseline(self) -> dict[str, float]:
        """Best deterministic memoryless predictor per metric; see the module docstring."""
        k = self.max_offset + 1
        offsets = np.arange(k)
        if self.variant == "msd":  # a constant c (rounded) times the offsets within tolerance of it
            seq = max(
                all_timed_probability(self.seq_len, self.interval, np.abs(offsets - c) <= self.tolerance)
                for c in range(k)
            )
            return {"loss": (k**2 - 1) / 12, "timed_acc": min(2 * self.tolerance + 1, k) / k, "seq_acc": seq}
        u = spike_probability(self.seq_len, self.interval, self.max_offset)
        n_x = u.sum()  # expected steps with an input spike
        n_y = u[: self.seq_len - self.interval].sum()  # expected target spikes
        n_xy = n_y / k  # target and input spike coincide iff the next offset is 0
        loss = n_x * binary_entropy(n_xy / n_x) + (self.seq_len - n_x) * binary_entropy(
            (n_y - n_xy) / (self.seq_len - n_x)
        )
        seq = all_timed_probability(self.seq_len, self.interval, offsets <= self.tolerance)  # echo the input
        return {"loss": float(loss / self.seq_len), "timed_acc": min(self.tolerance + 1, k) / k, "seq_acc": seq}
