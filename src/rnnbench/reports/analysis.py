"""From one sweep's records to what its report states: cells, per-variant statistics, tests, findings, aggregates.

The study (`config["study"]` of the runs, `rnnbench.study.spec`) says how variants are told apart, which one is
the reference, what the factor is and what is claimed; runs without one get tables and plots (variants told apart
by `model.cell`), no verdict. Rows are grouped into cells by `groups.cells`, which never pools unlike runs;
every run is counted by status, failed and diverged ones included in the tests (see `findings`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rnnbench.reports.aggregate import Aggregate, aggregates
from rnnbench.reports.cost import Architecture, Cost, architectures, study_cost
from rnnbench.reports.findings import (
    Finding,
    GroupResult,
    Side,
    decide,
    finding,
    test_group,
    test_interaction,
)
from rnnbench.reports.groups import CellKey, PoolingError, cells
from rnnbench.reports.rows import OK, Row, experiment_of, to_row
from rnnbench.reports.stats import Interval, mean_ci, rate_ci
from rnnbench.reports.tuning import Sensitivity, sensitivities
from rnnbench.study.spec import Study, StudyError, eval_stops, parse_study

COUNTED = ("failed", "diverged")  # shown in their own columns; any other unfinished status is counted as "other"
ENDED = (OK, *COUNTED)  # what the tests count: a result or a failure; running / interrupted runs are rerun, not failed


@dataclass(frozen=True)
class VariantStats:
    """One variant in one cell: how its runs ended, what the finished ones scored, how many learned and solved."""

    cell: CellKey
    rows: tuple[Row, ...]
    metric: str
    higher_is_better: bool
    status: Counter
    values: tuple[float, ...]  # finished runs' primary test metric
    mean: Interval  # of `values`, percentile bootstrap 95 % CI
    learned: int
    solved: Interval | None  # solve rate with its Clopper-Pearson 95 % CI; None without a solve criterion
    baseline: float | None
    num_parameters: float
    epoch_time_s: float

    @property
    def task(self) -> str:
        return self.cell.task

    @property
    def x(self) -> float | None:
        return self.cell.x

    @property
    def variant(self) -> str:
        return self.cell.variant

    @property
    def setting(self) -> str:
        return self.cell.setting

    @property
    def runs(self) -> int:
        return len(self.rows)

    @property
    def n_solved(self) -> int:
        return sum(bool(r.solved) and r.status == OK for r in self.rows)


@dataclass(frozen=True)
class Analysis:
    """Everything a sweep report shows, computed once from its records."""

    experiment: str
    study: Study
    rows: tuple[Row, ...]  # every run, tuning runs included, in cell order
    variants: tuple[VariantStats, ...]  # evaluation cells
    results: tuple[GroupResult, ...]  # every hypothesis x group, with Holm-adjusted p and verdict
    findings: tuple[Finding, ...]
    splits: dict[tuple[str, str], list[str]]  # (stage, task) -> keys that split its runs into settings
    aggregates: tuple[Aggregate, ...]
    tuning: tuple[Sensitivity, ...]
    archs: Mapping[str, frozenset[Architecture]] = field(default_factory=dict)  # variant -> cell, direction, impl
    cost: Cost | None = None  # same-implementation bench figures (`rnnbench-report --bench`)
    grid: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # the declared sweep's grid, key -> values
    tune_planned: int | None = None  # the tuning runs the declared sweep's whole grid asks for
    superseded: int = 0  # evaluation runs of an earlier protocol, left out (current_protocol)
    late: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # late_hypotheses: id -> (eval, tune) runs

    @property
    def eval_rows(self) -> tuple[Row, ...]:
        return tuple(r for v in self.variants for r in v.rows)

    @property
    def family(self) -> int:
        """How many tests the study ran (the Holm family)."""
        return sum(r.tested for r in self.results)

    @property
    def has_settings(self) -> bool:
        return any(v.setting for v in self.variants)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def variant_order(study: Study, variant: str) -> tuple[bool, str]:
    """Sort key putting the reference variant first."""
    return variant != study.reference, variant


def _variant_stats(cell: CellKey, rows: list[Row]) -> VariantStats:
    first = rows[0]
    values = tuple(r.value for r in rows if r.ok and r.value is not None)
    with_criterion = any(r.solved is not None for r in rows)
    solved = sum(bool(r.solved) and r.status == OK for r in rows)
    times = [r.epoch_time_s for r in rows if r.epoch_time_s is not None]
    return VariantStats(
        cell=cell,
        rows=tuple(rows),
        metric=first.metric,
        higher_is_better=first.higher_is_better,
        status=Counter(r.status if r.status in (OK, *COUNTED) else "other" for r in rows),
        values=values,
        mean=mean_ci(values),
        learned=sum(r.learned for r in rows),
        solved=rate_ci(solved, len(rows)) if with_criterion else None,
        baseline=first.baseline,
        num_parameters=_mean([float(r.num_parameters) for r in rows if r.num_parameters is not None]),
        epoch_time_s=_mean(times),
    )


def _tests(study: Study, eval_cells: dict[CellKey, list[Row]]) -> list[GroupResult]:
    """Every hypothesis against every group it covers, before Holm."""
    results: list[GroupResult] = []
    groups = sorted({k.group for k in eval_cells}, key=lambda g: (g[1], g[2], -math.inf if g[3] is None else g[3]))
    for h in study.hypotheses:

        def side(group: tuple, variant: str, h=h) -> Side:
            stage, task, setting, x = group
            rows = eval_cells.get(CellKey(stage, task, setting, x, variant), [])
            # a result or a failure counts; a run still running or interrupted is neither (a relaunch reruns it)
            return Side(variant, tuple(r for r in rows if r.status in ENDED), h.metric)

        covered = [g for g in groups if h.applies(g[1], g[3])]
        covered = [g for g in covered if side(g, h.variant).rows and side(g, str(study.reference)).rows]
        if h.relation == "interaction":
            by_task: dict[tuple[str, str], dict[float, tuple[Side, Side]]] = {}
            for g in covered:
                if g[3] is not None:
                    by_task.setdefault((g[1], g[2]), {})[g[3]] = (side(g, str(study.reference)), side(g, h.variant))
            results += [test_interaction(h, t, s, by_x) for (t, s), by_x in by_task.items()]
        else:
            results += [
                test_group(h, g[1], g[2], g[3], side(g, str(study.reference)), side(g, h.variant)) for g in covered
            ]
    return results


def study_of(records: Sequence[dict[str, Any]], experiment: str) -> Study:
    """The one study block the records carry (none: compare by cell, no hypotheses). Blocks that differ only in
    their evaluation seeds or their tuning grid are one study: a launch that added seeds to an undecided study, or
    widened the grid that every variant is tuned on (a choice at its edge); the seeds and the grid are the unions.
    Hypotheses do not part them either (a citation added, or a hypothesis declared, after some runs): the latest
    run's hypotheses are reported, and `late_hypotheses` says which of them earlier runs did not carry."""
    found = [r.get("config", {}).get("study") for r in records]
    blocks = {json.dumps(_pooling_key(b), sort_keys=True) for b in found}
    if len(blocks) > 1:
        raise PoolingError(
            f"runs of experiment {experiment} record {len(blocks)} different study blocks (evaluation seeds, "
            "tuning grid and hypotheses aside): report each sweep's runs separately (or re-run them with one sweep "
            "file)"
        )
    latest = max(records, key=lambda r: str(r.get("started_at") or ""), default={})
    block = latest.get("config", {}).get("study") if blocks else None
    if block is not None:
        seeds = sorted({s for b in found if b for s in b.get("seeds") or []})
        block = {**block, "seeds": seeds} if seeds else block
        grid = sorted({v for b in found if b for v in (b.get("tuning") or {}).get("grid") or []})
        if grid:
            block = {**block, "tuning": {**block["tuning"], "grid": grid}}
    try:
        return parse_study(block) if block is not None else Study()
    except StudyError as err:
        raise PoolingError(f"experiment {experiment}: {err}") from err


