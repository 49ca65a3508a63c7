"""The tuning stage's choice: each variant's value of the tuned key (its learning rate), from its tuning runs alone.

Greff et al. (2017) tuned every LSTM variant separately before comparing them; a study does the same on a fixed
grid, on tuning seeds that the evaluation never reuses, scored on validation only. `select` is a pure function of
the tuning run records: the same records, in any order and on any machine, give the same selection, so
`selection.json` can always be rebuilt from the committed record archive.

The rule (also written into selection.json): per group (variant, task, factor value, and setting: any other
override its tuning runs differ in, e.g. `model.forget_bias`, so settings are never pooled), rank the values by
  1. solve rate, higher first;
  2. median steps-to-solve, lower first, a run that never solved counting as its step budget (censored);
  3. median best validation primary metric, in the task's direction;
and remaining ties go to the smaller value. A diverged run counts as unsolved, at its budget, with the worst
validation score; a failed, interrupted or missing run is no result, and selection refuses until it is rerun.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from rnnbench.study.spec import Study, StudyError, Tuning, lookup
from rnnbench.tracking.job_identity import override_identity, same_job

RULE = (
    "per (variant, task, factor value, and setting: any other override the tuning runs differ in): rank the grid "
    "values by solve rate (higher first), then median steps-to-solve (lower first; a run that never solved counts "
    "as its step budget), then median best validation primary metric (in the task's direction); remaining ties go "
    "to the smaller value. Diverged runs count as unsolved at the budget with the worst validation score."
)
RESULT_STATUSES = ("finished", "diverged")  # a tuning run that says something about its value
Group = tuple[str, str, float | None]  # (variant, task label, factor value)
Setting = tuple[tuple[str, str | None], ...]  # (override key, value) of the other keys a group's runs differ in


def stage_of(record: Mapping[str, Any]) -> str | None:
    """A run record's stage (tune / eval / None), from the record or, in older records, its config."""
    return record.get("stage") or (record.get("config") or {}).get("stage")


def group_of(record: Mapping[str, Any], study: Study) -> Group:
    """The (variant, task, factor) a run record belongs to."""
    config = record.get("config") or {}
    return study.variant_of(config), str(record.get("task")), study.factor_of(config)


def group_name(group: Group, study: Study, setting: Setting = ()) -> str:
    """A group as users read it: `lstm / adding / task.seq_len=100` (then its setting, if any)."""
    variant, task, factor = group
    factor_part = [] if factor is None else [f"{study.factor}={factor:g}"]
    return " / ".join([variant, task, *factor_part, *(f"{k}={v}" for k, v in setting)])


def _grid_value(value: Any, grid: tuple[float, ...]) -> float | None:
    """The grid value a run used, None where it is not on the grid (a record of another grid)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return next((g for g in grid if math.isclose(float(value), g, rel_tol=1e-9)), None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _score(runs: list[Mapping[str, Any]], value: float) -> dict[str, Any]:
    """One grid value's score over its runs, with the ranking key it implies."""
    higher = bool(runs[0].get("higher_is_better"))
    worst = -math.inf if higher else math.inf
    steps, vals, solved = [], [], 0
    for run in runs:
        budget = _number(run.get("max_steps"))
        done = run.get("status") == "finished" and run.get("solved") is True
        at = _number(run.get("steps_to_solve")) if done else None
        solved += done
        steps.append(at if at is not None else (budget if budget is not None else math.inf))
        metric = _number((run.get("best_val") or {}).get(f"val/{run.get('primary_metric')}"))
        vals.append(metric if metric is not None and math.isfinite(metric) else worst)
    median_steps, median_val = statistics.median(steps), statistics.median(vals)
    return {
        "value": value,
        "runs": len(runs),
        "solve_rate": solved / len(runs),
        "median_steps_to_solve": median_steps if math.isfinite(median_steps) else None,
        "val_metric": median_val if math.isfinite(median_val) else None,
        "_rank": (-solved / len(runs), median_steps, -median_val if higher else median_val, value),
    }


