"""Deciding a study's hypotheses: the test each kind calls for, per group, Holm over the study, then over groups.

A hypothesis (declared in the sweep file's `study:` block, `rnnbench.study.spec`) speaks about groups: each
(task, setting, factor value) it covers, or, for an interaction, each (task, setting) over its factor range.
Per group the rule is:

1. One of the two must have learned (at least half of its runs beat the task's trivial baseline or solved it):
   when neither did the group's verdict is "neither learned". The variant learning where the reference did not is
   evidence for a claim that it does better and against one that it does worse or as well; only an interaction,
   whose gains are measured from the reference, needs the reference to have learned.
2. The test the relation calls for (`TESTS`), one-sided, in the direction the data point: towards the claim
   (reproduced if significant) or away from it (not reproduced if significant). Failed and diverged runs stay in:
   the worst value in rank tests, not solved in solve counts, censored at the budget in steps to solve, and the
   task's trivial baseline in means.
3. Holm's step-down adjustment over every test the study ran (the family), at `ALPHA`.

Over groups a hypothesis is reproduced when more than half of its groups reproduce it and none contradicts it, not
reproduced when more than half contradict it and none reproduces it, "neither learned" when no group had a
learner, and inconclusive otherwise: one group of several cannot carry a hypothesis. `rule_text` states all this
in every report.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from rnnbench.reports.rows import OK, Row
from rnnbench.reports.stats import (
    MAX_SEEDS,
    RANK_PERMUTATIONS,
    equivalence,
    holm,
    logrank_test,
    min_rank_p,
    rank_test,
    seeds_for_equivalence,
    seeds_for_rank_test,
    seeds_for_rates,
    solve_test,
)
from rnnbench.study.spec import Hypothesis, Study

ALPHA = 0.05
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NEITHER, REFERENCE_FAILED = "neither learned", "reference did not learn"
RANK_TEST = (
    "exact one-sided Mann-Whitney U on the test metric (with ties: its permutation distribution, Monte Carlo past "
    f"{RANK_PERMUTATIONS:,} relabellings), P(variant better) with a bootstrap CI"
)
TESTS = {
    "better": RANK_TEST,
    "worse": RANK_TEST,
    "solves": "Boschloo's exact test on solved counts (where the task records no solve criterion: on the runs "
    "that beat its trivial baseline)",
    "similar": "equivalence: two one-sided Welch t-tests (TOST) against the declared margin, with the 90% CI of the "
    "difference of means; reproduced when the CI lies inside +-margin, not reproduced when it lies outside",
    "faster": "log-rank test on steps to solve (unsolved runs censored at their step budget), p from its exact or "
    "Monte Carlo permutation distribution; where no run of either solved there is nothing to compare ('none solved')",
    "interaction": "exact one-sided Mann-Whitney U on the per-seed gains (variant minus reference, runs paired by "
    "seed) at the largest factor value against those at the smallest (the reference must have learned at the "
    "smallest)",
}


@dataclass(frozen=True)
class Side:
    """One variant's runs in one group, as the tests see them."""

    variant: str
    rows: tuple[Row, ...]
    metric: str | None

    @property
    def runs(self) -> int:
        return len(self.rows)

    @property
    def higher_is_better(self) -> bool:
        return self.rows[0].higher_is_better_for(self.metric)

    @property
    def baseline(self) -> float | None:
        return self.rows[0].baseline_for(self.metric)

    def rank_values(self) -> list[float]:
        """Test values; a run without one (failed, diverged, not finished) is the worst value, -inf or +inf."""
        worst = -math.inf if self.higher_is_better else math.inf
        return [worst if (v := r.metric_value(self.metric)) is None else v for r in self.rows]

    def mean_values(self) -> list[float]:
        """Test values; a run without one takes the task's trivial baseline (it learned nothing usable)."""
        fallback = math.nan if self.baseline is None else self.baseline
        return [fallback if (v := r.metric_value(self.metric)) is None else v for r in self.rows]

    def goodness_by_seed(self) -> dict[int, float]:
        """Rank values signed so that larger is better, by seed."""
        sign = 1.0 if self.higher_is_better else -1.0
        return {r.seed: sign * v for r, v in zip(self.rows, self.rank_values(), strict=True)}

    @property
    def learned(self) -> int:
        return sum(r.learned for r in self.rows)

    @property
    def has_learned(self) -> bool:
        """At least half of the runs beat the baseline or solved the task."""
        return bool(self.rows) and 2 * self.learned >= self.runs

    @property
    def has_criterion(self) -> bool:
        return any(r.solved is not None for r in self.rows)

    @property
    def solved(self) -> int:
        """Runs that solved (that beat the baseline, where no solve criterion is recorded); failed runs did not."""
        if self.has_criterion:
            return sum(bool(r.solved) and r.status == OK for r in self.rows)
        return sum(bool(r.beats_baseline) and r.status == OK for r in self.rows)

    def steps(self) -> tuple[list[int | None], list[float]]:
        """Steps to solve (None: censored) and each run's step budget (failed runs never solved)."""
        steps = [r.steps_to_solve if r.solved and r.status == OK else None for r in self.rows]
        observed = [s for s in steps if s is not None]
        fallback = max([*(r.max_steps or 0 for r in self.rows), *observed, 1])
        return steps, [float(r.max_steps) if r.max_steps and r.max_steps > 0 else float(fallback) for r in self.rows]