def _pooling_key(block: dict[str, Any] | None) -> dict[str, Any] | None:
    """A study block without what a relaunch may extend (the evaluation seeds, the tuning grid) or what cannot
    change a run (the hypotheses: they are read from the runs, never used to train them)."""
    if block is None:
        return None
    key = {k: v for k, v in block.items() if k not in ("seeds", "hypotheses")}
    if isinstance(key.get("tuning"), dict):
        key["tuning"] = {k: v for k, v in key["tuning"].items() if k != "grid"}
    return key


def _declared(h: Any) -> str:
    """A hypothesis as its test reads it: its definition without the citation, as canonical JSON."""
    return json.dumps({k: v for k, v in h.items() if k != "literature"} if isinstance(h, dict) else h, sort_keys=True)


def _hypotheses(record: dict[str, Any]) -> list[Any]:
    return ((record.get("config") or {}).get("study") or {}).get("hypotheses") or []


def late_hypotheses(records: Sequence[dict[str, Any]], study: Study) -> dict[str, tuple[int, int]]:
    """Hypothesis id -> (evaluation runs, tuning runs) whose study block did not declare it as reported: declared
    or changed after those runs. Declared after the tuning stage and before any evaluation run, a hypothesis is
    still tested on runs that were not looked at; declared after evaluation runs, it was not, and the report says
    so (`sweep_report.late_lines`)."""
    latest = max(records, key=lambda r: str(r.get("started_at") or ""), default={})
    declared = {h.get("id"): _declared(h) for h in _hypotheses(latest) if isinstance(h, dict)}
    late: dict[str, tuple[int, int]] = {}
    for h in study.hypotheses:
        before = [r for r in records if declared.get(h.id) not in {_declared(x) for x in _hypotheses(r)}]
        if before:
            evals = sum(r.get("stage") != "tune" for r in before)  # eval, or null: a plain train-then-test run
            late[h.id] = (evals, len(before) - evals)
    return late