def _tuning_runs(records: Iterable[Mapping[str, Any]], study: Study, tuning: Tuning) -> dict[Group, dict[float, list]]:
    """The tuning stage's results by group and grid value, each job once (tracking/job_identity.py's rule)."""
    seen: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        value = _grid_value(lookup(record.get("config") or {}, tuning.key), tuning.grid)
        if stage_of(record) != "tune" or record.get("seed") not in tuning.seeds or value is None:
            continue
        if record.get("status") not in RESULT_STATUSES:
            continue
        same = seen[override_identity(record.get("overrides") or []) or (id(record),)]
        if not any(same_job(record, other) for other in same):  # one job restored and also run: once
            same.append(record)
    runs: dict[Group, dict[float, list]] = defaultdict(lambda: defaultdict(list))
    for record in (r for same in seen.values() for r in same):
        value = _grid_value(lookup(record["config"], tuning.key), tuning.grid)
        runs[group_of(record, study)][value].append(record)
    if tuning.per_factor == "hardest":  # the choice at each (variant, task)'s largest factor value only
        largest: dict[tuple[str, str], float] = {}
        for variant, task, factor in runs:
            if factor is not None:
                largest[variant, task] = max(factor, largest.get((variant, task), factor))
        runs = defaultdict(dict, {g: v for g, v in runs.items() if g[2] is None or g[2] == largest[g[:2]]})
    return runs


def override_map(overrides: Iterable[str]) -> dict[str, str]:
    """A job's overrides as {key: value as written}, `+`/`~` dropped, without those that name no job (`+fault`,
    paths: tracking/job_identity.py)."""
    return dict(o.lstrip("+~").split("=", 1) for o in override_identity(overrides) if "=" in o)


def _by_setting(by_value: Mapping[float, list], tuning: Tuning) -> dict[Setting, dict[float, list]]:
    """A group's runs split by the overrides they differ in besides the seed and the tuned key (its settings: e.g.
    `model.forget_bias=1` vs `chrono` where the grid varies a key study.compare does not name). Each setting gets
    its own choice, never one pooled over settings."""
    maps = [override_map(r.get("overrides") or []) for runs in by_value.values() for r in runs]
    keys = sorted({k for m in maps for k in m if k not in ("seed", tuning.key) and len({n.get(k) for n in maps}) > 1})
    out: dict[Setting, dict[float, list]] = defaultdict(lambda: defaultdict(list))
    for value, runs in by_value.items():
        for run in runs:
            mine = override_map(run.get("overrides") or [])
            out[tuple((k, mine.get(k)) for k in keys)][value].append(run)
    return out


def _check_complete(name: str, by_value: Mapping[float, list], tuning: Tuning) -> None:
    """Every grid value of a group has one result per tuning seed, and no seed twice."""
    for value in tuning.grid:
        seeds = sorted(r.get("seed") for r in by_value.get(value, []))
        if len(seeds) != len(set(seeds)):
            raise StudyError(
                f"tuning runs of {name} at {tuning.key}={value:g} repeat a seed with configs that their overrides "
                f"do not tell apart; pass the tuning stage's own records (one folder per job)"
            )
        if len(seeds) < len(tuning.seeds):
            raise StudyError(
                f"tuning stage incomplete: {name} has {len(seeds)} of {len(tuning.seeds)} "
                f"finished or diverged runs at {tuning.key}={value:g}; relaunch the tuning stage to finish it"
            )


def select(records: Iterable[Mapping[str, Any]], study: Study, name: str = "") -> dict[str, Any]:
    """The selection (selection.json's content): each group's chosen value and every value's score."""
    if study.tuning is None:
        raise StudyError("study.tuning is missing: the study declares no tuning stage")
    tuning = study.tuning
    runs = _tuning_runs(records, study, tuning)
    if not runs:
        raise StudyError(f"no finished tuning runs (stage=tune, seeds {list(tuning.seeds)}) of {tuning.key}'s grid")
    choices = []
    for group in sorted(runs, key=lambda g: (g[0], g[1], g[2] is not None, g[2] or 0.0)):
        for setting, by_value in sorted(_by_setting(runs[group], tuning).items(), key=lambda kv: str(kv[0])):
            _check_complete(group_name(group, study, setting), by_value, tuning)
            scores = [_score(by_value[value], value) for value in tuning.grid]
            best = min(scores, key=lambda s: s["_rank"])
            variant, task, factor = group
            choices.append(
                {
                    "variant": variant,
                    "task": task,
                    "factor": factor,
                    "setting": dict(setting),
                    "value": best["value"],
                    "at_edge": best["value"] in (tuning.grid[0], tuning.grid[-1]),
                    "scores": [{k: v for k, v in s.items() if k != "_rank"} for s in scores],
                }
            )
    return {
        "study": name,
        "key": tuning.key,
        "grid": list(tuning.grid),
        "seeds": list(tuning.seeds),
        "per_factor": tuning.per_factor,
        "factor_key": study.factor,
        "rule": RULE,
        "choices": choices,
    }
