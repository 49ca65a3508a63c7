"""`rnnbench-train`: the Hydra entry point. Checks every job's config first, then lets Hydra run them.

A multirun keeps going when one job fails (the failure is in that job's run.json and in the summary printed at
the end, and the command exits non-zero), and re-launching into the same `hydra.sweep.dir` skips finished and
diverged jobs (results), rerunning failed, interrupted (killed: `running` with a dead process) and missing ones.
The summary reads the run records, not this process's memory, because a parallel launcher (`budget=cpu` uses
joblib) runs the jobs in worker processes.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from rnnbench.tracking.run_record import RECORD_NAME, read_record
from rnnbench.training.config import ConfigError, config_dir, preflight
from rnnbench.training.train import train

log = logging.getLogger("rnnbench")
FAILED: list[str] = []  # output dirs of the multirun's unfinished jobs, filled by `SweepSummary` at its end
DONE = ("finished", "diverged")  # results a relaunch keeps: rerunning a diverged job would diverge again


class SweepSummary(Callback):
    """Hydra callback (conf/train.yaml): at the end of a multirun, list the jobs whose run.json is not finished."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        FAILED.extend(unfinished_runs(Path(config.hydra.sweep.dir)))


def unfinished_runs(sweep_dir: Path) -> list[str]:
    """Run directories under a sweep whose record says failed, interrupted or still running, or that never wrote
    one; a diverged run is a result (the cell blew up), kept like a finished one. Hidden folders are a launcher's
    own (submitit's `.submitit/` logs), not jobs."""
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: (len(p.name), p.name),  # 2 < 10
    )
    return [str(job) for job in jobs if _record(job / RECORD_NAME).get("status") not in DONE]


def finished_record(job_dirs: list[Path], overrides: list[str]) -> dict[str, Any] | None:
    """The finished run record of the job with these overrides among job_dirs, in any order of the overrides.

    Why any order: the order follows the composed sweep config, which changes when a config's defaults list does,
    and so do the job numbers; a relaunch must still find every finished job wherever it was written."""
    for job in job_dirs:
        record = _record(job / RECORD_NAME)
        if _is_finished_job(record, overrides):
            return record
    return None


def job_identity(overrides: list[str]) -> list[str]:
    """The overrides that say which job this is: all but an injected `+fault` (tests), so a relaunch without the
    fault finds the jobs that ran with it."""
    return sorted(o for o in overrides if not o.lstrip("+~").startswith("fault"))


def _is_finished_job(record: dict[str, Any], overrides: list[str]) -> bool:
    return record.get("status") in DONE and job_identity(record.get("overrides") or []) == job_identity(overrides)


def _record(record_path: Path) -> dict[str, Any]:
    """A job's run record, or {} where it never wrote one or what it wrote is unreadable (then the job reruns)."""
    try:
        record = read_record(record_path) if record_path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError) as err:
        log.warning("unreadable run record %s (%s): the job counts as not run", record_path, err)
        return {}
    return record if isinstance(record, dict) else {}


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float | None:
    runtime = HydraConfig.get()
    output_dir = Path(runtime.runtime.output_dir)
    overrides = list(runtime.overrides.task)
    record_path = output_dir / RECORD_NAME
    if cfg.resume:
        own = _record(record_path)  # its own folder first: the usual case
        previous = own if _is_finished_job(own, overrides) else None
        if previous is None and runtime.mode == RunMode.MULTIRUN:
            others = [job for job in sorted(output_dir.parent.iterdir()) if job != output_dir]
            previous = finished_record(others, overrides)
        if previous is not None:
            log.info("already %s, skipping: %s", previous.get("status"), previous.get("output_dir"))
            return _objective(previous)
        if own.get("status") in DONE:
            other = ",".join(own.get("overrides") or [])
            log.error("%s holds the finished job %s; not overwriting it: use a new hydra.sweep.dir", output_dir, other)
            return None
    try:
        record = train(cfg, output_dir, overrides)
    except Exception:
        if runtime.mode != RunMode.MULTIRUN:
            raise
        log.exception("job failed; its run.json says so, continuing the sweep: %s", output_dir)
        return None
    if record.get("wandb"):
        print(f"W&B run ({record['wandb']['mode']}): {record['wandb']['dir']}")
    return _objective(record)


def _objective(record: dict[str, Any]) -> float | None:
    """The value a Hydra sweeper optimises (an Optuna search ranks trials by it, conf/search/): the task's primary
    validation metric of the tested checkpoint, `best_val["val/<primary>"]`. Never a test metric: choosing
    hyperparameters by the test split would leak it into the result. A diverged run scores the worst value in the
    task's direction (as a study's selection counts it); a run without a score (failed) returns None, which Optuna
    records as a failed trial."""
    if record.get("status") == "diverged":
        return -math.inf if record.get("higher_is_better") else math.inf
    return (record.get("best_val") or {}).get(f"val/{record.get('primary_metric')}")


def main() -> None:
    """Console entry: one-line errors for bad configs, then Hydra's run or multirun."""
    args, _ = get_args_parser().parse_known_args()
    informational = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
    if not informational:
        try:
            preflight(args.overrides, multirun=args.multirun, user_config_dir=args.config_dir)
        except ConfigError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"rnnbench-train: error: {err}", file=sys.stderr)
            sys.exit(2)
        except Exception as err:  # a check that broke instead of explaining: still one line, the trace on request
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            first = (str(err).strip().splitlines() or [""])[0]
            print(
                f"rnnbench-train: error: {type(err).__name__}: {first} (HYDRA_FULL_ERROR=1 shows the traceback)",
                file=sys.stderr,
            )
            sys.exit(2)
    _hydra_main()
    if FAILED:
        print(f"rnnbench-train: {len(FAILED)} job(s) failed: {', '.join(FAILED)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