@dataclass(frozen=True)
class GroupResult:
    """One hypothesis in one group: the test, its p-value (raw and Holm-adjusted) and the group's verdict."""

    hypothesis: Hypothesis
    task: str
    setting: str
    x: float | None  # None for an interaction (it spans the factor range)
    reference: Side
    variant: Side
    status: str  # "tested" | NEITHER | REFERENCE_FAILED | "too few runs" | "not testable" | "none solved"
    estimate: str = ""  # the effect, in words and numbers
    p: float = math.nan  # the one-sided p-value in the direction the data point
    towards_claim: bool = True  # whether that direction is the claim's
    p_claim: float = math.nan  # the one-sided p-value towards the claim (Holm family "reproduced")
    p_other: float = math.nan  # ... and away from it (Holm family "not reproduced")
    p_adj: float = math.nan
    verdict: str = INCONCLUSIVE
    to_decide: str = ""  # for an undecided group: what would decide it
    planning: tuple = ()  # (kind, numbers) for the seed estimate, filled in once the family size is known

    @property
    def tested(self) -> bool:
        return self.status == "tested" and math.isfinite(self.p)


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.3g}"


REFERENCE_GATED = ("interaction",)  # its gains are differences from the reference, so the reference must learn


def _gate(base: GroupResult, ref: Side, var_learned: bool) -> GroupResult | None:
    """Step 1 of the rule (None: go on and test it). A claim is tested whenever either variant learned: the variant
    learning where the reference fails is the effect a better / solves / faster claim predicts, and a difference
    that contradicts a worse or similar one (seq_len_copy: the GRU left copy memory's plateau in 5-6 of 6 runs, the
    forget-bias-1 LSTM in none, so the GRU is not "similar" at that budget). An interaction needs the reference to
    have learned (else "reference did not learn")."""
    if not base.reference.rows or not base.variant.rows:
        return replace(base, status="too few runs", to_decide="runs of both variants")
    if min(len(base.reference.rows), len(base.variant.rows)) < 2:  # no test has a distribution at 1 vs n
        return replace(base, status="too few runs", to_decide="at least 2 runs of each variant")
    if ref.has_learned or (var_learned and base.hypothesis.relation not in REFERENCE_GATED):
        return None
    status = REFERENCE_FAILED if var_learned else NEITHER
    budget = _larger_budget(base)
    if status == NEITHER and base.hypothesis.relation not in REFERENCE_GATED:  # either learning would test it
        var = base.variant
        learnt = f"{ref.variant} {ref.learned}/{ref.runs}, {var.variant} {var.learned}/{var.runs} runs learned"
        return replace(base, status=status, verdict=status, to_decide=f"{budget} at which either learns ({learnt})")
    learnt = f"{ref.variant} beat its baseline in {ref.learned}/{ref.runs} runs"
    return replace(base, status=status, verdict=status, to_decide=f"{budget} at which {ref.variant} learns ({learnt})")


def _larger_budget(base: GroupResult) -> str:
    """'a budget', made concrete: more optimiser steps than the group's runs had, so the plan says where to start."""
    steps = [r.max_steps for r in (*base.reference.rows, *base.variant.rows) if r.max_steps and r.max_steps > 0]
    return f"a budget beyond the {max(steps):,} steps run" if steps else "a larger budget"


