"""`rnnbench-train`: the Hydra entry point. Checks every job's config first, then lets Hydra run them.

A multirun keeps going when one job fails (the failure is in that job's run.json and in the summary printed at
the end, and the command exits non-zero), and re-launching into the same `hydra.sweep.dir` skips finished and
diverged jobs (results) of the same resolved config, resumes failed and interrupted ones (killed: `running` with a
dead process) from their last checkpoint, and reruns stale and missing ones (training/resume.py).
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

from rnnbench.tracking.job_identity import override_identity
from rnnbench.tracking.run_record import RECORD_NAME, RESULTS, SUPERSEDED_DIR
from rnnbench.training.config import ConfigError, config_dir, preflight
from rnnbench.training.resume import decide, job_config, job_overrides, read_job_record
from rnnbench.training.train import train

log = logging.getLogger("rnnbench")
FAILED: list[str] = []  # output dirs of the multirun's unfinished jobs, filled by `SweepSummary` at its end


class SweepSummary(Callback):
    """Hydra callback (conf/train.yaml): at the end of a multirun, list the jobs whose run.json is not finished."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        FAILED.extend(unfinished_runs(Path(config.hydra.sweep.dir)))


def unfinished_runs(sweep_dir: Path) -> list[str]:
    """Run directories under a sweep whose record says failed, interrupted or still running, or that never wrote
    one; a diverged run is a result (the cell blew up), kept like a finished one. A folder with no record whose job
    was skipped, its result being another folder's (a relaunch in another job order, records restored from an
    archive), is done; so is a folder whose only attempts were set aside (a stale record of a job now run
    elsewhere, training/resume.py). Hidden folders are a launcher's own (submitit's `.submitit/` logs)."""
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: (len(p.name), p.name),  # 2 < 10
    )
    records = {job: read_job_record(job) for job in jobs}
    results = {override_identity(r.get("overrides") or []) for r in records.values() if r.get("status") in RESULTS}

    def unfinished(job: Path) -> bool:
        if (job / RECORD_NAME).exists():
            return records[job].get("status") not in RESULTS
        return not (job / SUPERSEDED_DIR).is_dir() and job_overrides(job) not in results

    return [str(job) for job in jobs if unfinished(job)]


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float | None:
    runtime = HydraConfig.get()
    output_dir = Path(runtime.runtime.output_dir)
    overrides = list(runtime.overrides.task)
    multirun = runtime.mode == RunMode.MULTIRUN
    try:
        # skip a result of this job, resume an unfinished attempt, or start afresh: training/resume.py
        others = sorted(p for p in output_dir.parent.iterdir() if p.is_dir()) if multirun else []
        decision = decide(output_dir, job_config(cfg, overrides), overrides, others, resume=bool(cfg.resume))
        if decision.action == "skip":
            log.info("already %s, skipping: %s", decision.record.get("status"), decision.found_in)
            return _objective(decision.record)
        if decision.action == "refuse":
            log.error("%s", decision.reason)
            return None
        record = train(cfg, output_dir, overrides, resume=decision.resume)
    except Exception:
        if not multirun:
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
    # `python -m rnnbench.training.cli` (how rnnbench-study runs its stages): run the package module's main, whose
    # FAILED list is the one Hydra's SweepSummary callback (imported as rnnbench.training.cli) fills; this
    # __main__ copy's own list would stay empty and a stage with failed jobs would exit 0
    from rnnbench.training import cli

    cli.main()
