"""From one sweep's rows to what its report states: per-variant statistics, comparisons and findings.

Rows are grouped by (task, swept-factor value, variant). Statistics use the finished runs only, but every run is
counted by status, so a variant whose seeds failed or diverged shows that instead of a flattering mean.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from rnnbench.reports.claims import Claim, Expectation
from rnnbench.reports.findings import Finding, Group, finding, group_verdict
from rnnbench.reports.rows import OK, Row
from rnnbench.reports.stats import Comparison, Summary, compare, mean, summarize

COUNTED = ("failed", "diverged")  # shown in their own columns; any other unfinished status is counted as "other"


@dataclass(frozen=True)
class VariantStats:
    """One variant in one (task, factor) group: how its runs ended and what the finished ones scored."""

    task: str
    x: float | None
    variant: str
    metric: str
    higher_is_better: bool
    runs: int
    status: Counter
    summary: Summary
    values: tuple[float, ...]
    beats: int
    baseline: float | None
    num_parameters: float
    epoch_time_s: float

    @property
    def key(self) -> tuple[str, float | None]:
        """The (task, factor value) group this belongs to."""
        return self.task, self.x


@dataclass(frozen=True)
class VariantComparison:
    """A variant against the reference in the same group, with the claim about it there and its verdict."""

    variant: VariantStats
    reference: VariantStats
    result: Comparison
    expectation: Expectation | None  # the claim's expectation covering this group, if any
    verdict: str  # its verdict here ('' without an expectation)

    def group(self) -> Group:
        """The inputs of the findings rule for this comparison."""
        v = self.variant
        return Group(
            v.task, v.x, v.summary, self.reference.summary, self.result, self.reference.baseline, v.higher_is_better
        )


@dataclass(frozen=True)
class Analysis:
    """Everything a sweep report shows, computed once from its rows."""

    experiment: str
    claim: Claim
    rows: tuple[Row, ...]
    variants: tuple[VariantStats, ...]
    comparisons: tuple[VariantComparison, ...]
    findings: tuple[Finding, ...]


def variant_order(claim: Claim, variant: str) -> tuple[bool, str]:
    """Sort key putting the reference variant first."""
    return variant != claim.reference, variant


def _x_key(x: float | None) -> float:
    """Sort key of a swept-factor value (runs without one first)."""
    return -math.inf if x is None else x


def _variant_stats(rows: list[Row]) -> VariantStats:
    """Statistics of the rows of one (task, factor, variant) cell."""
    first = rows[0]
    ok = [r for r in rows if r.ok]
    values = tuple(r.value for r in ok if r.value is not None)
    params = [float(r.num_parameters) for r in rows if r.num_parameters is not None]
    times = [r.epoch_time_s for r in rows if r.epoch_time_s is not None]
    return VariantStats(
        task=first.task,
        x=first.x,
        variant=first.variant,
        metric=first.metric,
        higher_is_better=first.higher_is_better,
        runs=len(rows),
        status=Counter(r.status if r.status in (OK, *COUNTED) else "other" for r in rows),
        summary=summarize(values),
        values=values,
        beats=sum(bool(r.beats_baseline) for r in rows),
        baseline=first.baseline,
        num_parameters=mean(params),
        epoch_time_s=mean(times),
    )


def _comparison(claim: Claim, variant: VariantStats, reference: VariantStats) -> VariantComparison:
    """Compare a variant with the reference and judge it by the expectation that covers its group, if any."""
    covering = [e for e in claim.expectations if e.variant == variant.variant and e.applies(*variant.key)]
    compared = VariantComparison(variant, reference, compare(variant.values, reference.values), None, "")
    if not covering:
        return compared
    verdict = group_verdict(covering[0].relation, compared.group())
    return VariantComparison(variant, reference, compared.result, covering[0], verdict)


def analyse(experiment: str, claim: Claim, rows: list[Row]) -> Analysis:
    """Group, summarise, compare against the reference and judge every expectation of the claim."""
    rows = sorted(rows, key=lambda r: (r.task, _x_key(r.x), variant_order(claim, r.variant), r.seed, r.run))
    cells: dict[tuple, list[Row]] = {}
    for row in rows:
        cells.setdefault((row.task, row.x, row.variant), []).append(row)
    variants = tuple(_variant_stats(cells_rows) for cells_rows in cells.values())
    references = {v.key: v for v in variants if v.variant == claim.reference}
    comparisons = tuple(
        _comparison(claim, v, references[v.key])
        for v in variants
        if v.key in references and v.variant != claim.reference
    )
    findings = tuple(
        finding(e, claim, [c.group() for c in comparisons if c.expectation == e]) for e in claim.expectations
    )
    return Analysis(experiment, claim, tuple(rows), variants, comparisons, findings)