def _directional(base: GroupResult, p_claim: float, p_other: float) -> GroupResult:
    """Keep the one-sided p-value of the direction the data point (the smaller one)."""
    towards = p_claim <= p_other
    return replace(base, p=p_claim if towards else p_other, towards_claim=towards, p_claim=p_claim, p_other=p_other)


def test_group(h: Hypothesis, task: str, setting: str, x: float | None, ref: Side, var: Side) -> GroupResult:
    """Steps 1-2 of the rule for one (task, setting, factor value) group; Holm comes later (`decide`)."""
    base = GroupResult(h, task, setting, x, ref, var, "tested")
    gated = _gate(base, ref, var.has_learned)
    if gated is not None:
        return gated
    if h.relation in ("better", "worse"):
        r = rank_test(var.rank_values(), ref.rank_values(), var.higher_is_better)
        s = r.superiority
        estimate = f"P({var.variant} better) = {_fmt(s.estimate)} [{_fmt(s.low)}, {_fmt(s.high)}]"
        claim, other = (r.p_better, r.p_worse) if h.relation == "better" else (r.p_worse, r.p_better)
        out = _directional(replace(base, estimate=estimate), claim, other)
        return replace(out, planning=("rank", s.estimate, var.runs, ref.runs))
    if h.relation == "solves":
        t = solve_test(var.solved, var.runs, ref.solved, ref.runs)
        what = "solved" if var.has_criterion or ref.has_criterion else "beat baseline"
        estimate = f"{what}: {var.solved}/{var.runs} vs {ref.solved}/{ref.runs}"
        out = _directional(replace(base, estimate=estimate), t.p_better, t.p_worse)
        return replace(out, planning=("rates", var.solved / var.runs, ref.solved / ref.runs))
    if h.relation == "similar":
        return _similar(base, h, ref, var)
    if h.relation == "faster":
        if not (var.has_criterion or ref.has_criterion):
            return replace(base, status="not testable", to_decide="a task with a solve criterion (steps to solve)")
        solved = f"solved {var.solved}/{var.runs} vs {ref.solved}/{ref.runs}"
        if not (var.solved or ref.solved):  # every run censored at its budget: steps to solve cannot differ
            return replace(
                base, status="none solved", estimate=solved, to_decide=f"{_larger_budget(base)} at which either solves"
            )
        (sv, bv), (sr, br) = var.steps(), ref.steps()
        t = logrank_test(sv, bv, sr, br)
        estimate = f"{solved}; log-rank {_fmt(t.statistic)}"
        estimate += "" if t.exact else " (Monte Carlo)"
        out = _directional(replace(base, estimate=estimate), t.p_faster, t.p_slower)
        return replace(out, planning=("permutation", var.runs, ref.runs))
    raise ValueError(f"relation {h.relation!r} is tested per factor range, not per group")


def margin_of(h: Hypothesis, ref: Side) -> float:
    """The `similar` margin in metric units: absolute, or a fraction of the reference's gain over the baseline."""
    if h.margin_kind == "absolute" or h.margin is None:
        return float(h.margin or math.nan)
    values, baseline = ref.mean_values(), ref.baseline
    if baseline is None or not values:
        return math.nan
    gain = sum(values) / len(values) - baseline
    return h.margin * abs(gain)


def _similar(base: GroupResult, h: Hypothesis, ref: Side, var: Side) -> GroupResult:
    margin = margin_of(h, ref)
    a, b = var.mean_values(), ref.mean_values()
    if var.runs < 2 or ref.runs < 2 or not math.isfinite(margin):
        return replace(base, status="too few runs", to_decide="at least 2 runs of each variant and a baseline")
    e = equivalence(a, b, margin)
    width = e.high - e.low
    estimate = (
        f"diff {_fmt(e.diff)}, 90% CI [{_fmt(e.low)}, {_fmt(e.high)}] (width {_fmt(width)}), margin +-{_fmt(margin)}"
    )
    out = _directional(replace(base, estimate=estimate), e.p_inside, e.p_outside)
    out = replace(out, towards_claim=abs(e.diff) < margin, p=e.p_inside if abs(e.diff) < margin else e.p_outside)
    return replace(out, planning=("equivalence", tuple(a), tuple(b), margin))


