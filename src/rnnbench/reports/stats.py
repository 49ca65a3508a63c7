"""Statistics over seeds, as pure functions: summaries with t-based confidence intervals, Welch's t-test, Hedges' g.

Sweeps run few seeds (3-5), so intervals use the t-distribution, not the normal, and the comparison test does not
assume equal variances (Welch). Undefined quantities (fewer than two values, zero variance) are NaN, never an error:
the findings treat NaN as "not enough evidence".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

NAN = float("nan")


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and two-sided confidence interval of one variant's values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """A variant against the reference: difference of means, Welch's t-test and Hedges' g."""

    diff: float
    t: float
    df: float
    p: float
    g: float


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; NaN for no values."""
    return math.fsum(values) / len(values) if values else NAN


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator); NaN for fewer than two values."""
    if len(values) < 2:
        return NAN
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean ± t-based confidence interval: mean ± t((1+c)/2, n-1) * std / sqrt(n)."""
    n, m, s = len(values), mean(values), std(values)
    if n < 2:
        return Summary(n, m, NAN, NAN, NAN)
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * s / math.sqrt(n)
    return Summary(n, m, s, m - half, m + half)


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's two-sided t-test of mean(a) != mean(b): (t, Welch-Satterthwaite df, p)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return NAN, NAN, NAN
    va, vb = std(a) ** 2 / na, std(b) ** 2 / nb
    if va + vb == 0:
        return NAN, NAN, NAN
    t = (mean(a) - mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return t, df, 2 * scipy_stats.t.sf(abs(t), df)


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Hedges' g: (mean(a) - mean(b)) / pooled std, times the small-sample correction 1 - 3 / (4(na+nb) - 9)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return NAN
    pooled = math.sqrt(((na - 1) * std(a) ** 2 + (nb - 1) * std(b) ** 2) / (na + nb - 2))
    if pooled == 0:
        return NAN
    return (mean(a) - mean(b)) / pooled * (1 - 3 / (4 * (na + nb) - 9))


def compare(variant: Sequence[float], reference: Sequence[float]) -> Comparison:
    """Everything the comparison table shows for one variant against the reference."""
    t, df, p = welch(variant, reference)
    return Comparison(mean(variant) - mean(reference), t, df, p, hedges_g(variant, reference))
