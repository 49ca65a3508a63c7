"""The statistical tests and intervals a report uses, as thin wrappers around scipy and statsmodels.

Sweeps run few seeds (3-5) of bounded, often bimodal metrics (a run solves a task or stays at chance), so the tests
are exact or resampling-based and the intervals never leave the data's range:

- a continuous metric, better / worse: the exact one-sided Mann-Whitney U test (`scipy.stats.mannwhitneyu`; with
  ties, the permutation distribution of U via `scipy.stats.PermutationMethod`: exact up to `RANK_PERMUTATIONS`
  relabellings, Monte Carlo past them; 20 vs 20 runs have 1.4e11), and the probability of
  improvement P(A > B) (ties count one half) with a percentile bootstrap CI (`scipy.stats.bootstrap`);
- solve counts: Boschloo's exact test (`scipy.stats.boschloo_exact`), rates with Clopper-Pearson intervals
  (`scipy.stats.binomtest(...).proportion_ci`);
- similar: two one-sided Welch t-tests against +-margin (TOST, `statsmodels.stats.weightstats.ttost_ind`), the 90 %
  CI of the difference of means, and a one-sided test of |difference| > margin (`ttest_ind` with `value=`);
- steps to solve: the log-rank test (`scipy.stats.logrank` on `scipy.stats.CensoredData`), its p-value from the
  exact (or, past `PERMUTATIONS` relabellings, Monte Carlo) permutation distribution (`scipy.stats.permutation_test`),
  and the Kaplan-Meier "fraction solved" curve (`scipy.stats.ecdf`);
- the family of a study: Holm's step-down adjustment (`statsmodels.stats.multitest.multipletests`).

Every resampling uses a generator seeded with `SEED`, so the same runs give the same numbers, byte for byte.
Sample sizes that would decide an undecided result are rough planning figures (Noether 1987 for the rank test, the
normal approximation for two proportions, the observed spread for the equivalence CI), not guarantees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttest_ind, ttost_ind

SEED = 0
RESAMPLES = 2000  # bootstrap resamples
PERMUTATIONS = 2000  # log-rank: exact when the relabellings are at most this many, Monte Carlo otherwise
RANK_PERMUTATIONS = 200_000  # rank test with ties: exact up to this many relabellings (10 vs 10 runs), else MC
MAX_SEEDS = 200  # planning figures stop here ("more than 200")
NAN = float("nan")
EXACT_MIN_RUNS = 5  # runs per side before identical values on both sides count as an exactly known difference


def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


def _array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval (NaN bounds where none can be given, e.g. one value)."""

    estimate: float
    low: float
    high: float


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean with a percentile bootstrap CI: inside [min, max] of the values, so inside the metric's range."""
    x = _array(values)
    if x.size == 0:
        return Interval(NAN, NAN, NAN)
    if x.size < 2 or np.all(x == x[0]):
        return Interval(float(x.mean()), float(x.min()), float(x.max())) if x.size > 1 else Interval(x[0], NAN, NAN)
    res = st.bootstrap(
        (x,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES, method="percentile", rng=_rng()
    )
    return Interval(float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high))


def rate_ci(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """A proportion with its exact (Clopper-Pearson) interval, inside [0, 1]."""
    if trials == 0:
        return Interval(NAN, NAN, NAN)
    ci = st.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="exact")
    return Interval(successes / trials, float(ci.low), float(ci.high))