def test_interaction(h: Hypothesis, task: str, setting: str, by_x: dict[float, tuple[Side, Side]]) -> GroupResult:
    """The variant's per-seed gain over the reference at the largest factor value against the smallest."""
    xs = sorted(by_x)
    low_ref, low_var = by_x[xs[0]]
    high_ref, high_var = by_x[xs[-1]]
    base = GroupResult(h, task, setting, None, low_ref, high_var, "tested")
    if len(xs) < 2:
        return replace(base, status="too few runs", to_decide="runs at two factor values at least")
    gated = _gate(base, low_ref, any(s.has_learned for s in (low_var, high_ref, high_var)))
    if gated is not None:
        return gated

    def gains(ref: Side, var: Side) -> list[float]:
        r, v = ref.goodness_by_seed(), var.goodness_by_seed()
        out = []
        for seed in sorted(set(r) & set(v)):
            both_failed = math.isinf(r[seed]) and math.isinf(v[seed]) and r[seed] == v[seed]
            out.append(0.0 if both_failed else v[seed] - r[seed])
        return out

    low, high = gains(low_ref, low_var), gains(high_ref, high_var)
    if not low or not high:
        return replace(base, status="too few runs", to_decide="runs of both variants with the same seeds")
    t = rank_test(high, low, higher_is_better=True)
    s = t.superiority
    estimate = (
        f"P(gain at {xs[-1]:g} > gain at {xs[0]:g}) = {_fmt(s.estimate)} [{_fmt(s.low)}, {_fmt(s.high)}]; "
        f"median gain {_fmt(_median(low))} -> {_fmt(_median(high))} ({len(low)}, {len(high)} seed pairs)"
    )
    out = _directional(replace(base, estimate=estimate), t.p_better, t.p_worse)
    return replace(out, planning=("rank", s.estimate, len(high), len(low)))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return math.nan if not n else (ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2)


def _seeds(n: int) -> str:
    return f"about {n} seeds per variant" if n <= MAX_SEEDS else f"more than {MAX_SEEDS} seeds per variant"


def _plan(result: GroupResult, alpha: float) -> str:
    """What would decide an undecided, tested group, at the per-test level `alpha` (Bonferroni, to be safe)."""
    kind, *numbers = result.planning or ("",)
    if kind == "rank":
        superiority, n_a, n_b = numbers
        n = seeds_for_rank_test(superiority, alpha)
        floor = "" if min_rank_p(n_a, n_b) < alpha else f"; {n_a} vs {n_b} seeds cannot reach p < {alpha:.2g} at all"
        seeds = "no effect to detect at these seeds" if n is None else _seeds(n)
        return seeds + floor
    if kind == "rates":
        n = seeds_for_rates(*numbers, alpha)
        return "no difference in solve rate to detect" if n is None else _seeds(n)
    if kind == "permutation":
        n_a, n_b = numbers
        n = 2
        while min_rank_p(n, n) >= alpha:
            n += 1
        if min_rank_p(n_a, n_b) >= alpha:
            return f"at least {n} seeds per variant: {n_a} vs {n_b} seeds cannot reach p < {alpha:.2g} at all"
        return "more seeds, or a budget at which the slower variant solves (censored runs carry less information)"
    if kind == "equivalence":
        a, b, margin = numbers
        n = seeds_for_equivalence(a, b, margin, alpha)
        return "the estimate sits on the margin" if n is None else _seeds(n)
    return "more seeds (a larger budget if runs are censored)"


def decide(results: Sequence[GroupResult], alpha: float = ALPHA) -> list[GroupResult]:
    """Step 3: Holm over the tested groups of the whole study, then each group's verdict."""
    tested = [i for i, r in enumerate(results) if r.tested]
    # Two families, each over every tested group at alpha: "reproduced" rests on the p-values towards the claims,
    # "not reproduced" on those away from them, so each kind of wrong verdict has a family-wise rate <= alpha
    # (taking the smaller of the two one-sided p-values into one family would double it).
    claim = dict(zip(tested, holm([results[i].p_claim for i in tested], alpha), strict=True))
    other = dict(zip(tested, holm([results[i].p_other for i in tested], alpha), strict=True))
    per_test = alpha / max(len(tested), 1)
    out = []
    for i, r in enumerate(results):
        if i not in claim:
            out.append(r)
            continue
        p_adj = claim[i] if r.towards_claim else other[i]
        if claim[i] < alpha or other[i] < alpha:
            verdict = REPRODUCED if claim[i] < alpha else NOT_REPRODUCED
            out.append(replace(r, p_adj=p_adj, verdict=verdict, to_decide=""))
        else:
            out.append(replace(r, p_adj=p_adj, verdict=INCONCLUSIVE, to_decide=_plan(r, per_test)))
    return out


