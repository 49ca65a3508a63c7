"""Collect run records: every `run.json` under the given paths, flattened to one row per run.

Reports are built from these rows only, so a table can always be regenerated from the recorded runs. Runs that
failed or diverged are rows too, with their status; nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnbench.tracking.run_record import RECORD_NAME, read_record


def find_records(paths: Iterable[Path]) -> list[Path]:
    """All run.json files under `paths` (files or directories), in a stable order."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file() and path.name == RECORD_NAME:
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in path.rglob(RECORD_NAME))
        else:
            raise FileNotFoundError(f"no run records at {path}: pass a run.json or a directory holding them")
    return sorted(found)


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """The columns a comparison table needs from one run record."""
    metric = record.get("primary_metric", "loss")
    model = record.get("config", {}).get("model", {})
    return {
        "run": ",".join(record.get("overrides", [])) or "defaults",
        "task": record.get("task"),
        "cell": model.get("cell", "seq2seq"),
        "seed": record.get("seed"),
        "status": record.get("status"),
        "metric": metric,
        "value": record.get("test", {}).get(f"test/{metric}"),
        "baseline": record.get("baseline", {}).get(metric),
        "beats_baseline": record.get("beats_baseline"),
        "num_parameters": record.get("num_parameters"),
        "train_time_s": record.get("train_time_s"),
        "epochs": record.get("epochs_completed"),
    }


def collect(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """One row per recorded run under `paths`."""
    return [record_row(read_record(p)) for p in find_records(paths)]
