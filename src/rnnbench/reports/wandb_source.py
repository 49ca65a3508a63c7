"""The W&B source of runs: a project's runs, read through the public API and reshaped into run.json records.

`rnnbench-train` gives each W&B run the resolved config (an agent-launched run also has `sweep_params`, the
agent's own parameters), a name made of the job's overrides, a summary that says what run.json says (`status`,
the test metrics, `baseline/*`, `num_parameters`, `best_val`'s metrics; tracking.wandb_run.record_summary), and
per-epoch validation metrics and `perf/epoch_time_s` in its history. From those this module rebuilds the parts of
run.json a report reads, so `rnnbench-report --source wandb` and the local source give the same rows. The API
object is passed in, so tests use a fake one and need no network.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

from hydra.utils import instantiate

from rnnbench.tracking.run_record import STATUSES
from rnnbench.tracking.wandb_run import SWEEP_PARAMS_KEY

STATES = {
    "finished": "finished",
    "running": "running",
    "killed": "interrupted",
    "failed": "failed",
    "crashed": "failed",
}
HISTORY_KEYS = ("val/", "perf/")


class ApiRun(Protocol):
    """The attributes of `wandb.apis.public.Run` this module reads."""

    name: str
    state: str
    config: dict[str, Any]
    summary_metrics: dict[str, Any]

    def scan_history(self) -> Iterable[dict[str, Any]]: ...


def split_overrides(name: str) -> list[str]:
    """A run name (overrides joined by commas) back into overrides, keeping commas inside [] {} () and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in name:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [] if name == "defaults" else parts


def _not_finite(value: Any) -> bool:
    """True for NaN/inf, as a float or as the string W&B may store."""
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _status(run: ApiRun, summary: dict[str, Any]) -> str:
    """run.json's status as the run wrote it into its summary; for runs logged before it did, from the W&B state
    (a failed run whose last training loss is not finite diverged)."""
    if summary.get("status") in STATUSES and summary["status"] != "running":
        return summary["status"]
    status = STATES.get(run.state, run.state)
    if status == "failed" and _not_finite(summary.get("train/loss")):
        return "diverged"
    return status


def _history(run: ApiRun) -> list[dict[str, Any]]:
    """Per-epoch entries (epoch, val/*, perf/*) merged from the logged rows, in epoch order."""
    epochs: dict[int, dict[str, Any]] = {}
    for row in run.scan_history():
        if row.get("epoch") is None:
            continue
        entry = epochs.setdefault(int(row["epoch"]), {"epoch": int(row["epoch"])})
        entry.update({k: v for k, v in row.items() if k.startswith(HISTORY_KEYS) and v is not None})
        if row.get("trainer/global_step") is not None:  # the step axis Lightning logs every row with
            entry["step"] = int(row["trainer/global_step"])
    return [epochs[e] for e in sorted(epochs) if set(epochs[e]) - {"epoch", "step"}]


def run_record(run: ApiRun) -> dict[str, Any]:
    """One W&B run as the run.json fields a report reads."""
    config, summary = dict(run.config), dict(run.summary_metrics)
    config.pop(SWEEP_PARAMS_KEY, None)
    if not isinstance(config.get("task"), dict):
        raise ValueError(
            f"W&B run {run.name!r} has task={config.get('task')!r} in its config, not the composed task: an"
            " agent-launched run logged before rnnbench kept the composed config; read its local run.json instead"
        )
    task = instantiate(config["task"])
    metric = task.primary_metric
    test = {k: v for k, v in summary.items() if k.startswith("test/")}
    primary = test.get(f"test/{metric}")
    finite = isinstance(primary, int | float) and math.isfinite(primary)
    return {
        "status": _status(run, summary),
        "task": task.label,
        "config": config,
        "overrides": split_overrides(run.name),
        "seed": config.get("seed"),
        "experiment": config.get("experiment"),
        "primary_metric": metric,
        "higher_is_better": task.higher_is_better,
        "baseline": {k.removeprefix("baseline/"): v for k, v in summary.items() if k.startswith("baseline/")},
        "test": test,
        "beats_baseline": task.beats_baseline(primary) if finite else None,
        "num_parameters": summary.get("num_parameters"),
        "history": _history(run),
        # the protocol's fields (stage, solve criterion, steps budget, tuning): the config or the run summary
        "stage": config.get("stage"),
        **{k: summary[k] for k in ("solved", "steps_to_solve", "max_steps", "tuning", "best_val") if k in summary},
    }


def wandb_records(api: Any, entity: str, project: str, experiment: str | None = None) -> list[dict[str, Any]]:
    """Every run of `entity/project` (of one experiment, i.e. W&B group, if given), as run.json records."""
    filters = {"group": experiment} if experiment else None
    return [run_record(run) for run in api.runs(f"{entity}/{project}", filters=filters)]
