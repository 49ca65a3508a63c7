"""`hydra/launcher=submitit_local` and `hydra/launcher=slurm` (conf/hydra/launcher/; the `submitit` extra).

hydra-submitit-launcher's LocalLauncher and SlurmLauncher, changed in three ways:
- a failed job raises in its own process after recording itself, so submitit (and SLURM) mark it failed;
- the launching process waits for every job, printing a progress line as each ends, and a failed one comes back as
  under the basic launcher (rnnbench.training.scheduled.gather), instead of the first failure ending the sweep;
- `n_jobs` (submitit_local only): at most that many jobs at once, -1 one per CPU core. submitit's LocalExecutor
  starts every job of a sweep at once, which a sweep of 72 training jobs on 2 cores does not survive.
"""

# No `from __future__ import annotations`: Hydra runs plugin modules before putting them in sys.modules, where
# dataclasses would look string annotations up.
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.rnnbench_launchers import take_over

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as plugin
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf, SlurmQueueConf
except ImportError:  # the extra is not installed; rnnbench-train says how to install it when one is picked
    plugin = None

log = logging.getLogger(__name__)
POLL_S = 1.0  # how often the launching process looks for ended jobs


def cpu_slots(n_jobs: int) -> int:
    """joblib's reading of n_jobs: a positive count as it is, -1 one per CPU core, -2 all but one, ..."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)


class FailingJobs:
    """What rnnbench adds to the plugin's launchers (mixed in before them)."""

    _EXECUTOR: str
    params: dict[str, Any]

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """The job, in its own process: the plugin's run, then a raise if the job failed."""
        from rnnbench.training.scheduled import raise_if_failed

        return raise_if_failed(super().__call__(*args, **kwargs))  # type: ignore[misc]

    def executor(self, n_jobs: int) -> tuple[Any, int]:
        """submitit's executor with the plugin's settings (as the plugin maps them), and how many of the sweep's
        `n_jobs` jobs may run at once."""
        import submitit

        params = dict(self.params)
        slots = cpu_slots(params.pop("n_jobs", -1) or -1) if self._EXECUTOR == "local" else n_jobs
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in shared else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        return executor, slots

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Submit the jobs, then gather every one as it ends."""
        from rnnbench.training.scheduled import gather

        executor, slots = self.executor(len(job_overrides))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        at_once = f", {slots} job(s) at a time" if slots < len(job_overrides) else ""
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir: {sweep_dir}{at_once}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        jobs = []
        for pos, overrides in enumerate(job_overrides):
            idx = initial_job_idx + pos
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            jobs.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        ended = self._run(executor, jobs, slots)
        return gather(self.config, self.hydra_context, job_overrides, initial_job_idx, ended)

    def _run(self, executor: Any, jobs: list[tuple[Any, ...]], slots: int) -> Iterator[tuple[int, Any]]:
        """(position, return or error) of each job as it ends, with at most `slots` submitted and unfinished.
        All at once is one job array (SLURM's own array_parallelism then limits it); fewer, one job at a time."""
        pending = list(enumerate(jobs))
        running: dict[int, Any] = {}
        if slots >= len(jobs):
            running = dict(enumerate(executor.map_array(self, *zip(*jobs, strict=True))))
            pending = []
        while pending or running:
            while pending and len(running) < slots:
                pos, job = pending.pop(0)
                running[pos] = executor.submit(self, *job)
            for pos, job in list(running.items()):
                if job.done():
                    del running[pos]
                    error = job.exception()
                    yield pos, error if error is not None else job.results()[0]
            time.sleep(POLL_S)


if plugin is not None:

    class LocalLauncher(FailingJobs, plugin.LocalLauncher):
        """submitit's local executor: each job in its own process on this machine, `n_jobs` at a time."""

    class SlurmLauncher(FailingJobs, plugin.SlurmLauncher):
        """submitit's SLURM executor: the sweep as one job array (`array_parallelism` of it at once)."""

    @dataclass
    class LocalConf(LocalQueueConf):
        """The plugin's local settings, plus n_jobs."""

        _target_: str = f"{__name__}.LocalLauncher"
        n_jobs: int = -1  # jobs at once: -1 one per CPU core (as joblib's n_jobs)

    @dataclass
    class SlurmConf(SlurmQueueConf):
        """The plugin's SLURM settings (every sbatch option it knows), launched by rnnbench's SlurmLauncher."""

        _target_: str = f"{__name__}.SlurmLauncher"

    # The schemas of conf/hydra/launcher/submitit_local.yaml and slurm.yaml, which set rnnbench's defaults on them;
    # they replace the plugin's own options (submitit_local, submitit_slurm), whose launchers would stop at a failure.
    take_over("hydra/launcher", "submitit_local", LocalConf, base="_submitit_local")
    take_over("hydra/launcher", "submitit_slurm", SlurmConf, base="_submitit_slurm")
