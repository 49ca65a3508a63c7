"""The compact record archive a report travels with: `<out>/<sweep>/runs.jsonl.gz`.

gzip, one run record per line (JSON, sorted keys), every record the report was made from, tuning records included;
records hold no checkpoints or W&B folders, only their paths (a non-finite float from the W&B source is
written as JSON's NaN / Infinity, which Python reads back). The file is byte-identical for the same records
(records in a fixed order, no timestamp or file name in the gzip header), and `rnnbench-report` reads it back as a
source, so a committed report regenerates from the repository alone, and a study resumes on another machine from it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ARCHIVE_NAME = "runs.jsonl.gz"


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def write_archive(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write the records, one JSON line each, in the order of their text (so any input order gives the same file)."""
    lines = sorted(_line(r) for r in records)
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.getvalue())
    return path


def read_archive(path: Path) -> list[dict[str, Any]]:
    """The records of an archive, in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
