"""The local source of runs: every `run.json` under the given paths, read as it was written, and the records of
any record archive (`runs.jsonl.gz`, `rnnbench.reports.archive`) named or found there.

Reports are built from these records only, so a table can always be regenerated from the recorded runs. Runs that
failed or diverged are records too, with their status; nothing is silently dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnbench.reports.archive import ARCHIVE_NAME, read_archive
from rnnbench.tracking.run_record import RECORD_NAME, effective_status, read_record


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
    """Every readable run record under `paths`, the records of archives included; a `running` run.json whose
    process is gone reads as `interrupted`. An archive's records are read as archived: they are the snapshot its
    report was made from, so the report regenerates the same on any machine, whatever became of those processes.

    A corrupt or truncated record (a node killed mid-write by something other than our atomic writer, a full disk)
    is skipped with a warning naming the file, so one bad file never costs the report of all the others."""
    records = []
    for path in find_records(paths):
        try:
            found = read_archive(path) if path.name == ARCHIVE_NAME else [read_record(path)]
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            print(f"rnnbench-report: warning: skipping {path}: not a readable run record ({err})", file=sys.stderr)
            continue
        live = path.name == RECORD_NAME
        for record in found:
            if not isinstance(record, dict) or "status" not in record:
                print(f"rnnbench-report: warning: skipping {path}: not a run record (no status)", file=sys.stderr)
                continue
            # a live `running` record whose process is gone: it was killed
            if live and effective_status(record) != record["status"]:
                process = record.get("process") or {}
                why = f"process {process.get('pid')} on {process.get('host')} ended without finishing the run"
                record = {**record, "status": effective_status(record), "error": record.get("error") or why}
            records.append(record)
    return records