def analyse(
    experiment: str, records: Sequence[dict[str, Any]], bench: tuple[str, dict[str, Any]] | None = None
) -> Analysis:
    """Group, summarise, test every hypothesis of the study, Holm over the study, aggregate; with `bench` (the
    file as given, its rnnbench-bench document) the variants' cost on one implementation."""
    study = study_of(records, experiment)
    records, superseded = current_protocol(records, study)
    grouped, splits = cells([to_row(r, study) for r in records], study)
    study = for_tasks(study, {r.task for rows in grouped.values() for r in rows})
    eval_cells = {k: v for k, v in grouped.items() if k.stage == "eval"}
    tune_cells = {k: v for k, v in grouped.items() if k.stage == "tune"}
    variants = tuple(_variant_stats(k, rows) for k, rows in eval_cells.items())
    results = tuple(decide(_tests(study, eval_cells)))
    findings = tuple(finding(h, study, [r for r in results if r.hypothesis == h]) for h in study.hypotheses)
    names = sorted({k.variant for k in eval_cells}, key=lambda v: variant_order(study, v))
    strata = {(k.task, k.setting, k.x, k.variant): v for k, v in eval_cells.items()}
    rows = tuple(r for rows in grouped.values() for r in rows)
    tuning = tuple(sensitivities(tune_cells, eval_cells, study))
    return Analysis(
        experiment, study, rows, variants, results, findings, splits, tuple(aggregates(strata, names)), tuning,
        architectures(records, study), study_cost(records, study, *bench) if bench else None,
        superseded=len(superseded), late=late_hypotheses(records, study),
    )  # fmt: skip


def for_tasks(study: Study, ran: set[str]) -> Study:
    """The study's hypotheses about the tasks its runs cover: one declared for another task only (seq_len's
    `chrono_better_copy`, for copy memory, which seq_len_copy runs) is not this sweep's, not an undecided claim."""
    kept = tuple(h for h in study.hypotheses if not h.tasks or set(h.tasks) & ran)
    return study if kept == study.hypotheses else replace(study, hypotheses=kept)


def current_protocol(
    records: Sequence[dict[str, Any]], study: Study
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the records, the evaluation runs of an earlier protocol): those whose `stop_on_solve` is not what the
    study's evaluation stage sets now (study.spec.eval_stops). A study whose claims read the test metric trains its
    evaluation runs for the whole budget; runs stopped at their first solved check before that rule are other
    jobs, which `rnnbench-study` reruns, and pooling both would count each seed twice. They stay in the archive."""
    if not study.hypotheses:
        return list(records), []
    stops = eval_stops(study)

    def earlier(record: dict[str, Any]) -> bool:
        return record.get("stage") == "eval" and bool((record.get("config") or {}).get("stop_on_solve")) != stops

    return [r for r in records if not earlier(r)], [r for r in records if earlier(r)]


def analyses(records: Sequence[dict[str, Any]]) -> list[Analysis]:
    """One analysis per experiment found in the records, in name order."""
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_experiment.setdefault(experiment_of(record), []).append(record)
    return [analyse(name, by_experiment[name]) for name in sorted(by_experiment)]