def _superiority(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(A > B) + P(A = B) / 2 over all pairs, along `axis` (the bootstrap's vectorised statistic)."""
    a, b = np.moveaxis(a, axis, -1)[..., :, None], np.moveaxis(b, axis, -1)[..., None, :]
    return ((a > b) + 0.5 * (a == b)).mean(axis=(-2, -1))


@dataclass(frozen=True)
class RankTest:
    """A one-sided exact rank test of 'a is better than b', and the probability of improvement."""

    p_better: float  # H1: a tends to be better than b
    p_worse: float  # H1: a tends to be worse than b
    superiority: Interval  # P(a better than b), ties one half, with a 95 % bootstrap CI
    method: str


def rank_test(a: Sequence[float], b: Sequence[float], higher_is_better: bool) -> RankTest:
    """Exact one-sided Mann-Whitney U tests in both directions; values may be +-inf (failed runs: the worst value)."""
    x, y = _array(a), _array(b)
    if not higher_is_better:  # rank on "goodness", so 'greater' always means better
        x, y = -x, -y
    if x.size == 0 or y.size == 0:
        return RankTest(NAN, NAN, Interval(NAN, NAN, NAN), "")
    ties = np.unique(np.concatenate([x, y])).size < x.size + y.size
    exact = math.comb(x.size + y.size, x.size) <= RANK_PERMUTATIONS
    method = st.PermutationMethod(n_resamples=RANK_PERMUTATIONS, rng=_rng()) if ties else "exact"
    better = st.mannwhitneyu(x, y, alternative="greater", method=method).pvalue
    worse = st.mannwhitneyu(x, y, alternative="less", method=method).pvalue
    sup = float(_superiority(x, y))
    if x.size > 1 and y.size > 1 and not (np.all(x == x[0]) and np.all(y == y[0])):
        res = st.bootstrap((x, y), _superiority, n_resamples=RESAMPLES, method="percentile", rng=_rng())
        interval = Interval(sup, float(res.confidence_interval.low), float(res.confidence_interval.high))
    else:
        interval = Interval(sup, sup, sup) if x.size > 1 and y.size > 1 else Interval(sup, NAN, NAN)
    name = "exact Mann-Whitney U"
    if ties:
        name = "exact permutation Mann-Whitney U (ties)" if exact else "Monte Carlo permutation Mann-Whitney U (ties)"
    return RankTest(float(better), float(worse), interval, name)


def min_rank_p(n_a: int, n_b: int) -> float:
    """The smallest one-sided p-value an exact rank test can reach with these sample sizes: 1 / C(n_a + n_b, n_a)."""
    return 1 / math.comb(n_a + n_b, n_a)


def seeds_for_rank_test(superiority: float, alpha: float, power: float = 0.8) -> int | None:
    """Seeds per variant for a one-sided rank test at `alpha` to reach `power` at this P(A > B) (Noether 1987),
    and at least enough for the exact test to reach `alpha` at all; None when P(A > B) = 1/2 (no effect to find)."""
    if not math.isfinite(superiority) or abs(superiority - 0.5) < 1e-9:
        return None
    z = st.norm.ppf(1 - alpha) + st.norm.ppf(power)
    n = math.ceil(z**2 / (3 * (superiority - 0.5) ** 2) / 2)
    while min_rank_p(n, n) >= alpha:
        n += 1
    return n


@dataclass(frozen=True)
class SolveTest:
    """Boschloo's exact test on solved counts, one-sided in both directions."""

    p_better: float  # H1: a's solve rate is higher
    p_worse: float


def solve_test(solved_a: int, n_a: int, solved_b: int, n_b: int) -> SolveTest:
    """Boschloo's exact test of a's solve rate against b's (2 x 2 table: solved / not, per variant)."""
    if n_a == 0 or n_b == 0:
        return SolveTest(NAN, NAN)
    if solved_a + solved_b in (0, n_a + n_b):  # every run alike: the table holds no evidence either way
        return SolveTest(1.0, 1.0)
    table = [[solved_a, solved_b], [n_a - solved_a, n_b - solved_b]]
    better = st.boschloo_exact(table, alternative="greater").pvalue
    worse = st.boschloo_exact(table, alternative="less").pvalue
    return SolveTest(float(better), float(worse))


def seeds_for_rates(rate_a: float, rate_b: float, alpha: float, power: float = 0.8) -> int | None:
    """Seeds per variant to tell two solve rates apart (normal approximation, rates kept off 0 and 1)."""
    a, b = (min(max(r, 0.05), 0.95) for r in (rate_a, rate_b))
    if abs(a - b) < 1e-9:
        return None
    z = st.norm.ppf(1 - alpha) + st.norm.ppf(power)
    return math.ceil(z**2 * (a * (1 - a) + b * (1 - b)) / (a - b) ** 2)


@dataclass(frozen=True)
class Equivalence:
    """The difference of means a - b against +-margin: TOST, the 90 % CI, and the test of |a - b| > margin."""

    diff: float
    low: float  # 90 % CI of the difference
    high: float
    p_inside: float  # TOST: H1 -margin < a - b < margin
    p_outside: float  # H1 a - b > margin (or < -margin, whichever side the estimate is on)


def _welch_ci(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, float]:
    se2x, se2y = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(se2x + se2y)
    df = (se2x + se2y) ** 2 / (se2x**2 / (x.size - 1) + se2y**2 / (y.size - 1))
    half = st.t.ppf((1 + confidence) / 2, df) * se
    d = float(x.mean() - y.mean())
    return d - half, d + half


def equivalence(a: Sequence[float], b: Sequence[float], margin: float) -> Equivalence:
    """Welch TOST of |mean(a) - mean(b)| < margin; with no spread on either side the difference is exact."""
    x, y = _array(a), _array(b)
    if x.size < 2 or y.size < 2 or (x.var() == 0 and y.var() == 0 and min(x.size, y.size) < EXACT_MIN_RUNS):
        d = float(x.mean() - y.mean()) if x.size and y.size else NAN
        return Equivalence(d, NAN, NAN, NAN, NAN)
    d = float(x.mean() - y.mean())
    if x.var() == 0 and y.var() == 0 and min(x.size, y.size) >= EXACT_MIN_RUNS:
        # a t statistic would be infinite: with enough runs that all agree, the difference is taken as known
        inside = abs(d) < margin
        return Equivalence(d, d, d, 0.0 if inside else 1.0, 1.0 if inside or abs(d) == margin else 0.0)
    p_inside = float(ttost_ind(x, y, -margin, margin, usevar="unequal")[0])
    side = ("larger", margin) if d >= 0 else ("smaller", -margin)
    p_outside = float(ttest_ind(x, y, alternative=side[0], usevar="unequal", value=side[1])[1])
    low, high = _welch_ci(x, y, 0.90)
    return Equivalence(d, low, high, p_inside, p_outside)


def seeds_for_equivalence(a: Sequence[float], b: Sequence[float], margin: float, alpha: float = 0.05) -> int | None:
    """Seeds per variant at which, at the observed means and spreads, the one-sided Welch test of the TOST side the
    data point to would pass at `alpha` (the difference wholly inside or wholly outside +-margin): the Welch-
    Satterthwaite degrees of freedom at n seeds each, as `equivalence` tests. None when the estimate sits on the
    margin or there is no spread to scale."""
    x, y = _array(a), _array(b)
    if x.size < 2 or y.size < 2:
        return None
    gap = abs(abs(float(x.mean() - y.mean())) - margin)
    va, vb = float(x.var(ddof=1)), float(y.var(ddof=1))
    if gap == 0 or va + vb == 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        df = (n - 1) * (va + vb) ** 2 / (va**2 + vb**2)
        if st.t.ppf(1 - alpha, df) * math.sqrt((va + vb) / n) < gap:
            return n
    return MAX_SEEDS + 1


def censored(steps: Sequence[float | None], budgets: Sequence[float]) -> st.CensoredData:
    """Steps to solve as right-censored data: a run that never solved is censored at its step budget."""
    solved = [float(s) for s in steps if s is not None]
    right = [float(m) for s, m in zip(steps, budgets, strict=True) if s is None]
    return st.CensoredData(uncensored=solved, right=right)


@dataclass(frozen=True)
class SurvivalTest:
    """The log-rank statistic (positive: a solves sooner) with permutation p-values in both directions."""

    statistic: float
    p_faster: float
    p_slower: float
    exact: bool


def logrank_test(
    steps_a: Sequence[float | None],
    budgets_a: Sequence[float],
    steps_b: Sequence[float | None],
    budgets_b: Sequence[float],
) -> SurvivalTest:
    """Log-rank test of a's steps to solve against b's, p from the permutation distribution of the statistic."""
    steps, budgets = [*steps_a, *steps_b], [*budgets_a, *budgets_b]
    n_a = len(steps_a)
    if n_a == 0 or len(steps_b) == 0 or all(s is None for s in steps):
        return SurvivalTest(NAN, NAN, NAN, False)

    def statistic(ia: np.ndarray, ib: np.ndarray) -> float:
        pick = [(steps[int(i)], budgets[int(i)]) for i in ia], [(steps[int(i)], budgets[int(i)]) for i in ib]
        xa, xb = (censored([s for s, _ in p], [m for _, m in p]) for p in pick)
        return float(st.logrank(xa, xb).statistic)

    index = np.arange(len(steps), dtype=float)
    data = (index[:n_a], index[n_a:])
    observed = statistic(*data)
    exact = math.comb(len(steps), n_a) <= PERMUTATIONS
    p = {}
    for alternative in ("greater", "less"):
        res = st.permutation_test(
            data, statistic, n_resamples=PERMUTATIONS, alternative=alternative, vectorized=False, rng=_rng()
        )
        p[alternative] = float(res.pvalue)
    return SurvivalTest(observed, p["greater"], p["less"], exact)


def fraction_solved(steps: Sequence[float | None], budgets: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan-Meier estimate of the fraction of runs solved by each step: (steps, fraction), starting at 0."""
    if not steps:
        return np.array([0.0]), np.array([0.0])
    cdf = st.ecdf(censored(steps, budgets)).cdf
    return np.concatenate([[0.0], cdf.quantiles]), np.concatenate([[0.0], cdf.probabilities])


def holm(pvalues: Sequence[float], alpha: float) -> list[float]:
    """Holm-adjusted p-values of a family (statsmodels' `multipletests(method="holm")`), in the given order."""
    if not pvalues:
        return []
    return [float(p) for p in multipletests(list(pvalues), alpha=alpha, method="holm")[1]]
