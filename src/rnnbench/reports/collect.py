"""The local source of runs: every `run.json` under the given paths, read as it was written.

Reports are built from these records only, so a table can always be regenerated from the recorded runs. Runs that
failed or diverged are records too, with their status; nothing is silently dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnbench.tracking.run_record import RECORD_NAME, effective_status, read_record


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


def local_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every readable run record under `paths`; a `running` one whose process is gone reads as `interrupted`.

    A corrupt or truncated record (a node killed mid-write by something other than our atomic writer, a full disk)
    is skipped with a warning naming the file, so one bad file never costs the report of all the others."""
    records = []
    for path in find_records(paths):
        try:
            record = read_record(path)
        except (OSError, UnicodeDecodeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            print(f"rnnbench-report: warning: skipping {path}: not a readable run record ({err})", file=sys.stderr)
            continue
        if not isinstance(record, dict) or "status" not in record:
            print(f"rnnbench-report: warning: skipping {path}: not a run record (no status)", file=sys.stderr)
            continue
        if effective_status(record) != record["status"]:  # `running`, but its process is gone: it was killed
            process = record.get("process") or {}
            why = f"process {process.get('pid')} on {process.get('host')} ended without finishing the run"
            record = {**record, "status": effective_status(record), "error": record.get("error") or why}
        records.append(record)
    return records
