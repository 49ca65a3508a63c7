"""Grouping a sweep's runs into cells (stage, task, setting, factor value, variant), never pooling unlike runs.

A cell's runs are seeds of one configuration: they may differ in the seed (and `task.data_seed`, which follows it),
the compared key(s), the factor, paths and run names, and the keys a study legitimately varies per run (the tuned
key: each tuning run tries a value, each evaluation run carries its variant's choice; `tuned`, the path of the
selection; the study block itself); nothing else. Tuning and evaluation runs are never pooled
(the stage is part of the cell). Where runs of one (stage, task, factor, variant) differ in another key, that key's
value becomes part of the cell's `setting`, so they form separate groups that are compared only with runs of the
same setting; the report lists those keys. Two runs of one cell with the same seed (the same job reported twice,
e.g. from two sweep folders) stop the report with one line: seeds pair runs across variants, and a repeated seed
would count one job twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rnnbench.reports.rows import Row
from rnnbench.study.spec import Study

# Keys that never make two runs unlike: what tells seeds apart, where outputs go, how progress is shown/logged.
FREE_KEYS = ("seed", "task.data_seed", "task.cache_dir", "study", "tuned", "experiment", "tags", "threads", "resume")
FREE_PREFIXES = ("logger", "diagnostics", "hydra", "trainer.enable_progress_bar", "trainer.enable_model_summary")
FREE_PREFIXES += ("trainer.log_every_n_steps", "study")  # the study block as a whole: analysis.study_of checks it


class PoolingError(ValueError):
    """Runs that cannot be grouped honestly: one line naming the runs and why."""


@dataclass(frozen=True)
class CellKey:
    """Where a run belongs: its stage, task, setting (values of keys its cell's runs disagree on), factor, variant."""

    stage: str
    task: str
    setting: str
    x: float | None
    variant: str

    @property
    def group(self) -> tuple[str, str, str, float | None]:
        """The comparison group: a variant is compared with the reference of the same group only."""
        return self.stage, self.task, self.setting, self.x


def stage_of(row: Row) -> str:
    """'tune' for tuning runs, 'eval' for everything that was tested (a plain sweep's runs included)."""
    return "tune" if row.stage == "tune" else "eval"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as {dotted key: canonical JSON of the value}."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = json.dumps(value, sort_keys=True, default=str)
    return flat


def free_keys(study: Study, stage: str) -> set[str]:
    """The config keys runs of one cell may differ in, beyond FREE_KEYS / FREE_PREFIXES."""
    keys = {*study.compare, *([study.factor] if study.factor else [])}
    if study.tuning is not None:  # tuning runs try each value; each evaluation run carries its variant's choice
        keys.add(study.tuning.key)
    return keys


def _is_free(key: str, extra: set[str]) -> bool:
    if key in FREE_KEYS or key in extra:
        return True
    return any(key == p or key.startswith(f"{p}.") for p in (*FREE_PREFIXES, *extra))


def _x_key(x: float | None) -> float:
    return -math.inf if x is None else x


def _base_key(row: Row) -> tuple[str, str, float | None, str]:
    return stage_of(row), row.task, row.x, row.variant


def split_keys(rows: Iterable[Row], study: Study) -> dict[tuple[str, str], list[str]]:
    """Per (stage, task): the keys some cell's runs disagree on (they split cells into settings), sorted."""
    cells: dict[tuple[str, str, float | None, str], list[dict[str, str]]] = {}
    for row in rows:
        cells.setdefault(_base_key(row), []).append(flatten(row.config))
    found: dict[tuple[str, str], set[str]] = {}
    for (stage, task, _, _), configs in cells.items():
        extra = free_keys(study, stage)
        keys = {k for c in configs for k in c if not _is_free(k, extra)}
        differing = {k for k in keys if len({c.get(k) for c in configs}) > 1}
        found.setdefault((stage, task), set()).update(differing)
    return {k: sorted(v) for k, v in found.items() if v}


def cells(rows: Iterable[Row], study: Study) -> tuple[dict[CellKey, list[Row]], dict[tuple[str, str], list[str]]]:
    """Rows by cell, in a stable order (stage, task, setting, factor, reference first, seed), and the split keys."""
    rows = list(rows)
    splits = split_keys(rows, study)
    grouped: dict[CellKey, list[Row]] = {}
    for row in rows:
        stage = stage_of(row)
        flat = flatten(row.config)
        keys = splits.get((stage, row.task), [])
        setting = ", ".join(f"{k}={json.loads(flat[k]) if k in flat else None}" for k in keys)
        grouped.setdefault(CellKey(stage, row.task, setting, row.x, row.variant), []).append(row)
    for key, members in grouped.items():  # a tuning cell holds each seed once per tuned value
        seeds = sorted((r.seed, r.tuned if key.stage == "tune" else None) for r in members)
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            runs = sorted(r.run for r in members if (r.seed, r.tuned if key.stage == "tune" else None) == repeated[0])
            where = f"{key.task}{f' [{key.setting}]' if key.setting else ''}"
            at = "" if key.x is None else f" at {study.factor}={key.x:g}"
            same = f"{len(runs)} {key.stage} runs of {where}, {key.variant}{at} have seed {repeated[0][0]}"
            raise PoolingError(
                f"{same} ({'; '.join(runs)}): the same job reported twice (two sweep folders?); pass one folder per job"
            )
    order = sorted(
        grouped,
        key=lambda k: (k.stage != "eval", k.task, k.setting, _x_key(k.x), k.variant != study.reference, k.variant),
    )
    return {k: sorted(grouped[k], key=lambda r: (r.seed, r.run)) for k in order}, splits
