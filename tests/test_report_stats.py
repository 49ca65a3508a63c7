"""Report statistics against hand-computed values and scipy, and the findings rule on clear-cut cases."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from rnnbench.reports.claims import Claim, Expectation
from rnnbench.reports.findings import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Group, finding, group_verdict
from rnnbench.reports.stats import compare, hedges_g, summarize, welch

T_975_3 = 3.182446305284263  # t(0.975, df=3), from tables


def test_summary_of_one_to_four_by_hand() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5 / 3)  # squared deviations 2.25+0.25+0.25+2.25 = 5, over n-1 = 3
    half = T_975_3 * std / 2
    assert (s.n, s.mean) == (4, 2.5)
    assert s.std == pytest.approx(std, rel=1e-12)
    assert (s.ci_low, s.ci_high) == (pytest.approx(2.5 - half, rel=1e-9), pytest.approx(2.5 + half, rel=1e-9))
    assert s.ci_low == pytest.approx(0.44574, abs=1e-5)


def test_single_value_has_no_spread() -> None:
    s = summarize([0.7])
    assert s.mean == 0.7 and math.isnan(s.std) and math.isnan(s.ci_low)


def test_welch_matches_scipy() -> None:
    a, b = [0.21, 0.25, 0.19, 0.30, 0.27], [0.11, 0.35, 0.02]
    t, df, p = welch(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-10)
    va, vb = scipy_stats.tvar(a) / 5, scipy_stats.tvar(b) / 3
    assert df == pytest.approx((va + vb) ** 2 / (va**2 / 4 + vb**2 / 2), rel=1e-12)


def test_hedges_g_by_hand() -> None:
    # means 2.5 and 4.5, both sample variances 5/3 -> pooled std sqrt(5/3); J = 1 - 3/(4*8 - 9) = 20/23
    g = hedges_g([1, 2, 3, 4], [3, 4, 5, 6])
    assert g == pytest.approx(-2 / math.sqrt(5 / 3) * 20 / 23, rel=1e-12)
    assert g == pytest.approx(-1.34712, abs=1e-5)


def test_undefined_statistics_are_nan() -> None:
    assert all(math.isnan(v) for v in welch([1.0], [1.0, 2.0]))
    assert all(math.isnan(v) for v in welch([1.0, 1.0], [1.0, 1.0]))
    assert math.isnan(hedges_g([2.0, 2.0], [2.0, 2.0]))


def _group(variant: list[float], reference: list[float], baseline: float = 0.25) -> Group:
    """An accuracy-like group (higher is better)."""
    return Group("t", None, summarize(variant), summarize(reference), compare(variant, reference), baseline, True)


def test_better_and_worse_need_a_significant_difference() -> None:
    clear = _group([0.90, 0.91, 0.92], [0.50, 0.52, 0.51])
    assert group_verdict("better", clear) == REPRODUCED
    assert group_verdict("worse", clear) == NOT_REPRODUCED
    assert group_verdict("better", _group([0.6, 0.9, 0.5], [0.55, 0.8, 0.6])) == INCONCLUSIVE
    assert group_verdict("better", _group([0.9], [0.5, 0.52])) == INCONCLUSIVE


def test_similar_needs_agreement_between_variants_that_learned() -> None:
    assert group_verdict("similar", _group([0.90, 0.91, 0.92], [0.905, 0.915, 0.91])) == REPRODUCED
    assert group_verdict("similar", _group([0.90, 0.91, 0.92], [0.50, 0.52, 0.51])) == NOT_REPRODUCED
    at_chance = _group([0.24, 0.26, 0.25], [0.25, 0.24, 0.26])  # both at the baseline: says nothing
    assert group_verdict("similar", at_chance) == INCONCLUSIVE


def test_verdict_over_groups() -> None:
    claim = Claim(text="b beats a", reference="a", expectations=(Expectation("b", "better"),))
    win, tie = _group([0.9, 0.91, 0.92], [0.5, 0.52, 0.51]), _group([0.6, 0.9, 0.5], [0.55, 0.8, 0.6])
    assert finding(claim.expectations[0], claim, [win, tie]).verdict == REPRODUCED
    assert finding(claim.expectations[0], claim, [win, tie, tie]).verdict == INCONCLUSIVE
    assert finding(claim.expectations[0], claim, []).verdict == INCONCLUSIVE