@dataclass(frozen=True)
class Finding:
    """A hypothesis's verdict over its groups, with the counts behind it."""

    hypothesis: Hypothesis
    verdict: str
    reproduced: int
    contradicted: int
    groups: int
    sentence: str
    to_decide: str = ""
    described: str = ""  # the hypothesis in words, as tested (describe)


def describe(h: Hypothesis, study: Study, ran: Collection[str] = ()) -> str:
    """A hypothesis in words, e.g. 'rnn worse than lstm on adding at task.seq_len >= 100'.

    `ran`: the tasks its groups have. A study that runs only some of a hypothesis's tasks (peephole_long shares
    peephole's hypotheses, on one of their two tasks) says which it tested and which it did not run, so the words
    never claim a task no run was on."""
    relation = {
        "better": "better than",
        "worse": "worse than",
        "similar": "similar to",
        "solves": "solves more often than",
        "faster": "solves in fewer steps than",
        "interaction": "gains more over",
    }[h.relation]
    tested = [t for t in h.tasks if t in ran] or list(h.tasks)
    missing = [t for t in h.tasks if t not in tested]
    where = f" on {', '.join(tested)}" if tested else ""
    where += f" ({', '.join(missing)} not run)" if missing else ""
    low, high = h.factor_min, h.factor_max
    at = ""
    if low is not None or high is not None:
        bounds = [f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else ""]
        at = f" at {study.factor} {' and '.join(b for b in bounds if b)}"
    tail = f" at the largest {study.factor} than at the smallest" if h.relation == "interaction" else ""
    margin = ""
    if h.relation == "similar":
        unit = "of the reference's gain over the baseline" if h.margin_kind == "fraction" else "(metric units)"
        margin = f" (margin {h.margin:g} {unit})" if h.margin_kind == "absolute" else f" (margin {h.margin:.0%} {unit})"
    metric = f" [{h.metric}]" if h.metric else ""
    return f"{h.variant} {relation} {study.reference}{tail}{where}{at}{margin}{metric}"


def finding(h: Hypothesis, study: Study, results: Sequence[GroupResult]) -> Finding:
    """The over-groups rule (see the module docstring) for one hypothesis."""
    verdicts = [r.verdict for r in results]
    yes, no, n = verdicts.count(REPRODUCED), verdicts.count(NOT_REPRODUCED), len(verdicts)
    described = describe(h, study, {r.task for r in results})
    if not n:
        sentence = f"Inconclusive: no runs of both {h.variant} and {study.reference} in the groups it covers."
        return Finding(h, INCONCLUSIVE, 0, 0, 0, sentence, "runs of both variants", described)
    if verdicts.count(NEITHER) == n:
        verdict = NEITHER
    elif 2 * yes > n and no == 0:
        verdict = REPRODUCED
    elif 2 * no > n and yes == 0:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    others = ", ".join(f"{verdicts.count(v)} {v}" for v in sorted(set(verdicts) - {REPRODUCED, NOT_REPRODUCED}))
    sentence = (
        f"{verdict[0].upper()}{verdict[1:]}: {described}; reproduced in {yes} of {n} groups, contradicted in {no}"
        + (f" ({others})." if others else ".")
    )
    undecided = [r for r in results if r.verdict not in (REPRODUCED, NOT_REPRODUCED) and r.to_decide]
    if verdict in (REPRODUCED, NOT_REPRODUCED):
        to_decide = ""
    elif yes and no:
        to_decide = split_plan(results, study.factor)
    else:
        to_decide = merge_plans((group_label(r, study.factor), r.to_decide) for r in undecided)
    return Finding(h, verdict, yes, no, n, sentence, to_decide, described)


