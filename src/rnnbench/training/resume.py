"""What a relaunch does with a job's earlier attempt: keep its result, resume it from its last checkpoint, or set it
aside and start afresh.

Re-running a command into the same `hydra.sweep.dir` (or `hydra.run.dir`) decides, per job (`decide`):
1. **skip**: a finished or diverged record of this job (the same job by tracking/job_identity.py: overrides and
   resolved config, paths aside), in its own folder or, in a multirun, any other job folder of the sweep (job
   numbers follow the composed sweep, so they move when it changes). A diverged run is a result: it is not resumed.
2. A finished or diverged record of this job's overrides whose resolved config differs (a sweep or budget file was
   edited since) is stale: it is **set aside**, `<its folder>/superseded/<n>/` (the record as `record.json`, with
   its checkpoints, W&B and CSV folders), and the job reruns; the log names the keys that differ. `run.json` is
   the only name the report collector, the sweep summary and the study look for, so a set-aside record is never a
   second copy of the job.
3. **resume**: the job's own folder holds its record, `failed`, `interrupted` or `running` with no live process
   (killed: SIGKILL, OOM, a lost node; `running` on another host cannot be told and counts as killed), of the same
   job, and `checkpoints/last.ckpt`: `trainer.fit(ckpt_path=last)` continues from that checkpoint's global step,
   with the same W&B run id. The record keeps the history up to that step (so each validation check is in it
   once), the solve state reached by then, the time trained and the first attempt's `started_at`, and lists each
   resume under `resumes` (step, time, code version).
4. **fresh**: anything else (no record; no checkpoint; another config; `resume=false`) trains from scratch. An
   earlier attempt in the folder is set aside first (never overwritten), which also gives the job a new W&B run id.
5. **move**: in a study's stage (`stage=tune|eval`), the job's folder holds another job of the same study and
   stage: an earlier launch on another part of the grid (`rnnbench-study depth model.num_layers=4`) numbered its
   jobs from 0 too. That result is moved, whole, to `<sweep dir>/moved-<its job's digest>/` (found there by every
   later relaunch, as restored records are) and this job starts afresh.
6. **refuse**: the job's folder holds another job's result (outside a study), or this job still running in a live
   process.

`resume=false` skips nothing and resumes nothing: every job starts afresh, its earlier attempt set aside.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from rnnbench.study.selection import apply_selection
from rnnbench.tracking.job_identity import describe, job_differences, job_digest, override_identity
from rnnbench.tracking.run_record import (
    RECORD_NAME,
    RESULTS,
    SUPERSEDED_DIR,
    effective_status,
    process_alive,
    read_record,
)
from rnnbench.tracking.step_log import LOG_NAME

log = logging.getLogger("rnnbench")
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"  # written at every validation check (and on an exception) by train.py's `last` ModelCheckpoint
ATTEMPT = (RECORD_NAME, CHECKPOINT_DIR, "wandb", "csv", LOG_NAME)  # what one attempt leaves in its job folder
ASIDE_RECORD = "record.json"  # a set-aside run.json: a name no collector reads


@dataclass(frozen=True)
class Resume:
    """Where a resumed attempt starts: the earlier attempt's record and its last checkpoint."""

    record: dict[str, Any]
    checkpoint: Path


@dataclass(frozen=True)
class Decision:
    """What to do with one job: `skip` (its result is `record`, found in the folder `found_in`), `resume` (from
    `resume`), `fresh` or `refuse`. `found_in`, not the record's own `output_dir`: a record restored from a committed
    archive names the folder it ran in on another machine."""

    action: str
    record: dict[str, Any] | None = None
    found_in: Path | None = None
    resume: Resume | None = None
    reason: str = ""


def read_job_record(job_dir: Path) -> dict[str, Any]:
    """A job folder's run record, or {} where it never wrote one or what it wrote is unreadable (then it reruns)."""
    path = job_dir / RECORD_NAME
    try:
        record = read_record(path) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError) as err:
        log.warning("unreadable run record %s (%s): the job counts as not run", path, err)
        return {}
    return record if isinstance(record, dict) else {}


def job_overrides(job_dir: Path) -> tuple[str, ...] | None:
    """The override identity of the job Hydra ran in `job_dir` (its `.hydra/overrides.yaml`), None if unreadable:
    how a folder without a record of its own (a skipped job) is matched to the record holding its result."""
    try:
        overrides = OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
    except (OSError, ValueError):
        return None
    return override_identity(str(o) for o in overrides) if isinstance(overrides, ListConfig) else None


