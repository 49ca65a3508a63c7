"""Resuming a study on another machine from its committed record archive, `reports/<sweep>/runs.jsonl.gz`.

`outputs/` does not travel between machines; the archive (gzip JSONL, one run record per line, written by
`rnnbench-report`) does. Restoring writes each finished (or diverged) tuning or evaluation record back as
`<study folder>/<stage>/restored-<digest>/run.json`. The relaunched stage then skips those jobs, because the
resume finds a finished record of the same job wherever it lies in the stage's folder (training/resume.py: the
same overrides and resolved config, tracking/job_identity.py), and every override a study passes is
machine-independent. A restored record whose config the sweep or code has changed since is stale: the relaunch
sets it aside and reruns the job. The folder names are not Hydra job numbers on purpose: a restored record in
folder `3` would make a relaunch whose job 3 is another job refuse to overwrite it, and that job would never run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rnnbench.reports.archive import ARCHIVE_NAME
from rnnbench.study.stages import STAGES
from rnnbench.study.tuning import RESULT_STATUSES, stage_of
from rnnbench.tracking.job_identity import job_digest, override_identity
from rnnbench.tracking.run_record import RECORD_NAME, read_record, write_record


def default_archive(name: str) -> Path:
    """Where `rnnbench-report` commits a sweep's records: reports/<name>/runs.jsonl.gz (from the working dir)."""
    return Path("reports") / name / ARCHIVE_NAME


def _job_key(record: dict[str, Any]) -> tuple[str, ...]:
    return override_identity(record.get("overrides") or [])


def _done(path: Path) -> tuple[str, ...] | None:
    """The job key of a stage folder's record that a relaunch keeps, None for any other (or an unreadable one).

    By overrides alone, whatever the config: a local result of the job is the newer one, and an archived record
    the relaunch found stale must not come back at the next restore."""
    try:
        record = read_record(path)
    except (OSError, ValueError):
        return None
    return _job_key(record) if isinstance(record, dict) and record.get("status") in RESULT_STATUSES else None


def restored_dir(stage_dir: Path, record: dict[str, Any]) -> Path:
    """A restored record's job folder, named by its job's overrides so that restoring twice writes nothing new."""
    return stage_dir / f"restored-{job_digest(record.get('overrides') or [])}"


def restore(records: Iterable[dict[str, Any]], directory: Path, name: str) -> dict[str, int]:
    """Write the finished (and diverged) tuning and evaluation records of sweep `name` into the study folder.

    Diverged ones too: they are results (the tuning stage counts them, a relaunch keeps them). Returns counts:
    `restored` (written), `present` (a record of the same job was already there) and `skipped` (failed or
    interrupted, another sweep's, or of no stage)."""
    counts = {"restored": 0, "present": 0, "skipped": 0}
    finished: dict[str, set[tuple[str, ...] | None]] = {}
    for stage in STAGES:
        finished[stage] = {_done(p) for p in (directory / stage).glob(f"*/{RECORD_NAME}")}
    for record in records:
        stage = stage_of(record)
        mine = f"+sweep={name}" in (record.get("overrides") or [])
        if record.get("status") not in RESULT_STATUSES or stage not in STAGES or not mine:
            counts["skipped"] += 1
        elif _job_key(record) in finished[stage] or restored_dir(directory / stage, record).exists():
            counts["present"] += 1  # or restored before and set aside since as stale: rerun, not restored again
        else:
            write_record(restored_dir(directory / stage, record) / RECORD_NAME, record)
            finished[stage].add(_job_key(record))
            counts["restored"] += 1
    return counts
