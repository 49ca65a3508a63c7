"""The `conf/logger` options as factories with one signature: each gets the job's identity and returns what
Lightning's `Trainer(logger=...)` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger

from rnnbench.tracking.wandb_run import job_run_id, start_run, wandb_logger


def wandb(
    save_dir: Path,
    name: str,
    group: str,
    job_type: str,
    tags: list[str],
    run_config: dict[str, Any],
    project: str = "rnnbench",
    entity: str | None = None,
    mode: str = "offline",
    init_timeout: float = 30.0,
    log_checkpoint: bool = False,
) -> Logger:
    """A W&B run in `save_dir/wandb/`, one per job: a relaunch of the job resumes the same run id.

    `log_checkpoint` is read at the end from the run's config (`wandb_run.finish_run`), when the checkpoint exists."""
    run = start_run(
        save_dir, project, name, group, job_type, tags, run_config, mode, entity, init_timeout, job_run_id(save_dir)
    )
    return wandb_logger(run)


def csv(save_dir: Path, name: str, group: str, job_type: str, tags: list[str], run_config: dict[str, Any]) -> Logger:
    """Lightning's CSV logger: `save_dir/csv/metrics.csv`, for users without W&B."""
    return CSVLogger(save_dir=str(save_dir), name="csv", version="")


def none(save_dir: Path, name: str, group: str, job_type: str, tags: list[str], run_config: dict[str, Any]) -> bool:
    """No experiment logger; run.json is still written."""
    return False
