"""Progress in the terminal: a line per finished job of a multirun (done/total, failed and diverged so far, ETA),
and a single run's result in one line (its metric against the task's baseline, and where its record is).

A Hydra callback (`hydra.callbacks.progress` in conf/train.yaml), so it works under every launcher. Under the
joblib launcher (`budget=cpu`) `on_job_end` runs in the worker process that ran the job, so nothing is kept in
memory: `on_multirun_start`, in the launching process, counts the sweep's jobs with Hydra's own override parser and
writes the count and the start time to `<sweep dir>/.progress.json`; each job's end reads that file and the run
records under the sweep folder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rnnbench.tracking.job_identity import override_identity
from rnnbench.tracking.run_record import RECORD_NAME, read_record, stamp_seconds, write_record
from rnnbench.training.resume import job_overrides

PROGRESS_NAME = ".progress.json"
ENDED = ("finished", "failed", "diverged", "interrupted")


def launch_jobs(config: DictConfig) -> list[tuple[str, ...]] | None:
    """The override identity of every job the multirun launches (Hydra's basic sweeper's own expansion); None for
    other sweepers."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    # unresolved: an override may interpolate Hydra's runtime (a study's tuned=${hydra:sweep.dir}/...), not yet set
    swept = config.hydra.sweeper.get("params")
    params = {} if swept is None else OmegaConf.to_container(swept, resolve=False)
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    overrides = OverridesParser.create().parse_overrides([*(f"{k}={v}" for k, v in params.items()), *task])
    return [override_identity(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def sweep_records(sweep_dir: Path) -> list[dict[str, Any]]:
    """The run records of the sweep's job folders, as they are now."""
    return [read_record(p) for p in sorted(sweep_dir.glob(f"*/{RECORD_NAME}"))]


def _started(record: dict[str, Any]) -> float:
    started = stamp_seconds(record.get("started_at"))
    return -math.inf if started is None else started


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(sweep_dir: Path, job_dir: Path, now: float | None = None) -> str:
    """`[done/total] <job> <status> | F failed, D diverged so far | ETA ...`, from the records under sweep_dir."""
    state = read_record(sweep_dir / PROGRESS_NAME) if (sweep_dir / PROGRESS_NAME).is_file() else {}
    now = time.time() if now is None else now
    records = sweep_records(sweep_dir)
    ended = [r for r in records if r.get("status") in ENDED]
    by_job = {override_identity(r.get("overrides") or []): r for r in ended}  # wherever its record is
    if state.get("jobs") is not None:  # this launch's jobs only, each once
        jobs = {tuple(j) for j in state["jobs"]}
        ended = [r for job, r in by_job.items() if job in jobs]
    total = state.get("total")
    count = f"{len(ended)}/{total}" if total else f"{len(ended)}"
    failed = sum(r["status"] in ("failed", "interrupted") for r in ended)
    diverged = sum(r["status"] == "diverged" for r in ended)
    if (job_dir / RECORD_NAME).is_file():
        own = read_record(job_dir / RECORD_NAME)
        status = own.get("status", "no run record")
    else:  # skipped: its result is another folder's (restored, or another job order)
        own = by_job.get(job_overrides(job_dir)) or {}
        status = (
            f"already {own['status']} (skipped: {Path(str(own.get('output_dir', '?'))).name})"
            if own
            else "no run record"
        )
    job = ",".join(own.get("overrides") or []) or job_dir.name
    line = f"[{count}] {job}: {status} | {failed} failed, {diverged} diverged so far"
    started = state.get("started")
    ran = [r for r in ended if started is not None and _started(r) >= math.floor(started)]  # this launch's jobs
    if total and ran and len(ended) < total:
        line += f" | ETA {_duration((now - started) / len(ran) * (total - len(ended)))}"
    return line


def result_line(record: dict[str, Any], record_path: Path) -> str:
    """A single run's outcome: `adding: test/mse 0.0123 vs baseline 0.1667 (lower is better), beats it | ...`."""
    status, metric = record.get("status"), record.get("primary_metric")
    scores = record.get("test") or {}
    key = f"test/{metric}" if f"test/{metric}" in scores else f"val/{metric}"
    value = {**(record.get("best_val") or {}), **scores}.get(key)
    baseline = (record.get("baseline") or {}).get(metric)
    head = f"result: {record.get('task')} {status}"
    if value is None or baseline is None:
        return f"{head} ({record.get('error', 'no score')}) | record: {record_path}"
    direction = "higher" if record.get("higher_is_better") else "lower"
    verdict = {True: "beats it", False: "does not beat it", None: "not compared"}[record.get("beats_baseline")]
    score = f"{key} {value:.4g} vs baseline {baseline:.4g} ({direction} is better)"
    return f"{head}: {score}, {verdict} | record: {record_path}"


class Progress(Callback):
    """Hydra callback: a progress line as each multirun job ends, a result line as a single run ends."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = launch_jobs(config)
        total = None if jobs is None else len(jobs)
        write_record(sweep_dir / PROGRESS_NAME, {"total": total, "jobs": jobs, "started": time.time()})

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.hydra_cfg is None or job_return.hydra_cfg.hydra.mode != RunMode.MULTIRUN:
            return
        job_dir = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        print(progress_line(job_dir.parent, job_dir), flush=True)

    def on_run_end(self, config: DictConfig, job_return: JobReturn | None = None, **kwargs: Any) -> None:
        if job_return is None or job_return.hydra_cfg is None:
            return
        record_path = Path(job_return.hydra_cfg.hydra.runtime.output_dir) / RECORD_NAME
        if record_path.is_file():
            print(result_line(read_record(record_path), record_path), flush=True)
