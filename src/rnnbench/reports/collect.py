"""The local source of runs: every `run.json` under the given paths, read as it was written, and the records of
any record archive (`runs.jsonl.gz`, `rnnbench.reports.archive`) named or found there.

Reports are built from these records only, so a table can always be regenerated from the recorded runs. Runs that
failed or diverged are records too, with their status; nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnbench.reports.archive import ARCHIVE_NAME, read_archive
from rnnbench.tracking.run_record import RECORD_NAME, read_record


def find_records(paths: Iterable[Path]) -> list[Path]:
    """All run.json files and record archives under `paths` (files or directories), in a stable order."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file() and path.name in (RECORD_NAME, ARCHIVE_NAME):
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for name in (RECORD_NAME, ARCHIVE_NAME) for p in path.rglob(name))
        else:
            raise FileNotFoundError(
                f"no run records at {path}: pass a run.json, a {ARCHIVE_NAME} or a directory holding them"
            )
    return sorted(found)


def local_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every run record under `paths`, the records of archives included."""
    records: list[dict[str, Any]] = []
    for p in find_records(paths):
        records += read_archive(p) if p.name == ARCHIVE_NAME else [read_record(p)]
    return records
