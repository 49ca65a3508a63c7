"""Turning statistics into a verdict on the seed's claim: reproduced, not reproduced or inconclusive.

The rule, stated once here and quoted in every report (`RULE`), is applied per group (task x swept-factor value)
and then over the groups an expectation covers. With 3-5 seeds a test has little power, so "inconclusive" is the
honest default; a verdict needs a significant difference or, for "similar", a tight agreement between two variants
that both learned something.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnbench.reports.claims import Claim, Expectation
from rnnbench.reports.stats import Comparison, Summary

ALPHA = 0.05
SIMILAR_MARGIN = 0.10  # "similar": |difference| within 10% of the reference's distance from the trivial baseline
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"

RULE = (
    f"Per group (task x factor value), over the seeds that finished: *better*/*worse* is reproduced when Welch's "
    f"t-test gives p < {ALPHA} in the claimed direction and not reproduced when p < {ALPHA} in the other direction; "
    f"*similar* is not reproduced when p < {ALPHA}, and reproduced when p >= {ALPHA}, the two 95% confidence "
    f"intervals overlap, the difference of means is within {SIMILAR_MARGIN:.0%} of the reference's distance from "
    f"the task's trivial baseline, and the reference's mean beats that baseline. Anything else, including fewer than "
    f"two finished seeds on either side, is inconclusive. Over groups: reproduced when at least half of the groups "
    f"reproduce it and more groups reproduce it than contradict it; not reproduced when at least half contradict it "
    f"and more contradict it than reproduce it; otherwise inconclusive."
)


@dataclass(frozen=True)
class Group:
    """What the rule needs about one variant vs the reference in one (task, factor) group."""

    task: str
    x: float | None
    variant: Summary
    reference: Summary
    comparison: Comparison
    baseline: float | None
    higher_is_better: bool


@dataclass(frozen=True)
class Finding:
    """An expectation's verdict over its groups, with the counts behind it."""

    expectation: Expectation
    verdict: str
    reproduced: int
    contradicted: int
    groups: int
    sentence: str


def _gain(diff: float, higher_is_better: bool) -> float:
    """A difference of means signed so that positive means 'the variant is better'."""
    return diff if higher_is_better else -diff


def group_verdict(relation: str, group: Group) -> str:
    """The rule (see RULE) for one group."""
    p = group.comparison.p
    if group.variant.n < 2 or group.reference.n < 2 or math.isnan(p):
        return INCONCLUSIVE
    gain = _gain(group.comparison.diff, group.higher_is_better)
    if relation in ("better", "worse"):
        if p >= ALPHA:
            return INCONCLUSIVE
        return REPRODUCED if (gain > 0) == (relation == "better") else NOT_REPRODUCED
    if p < ALPHA:
        return NOT_REPRODUCED
    if group.baseline is None:
        return INCONCLUSIVE
    ref_gain = _gain(group.reference.mean - group.baseline, group.higher_is_better)
    overlap = group.variant.ci_low <= group.reference.ci_high and group.reference.ci_low <= group.variant.ci_high
    close = abs(group.comparison.diff) <= SIMILAR_MARGIN * ref_gain
    return REPRODUCED if ref_gain > 0 and overlap and close else INCONCLUSIVE


def finding(expectation: Expectation, claim: Claim, groups: list[Group]) -> Finding:
    """Aggregate an expectation's per-group verdicts (see RULE) into one verdict and one sentence."""
    verdicts = [group_verdict(expectation.relation, g) for g in groups]
    yes, no, n = verdicts.count(REPRODUCED), verdicts.count(NOT_REPRODUCED), len(verdicts)
    if n and yes > no and 2 * yes >= n:
        verdict = REPRODUCED
    elif n and no > yes and 2 * no >= n:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    described = expectation.describe(str(claim.reference), claim.x)
    sentence = (
        f"{verdict.capitalize()}: {described} held in {yes} of {n} groups and was contradicted in {no} "
        f"(the other {n - yes - no} inconclusive)."
        if n
        else f"Inconclusive: no runs of both {expectation.variant} and {claim.reference} in the groups it covers."
    )
    return Finding(expectation, verdict, yes, no, n, sentence)
