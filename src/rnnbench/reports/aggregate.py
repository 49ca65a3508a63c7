"""The across-task aggregate of a study, as Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice")
recommend: normalised scores, the interquartile mean with a stratified bootstrap CI, and performance profiles.

A run's normalised score is (value - baseline) / (perfect - baseline) on its task's primary metric: 0 is the trivial
baseline, 1 a perfect score; a failed or diverged run scores 0 (it learned nothing usable). Strata are the groups
(task x setting x factor value). The CI resamples runs within each stratum independently (`scipy.stats.bootstrap`
with one sample per stratum: a stratified bootstrap), with a fixed seed. rliable itself is not used: its
dependency `arch` 7.2 fails to import with pandas 3 (`deprecate_kwarg() missing ... 'new_arg_name'`), so the same
estimators come from scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

from rnnbench.reports.rows import Row
from rnnbench.reports.stats import RESAMPLES, SEED, Interval

TAUS = np.linspace(0.0, 1.0, 101)  # performance-profile thresholds on the normalised score


def normalised(row: Row) -> float:
    """(value - baseline) / (perfect - baseline), at least 0; 0 for a run without a value; NaN without either."""
    if row.baseline is None or row.perfect is None or row.perfect == row.baseline:
        return math.nan
    if not row.ok:
        return 0.0
    # clipped at 0: a finished run worse than the trivial baseline learned no more than a failed one
    return max(0.0, (row.value - row.baseline) / (row.perfect - row.baseline))


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The interquartile mean: the mean of the middle 50 % (`scipy.stats.trim_mean` at 25 %)."""
    return st.trim_mean(values, 0.25, axis=axis)


@dataclass(frozen=True)
class Aggregate:
    """One variant's normalised scores over the study's strata."""

    variant: str
    strata: int
    runs: int
    iqm: Interval
    mean: Interval
    profile: tuple[float, ...]  # fraction of runs (each stratum weighted equally) with score > tau, per TAUS


def _interval(strata: list[np.ndarray], statistic) -> Interval:
    pooled = np.concatenate(strata)
    point = float(statistic(pooled))
    resampled = [s for s in strata if s.size > 1 and not np.all(s == s[0])]
    fixed = [s for s in strata if not (s.size > 1 and not np.all(s == s[0]))]
    if not resampled:
        return Interval(point, point, point) if pooled.size > 1 else Interval(point, math.nan, math.nan)
    fixed_values = np.concatenate(fixed) if fixed else np.empty(0)

    def pooled_statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        shape = samples[0].shape[:-1]
        constant = np.broadcast_to(fixed_values, (*shape, fixed_values.size))
        return statistic(np.concatenate([*samples, constant], axis=-1), axis=-1)

    res = st.bootstrap(
        tuple(resampled), pooled_statistic, n_resamples=RESAMPLES, method="percentile", rng=np.random.default_rng(SEED)
    )
    return Interval(point, float(res.confidence_interval.low), float(res.confidence_interval.high))


def aggregates(cells: Mapping[tuple, Sequence[Row]], variants: Sequence[str]) -> list[Aggregate]:
    """Per variant: IQM and mean of the normalised scores with stratified bootstrap CIs, and the profile.

    `cells` maps (stratum..., variant) keys (the variant last) to the stratum's runs of that variant."""
    out = []
    for variant in variants:
        strata = []
        for key, rows in cells.items():
            if key[-1] != variant:
                continue
            scores = np.array([normalised(r) for r in rows], dtype=float)
            if scores.size and np.all(np.isfinite(scores)):
                strata.append(scores)
        if not strata:
            continue
        profile = tuple(float(np.mean([np.mean(s > tau) for s in strata])) for tau in TAUS)
        out.append(
            Aggregate(
                variant=variant,
                strata=len(strata),
                runs=sum(s.size for s in strata),
                iqm=_interval(strata, iqm),
                mean=_interval(strata, lambda v, axis=-1: np.mean(v, axis=axis)),
                profile=profile,
            )
        )
    return out