def group_label(r: GroupResult, factor: str | None) -> str:
    """The group in words, e.g. 'temporal_order task.seq_len=200': the task, its setting and the factor value."""
    value = f"{factor}={r.x:g}" if factor and r.x is not None else ""
    return " ".join(part for part in (r.task, r.setting, value) if part)


def split_plan(results: Sequence[GroupResult], factor: str | None) -> str:
    """What decides a hypothesis whose groups disagree, each significantly after Holm: nothing more of the same
    design. More seeds or budget sharpen each group's verdict, they cannot turn a significant contradiction into
    support, so the report names where the claim held and where it failed instead of asking for more runs."""

    def where(verdict: str) -> str:
        return ", ".join(group_label(r, factor) for r in results if r.verdict == verdict)

    return (
        f"no more seeds or budget: its groups disagree, each significantly (held on {where(REPRODUCED)}; "
        f"contradicted on {where(NOT_REPRODUCED)}), so the claim depends on the task or setting and the per-group "
        "verdicts are the finding"
    )


def merge_plans(plans: Iterable[tuple[str, str]]) -> str:
    """The groups' plans, given as (group label, plan), as one: each distinct plan once, and plans that differ only
    in their closing parenthesis (the runs each group's variants learned) as one plan with each group's details
    side by side under its label, so a hypothesis over four groups where neither learned reads 'a budget ... at
    which either learns (adding T=100: ...; adding T=200: ...)', not the phrase four times over."""
    details: dict[str, list[str]] = {}
    for label, plan in dict.fromkeys(plans):  # in the groups' order, each once
        head, paren, rest = plan.partition(" (")
        if paren and rest.endswith(")") and "(" not in head:
            details.setdefault(head, []).append(f"{label}: {rest[:-1]}" if label else rest[:-1])
        else:
            details.setdefault(plan, [])
    return "; ".join(f"{head} ({'; '.join(more)})" if more else head for head, more in details.items())


def rule_text(study: Study, family: int, alpha: float = ALPHA) -> list[str]:
    """The rule in words, for the report: tests by kind, the family, the aggregation over groups."""
    relations = sorted({h.relation for h in study.hypotheses})
    tests = "; ".join(f"*{r}*: {TESTS[r]}" for r in relations)
    return [
        "**Rule.** Per group (task x setting x factor value; for an interaction, task x setting over the factor "
        "range), a variant has learned when at least half of its runs beat the task's trivial baseline or solved "
        "it. A claim is tested when either variant learned (the variant learning where the reference did not is "
        "evidence for *better*, *solves* and *faster* and against *worse* and *similar*: with a reference that did "
        "not learn, a *similar* margin taken from its gain is near zero, so only a difference can come out); an "
        '*interaction* only when the reference learned (else "reference did not learn"); a group where neither '
        f'learned is "neither learned". Tests: {tests}. Each '
        "test is one-sided, in both directions: significant towards the claim is reproduced, significant away from "
        "it is not reproduced, anything else is inconclusive. Failed and diverged runs stay in: the worst value in "
        "rank tests, not solved in solve counts, censored at the step budget in steps to solve, the trivial "
        "baseline in means; runs still running or interrupted are left out (a relaunch reruns them). With "
        "`stop_on_solve` a solved run's test metric is read at the check that solved it, just past the threshold: "
        "among solved runs a continuous metric then says little beyond solved or not.",
        f"**Family.** Holm's step-down adjustment over the {family} test(s) this study ran (every hypothesis x group "
        f"that was tested), at alpha = {alpha}, in two families: the one-sided p-values towards the claims decide "
        f'"reproduced", those away from them "not reproduced", so each kind of wrong verdict has a family-wise error '
        "rate of at most alpha; the tables show the raw and adjusted p of the direction the data point.",
        "**Over groups.** A hypothesis is reproduced when more than half of its groups reproduce it and none "
        'contradicts it; not reproduced when more than half contradict it and none reproduces it; "neither '
        'learned" when no group had a variant that learned; otherwise inconclusive, so one group of several cannot '
        "carry it. Per-group verdicts are in the table below.",
        "**To decide.** For an undecided group, the seeds per variant that would likely decide it (rank tests: "
        "Noether 1987 at 80 % power; solve rates: the normal approximation; similar: the seeds at which the 90 % CI "
        "at the observed spread falls wholly inside or outside the margin), each at alpha / family size; where "
        "the reference did not learn, a larger budget or tuned settings come first.",
    ]
