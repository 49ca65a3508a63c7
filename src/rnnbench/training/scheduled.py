"""Jobs run by a scheduler (submitit on this machine or SLURM, Ray): a failed job fails for the scheduler too, and
the sweep still ends with every job accounted for.

rnnbench's task function records a failed job in its run.json and returns, so Hydra's basic and joblib launchers run
the rest of the sweep; at its end the summary (`cli.SweepSummary`, read from the run records) lists the failed jobs
and the command exits 1. A scheduler must see the failure as well (SLURM's `sacct` state FAILED, a Ray task error,
the job process's non-zero exit), so `raise_if_failed` runs in the job's process after Hydra's `run_job` and raises.
The plugins' own launchers gather results with `job.results()` / `ray.get`, which re-raise the first failure in the
launching process and drop every later result: the sweep would end at the first failed job, without a summary.
`gather` waits for every job instead, prints a progress line in the launching terminal as each one ends (the job's
own line goes to the scheduler's log), and returns a failed job as basic and joblib do (a completed Hydra job whose
value is None: an Optuna search records a failed trial), so every launcher ends a sweep the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict

from rnnbench.tracking.run_record import RECORD_NAME, read_record
from rnnbench.training.progress import progress_line

log = logging.getLogger("rnnbench")


class JobFailed(RuntimeError):
    """Raised in a job's process when its run record says it failed, so the scheduler marks the job failed."""


def raise_if_failed(job_return: JobReturn) -> JobReturn:
    """In the job's process: the job's return if it finished (or diverged, a result); raises if it failed."""
    if job_return.status is JobStatus.FAILED:
        return job_return.return_value  # raises the job's own exception (one the task function did not catch)
    record_path = Path(job_return.hydra_cfg.hydra.runtime.output_dir) / RECORD_NAME
    record = read_record(record_path) if record_path.is_file() else {}
    if record.get("status") == "failed":
        raise JobFailed(f"{record_path.parent}: {record.get('error') or 'failed'} (its run.json says failed)")
    return job_return


def job_dir(config: DictConfig, hydra_context: HydraContext, overrides: Sequence[str], idx: int) -> Path:
    """The output folder of job number `idx` of the sweep, as its own process names it (`hydra.sweep.subdir`)."""
    job = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(job.hydra.job):
        job.hydra.job.num = idx
    return Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)


def gather(
    config: DictConfig,
    hydra_context: HydraContext,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    ended: Iterable[tuple[int, JobReturn | BaseException]],
    echo: bool = True,
) -> list[JobReturn]:
    """The sweep's job returns in job order, from `ended`: (position in job_overrides, the job's return or the error
    its scheduler reported) as each job ends. A failed job becomes a completed return of None, logged. `echo`: print
    the job's progress line here (where the scheduler does not pass the job's own output on, as Ray does)."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    returns: dict[int, JobReturn] = {}
    for pos, outcome in ended:
        overrides = list(job_overrides[pos])
        folder = job_dir(config, hydra_context, overrides, initial_job_idx + pos)
        if isinstance(outcome, BaseException):
            log.error("job #%d failed (%s): %s", initial_job_idx + pos, folder, _reason(folder, outcome))
            outcome = JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)
        returns[pos] = outcome
        if echo:
            print(progress_line(sweep_dir, folder), flush=True)
    return [returns[pos] for pos in range(len(job_overrides))]


def _reason(folder: Path, error: BaseException) -> str:
    """Why a job failed, in one line: its run record's error, else the first line of what the scheduler said (a
    job killed before it wrote its record: out of memory, out of time)."""
    record_path = folder / RECORD_NAME
    record = read_record(record_path) if record_path.is_file() else {}
    if record.get("status") == "failed" and record.get("error"):
        return str(record["error"])
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
