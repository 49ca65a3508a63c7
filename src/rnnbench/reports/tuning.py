"""Each variant's learning-rate (tuned-key) sensitivity, from a study's tuning records, and the choice it led to.

Tuning runs (`stage: tune`) score on validation only; per (task, setting, factor value, variant) and tuned value the
report shows every tuning seed's validation metric and solve status, their median, and the value the evaluation
runs used (their record's `tuning` field, written from the study's selection). A choice at the smallest or largest
value of the grid is flagged: the best value may lie outside it, so the grid should be widened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rnnbench.reports.groups import CellKey
from rnnbench.reports.rows import Row
from rnnbench.study.spec import Study


@dataclass(frozen=True)
class Sensitivity:
    """One variant's tuning runs in one group: per tuned value, the seeds' validation scores and solves."""

    task: str
    setting: str
    x: float | None
    variant: str
    values: tuple[float, ...]  # the tuned values tried, ascending
    scores: tuple[tuple[float, ...], ...]  # per value: each seed's validation metric (NaN: no value)
    solved: tuple[tuple[int, int], ...]  # per value: (solved, runs); solved = beat the baseline without a criterion
    chosen: float | None  # the value the evaluation runs used
    at_edge: bool

    def median(self, i: int) -> float:
        finite = sorted(s for s in self.scores[i] if math.isfinite(s))
        n = len(finite)
        return math.nan if not n else (finite[n // 2] if n % 2 else (finite[n // 2 - 1] + finite[n // 2]) / 2)


def _score(row: Row) -> float:
    return math.nan if row.val_value is None or not math.isfinite(row.val_value) else row.val_value


def chosen_values(eval_cells: Mapping[CellKey, Sequence[Row]]) -> dict[tuple[str, str, float | None, str], Any]:
    """(task, setting, x, variant) -> the tuned value its evaluation runs used. Not their records' `at_edge`: that
    is the grid's edge when they ran, and a grid widened since (depth's 3e-4) leaves an unchanged choice inside it."""
    out = {}
    for key, rows in eval_cells.items():
        infos = [r.tuning for r in rows if r.tuning]
        if infos:
            out[(key.task, key.setting, key.x, key.variant)] = infos[0].get("value")
    return out


def sensitivities(
    tune_cells: Mapping[CellKey, Sequence[Row]], eval_cells: Mapping[CellKey, Sequence[Row]], study: Study
) -> list[Sensitivity]:
    """One curve per tuning cell, with the evaluation runs' choice (reused below the hardest factor value)."""
    chosen = chosen_values(eval_cells)
    grid = study.tuning.grid if study.tuning else ()
    out = []
    for key, rows in tune_cells.items():
        values = sorted({r.tuned for r in rows if r.tuned is not None})
        if not values:
            continue
        scores = tuple(tuple(_score(r) for r in rows if r.tuned == v) for v in values)
        solved = tuple(
            (
                sum(bool(r.solved if r.solved is not None else r.beats_baseline) for r in rows if r.tuned == v),
                sum(r.tuned == v for r in rows),
            )
            for v in values
        )
        same = [c for (t, s, x, var), c in chosen.items() if (t, s, var) == (key.task, key.setting, key.variant)]
        exact = chosen.get((key.task, key.setting, key.x, key.variant))
        value = exact if exact is not None else (same[0] if same else None)
        edges = (min(grid), max(grid)) if grid else (values[0], values[-1])
        at_edge = value is not None and float(value) in edges
        out.append(
            Sensitivity(
                key.task,
                key.setting,
                key.x,
                key.variant,
                tuple(values),
                scores,
                solved,
                None if value is None else float(value),
                at_edge,
            )
        )
    return out