def job_config(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """The resolved config the job's record will hold (a study's tuned value applied, as `train` does)."""
    applied, _ = apply_selection(copy.deepcopy(cfg), overrides)
    return OmegaConf.to_container(applied, resolve=True)


def _claim(candidates: Iterator[Path]) -> Path:
    """Create and return the first of the (endless) `candidates` that does not exist yet: two relaunches racing
    for the same name each get their own folder."""
    while True:
        folder = next(candidates)
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            pass


def _move_attempt(job_dir: Path, target: Path, record_name: str) -> None:
    """Move what one attempt left in `job_dir` into `target`, its run.json as `record_name`."""
    for name in ATTEMPT:
        if (job_dir / name).exists():
            os.replace(job_dir / name, target / (record_name if name == RECORD_NAME else name))


def set_aside(job_dir: Path) -> Path | None:
    """Move the attempt in `job_dir` (record, checkpoints, W&B and CSV logs) to `job_dir/superseded/<n>/`; returns
    that folder, None if there was nothing to move."""
    if not any((job_dir / name).exists() for name in ATTEMPT):
        return None
    aside = job_dir / SUPERSEDED_DIR
    aside.mkdir(exist_ok=True)
    start = 1 + sum(1 for p in aside.iterdir() if p.is_dir())
    target = _claim(aside / str(n) for n in itertools.count(start))
    _move_attempt(job_dir, target, ASIDE_RECORD)
    return target


def decide(
    job_dir: Path, config: dict[str, Any], overrides: list[str], others: Iterable[Path] = (), resume: bool = True
) -> Decision:
    """Skip, resume, start afresh or refuse the job (`config` resolved, `overrides` as launched) whose folder is
    `job_dir`; `others` are the sweep's other job folders. Sets aside what a fresh start replaces (module doc)."""
    if not resume:
        _set_aside_logged(job_dir, "resume=false: starting afresh")
        return Decision("fresh")
    for folder in (job_dir, *(p for p in others if p != job_dir)):
        record = read_job_record(folder)
        if record.get("status") not in RESULTS:
            continue
        differences = job_differences(record, config, overrides)
        if differences == {}:
            return Decision("skip", record=record, found_in=folder)
        if differences:
            _set_aside_logged(folder, f"its finished record differs from this job's config in {describe(differences)}")
    own = read_job_record(job_dir)
    status = own.get("status")
    if status in RESULTS and _same_study_stage(own, config):
        moved = move_result(job_dir, own)
        log.warning(
            "%s held another job of this study stage (an earlier launch's numbering): moved to %s", job_dir, moved
        )
        return Decision("fresh")
    if status in RESULTS:
        held = ",".join(own.get("overrides") or []) or "defaults"
        return Decision(
            "refuse", reason=f"{job_dir} holds the finished job {held}; not overwriting it: use a new hydra.sweep.dir"
        )
    if status == "running" and effective_status(own) == "running":
        alive = process_alive(own.get("process"))
        if alive:
            return Decision(
                "refuse", reason=f"{job_dir} is running now (pid {own['process']['pid']}); not starting it twice"
            )
        log.warning(
            "%s says running on %s, which cannot be checked from here: taken as killed",
            job_dir,
            (own.get("process") or {}).get("host"),
        )
    last = job_dir / CHECKPOINT_DIR / LAST
    if own and last.is_file():
        differences = job_differences(own, config, overrides)
        if differences == {}:
            return Decision("resume", resume=Resume(own, last))
        why = "another job's" if differences is None else f"differs in {describe(differences)}"
        _set_aside_logged(job_dir, f"its unfinished attempt is {why}: starting afresh")
    else:
        _set_aside_logged(job_dir, "no checkpoint to resume from: starting afresh")
    return Decision("fresh")


def _same_study_stage(record: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a record is a job of the same study stage as `config`: the same experiment, stage=tune|eval."""
    held = record.get("config") or {}
    same = all(held.get(key) == config.get(key) for key in ("stage", "experiment"))
    return config.get("stage") in ("tune", "eval") and same


def move_result(job_dir: Path, record: dict[str, Any]) -> Path:
    """Move the finished attempt in `job_dir` (record, checkpoints, logs) to a sibling folder named by its job,
    `moved-<digest>` (`-2`, `-3`, ... if taken); returns that folder."""
    base = job_dir.parent / f"moved-{job_digest(record.get('overrides') or [])}"
    target = _claim(itertools.chain([base], (base.with_name(f"{base.name}-{n}") for n in itertools.count(2))))
    _move_attempt(job_dir, target, RECORD_NAME)
    return target


def _set_aside_logged(job_dir: Path, why: str) -> None:
    aside = set_aside(job_dir)
    if aside is not None:
        log.warning("%s: %s; the earlier attempt is kept in %s", job_dir, why, aside)


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a Lightning checkpoint was saved at."""
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])


def carry_over(record: dict[str, Any], resume: Resume, attempt: dict[str, Any]) -> int:
    """Fill a resumed attempt's new `record` from the earlier one up to its checkpoint's step, which it returns:
    the history up to that step, the solve state reached by then, time trained, peak memory, the first attempt's
    start; `attempt` (its time and code version) is appended to `resumes`."""
    step = checkpoint_step(resume.checkpoint)
    before = resume.record
    record["history"] = [h for h in before.get("history") or [] if h.get("step", 0) <= step]
    solved_at = before.get("steps_to_solve")
    if solved_at is not None and solved_at <= step:
        record.update(solved=True, steps_to_solve=solved_at)
    for key in ("started_at", "train_time_s", "peak_memory_mb", "num_parameters", "epochs_completed"):
        if before.get(key) is not None:
            record[key] = before[key]
    if before.get("steps_completed") != step:  # it ran a check past its checkpoint (killed while saving that)
        record.pop("epochs_completed", None)
    record["steps_completed"] = step  # until this attempt's first check
    record["resumes"] = [*(before.get("resumes") or []), {"from_step": step, **attempt}]
    return step
