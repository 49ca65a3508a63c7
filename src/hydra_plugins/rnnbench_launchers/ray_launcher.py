"""`hydra/launcher=ray` (conf/hydra/launcher/ray.yaml; the `ray` extra, its own venv: hydra-ray-launcher pins
cloudpickle < 3).

hydra-ray-launcher's RayLauncher, whose jobs run as Ray tasks on a Ray instance it starts here (`address: null`) or
on a running cluster (`ray.init.address`), changed as the submitit ones are (rnnbench.training.scheduled): a failed
job raises in its Ray task after recording itself, so Ray reports a task error, and the launching process gathers
every task as it ends (`ray.wait`), printing a progress line each, instead of `ray.get` stopping at the first error.
"""

# No `from __future__ import annotations`: Hydra runs plugin modules before putting them in sys.modules, where
# dataclasses would look string annotations up.
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from omegaconf import OmegaConf, open_dict

from hydra_plugins.rnnbench_launchers import take_over

try:
    from hydra_plugins.hydra_ray_launcher import ray_launcher as plugin
    from hydra_plugins.hydra_ray_launcher._config import RayLauncherConf
except ImportError:  # the extra is not installed; rnnbench-train says how to install it when one is picked
    plugin = None

log = logging.getLogger(__name__)
OBJECT_STORE_BYTES = 78_643_200  # the plugin's default too: Ray's own (30 % of memory) is far more than jobs pass


def run_job(*args: Any, **kwargs: Any) -> JobReturn:
    """The job, in a Ray worker: the plugin's run, then a raise if the job failed."""
    from hydra_plugins.hydra_ray_launcher._launcher_util import _run_job

    from rnnbench.training.scheduled import raise_if_failed

    return raise_if_failed(_run_job(*args, **kwargs))


def _ended(refs: list[Any]) -> Iterator[tuple[int, Any]]:
    """(position, return or error) of each Ray task as it ends."""
    import ray

    position = {ref: pos for pos, ref in enumerate(refs)}
    waiting = list(refs)
    while waiting:
        (ref,), waiting = ray.wait(waiting, num_returns=1)
        try:
            yield position[ref], ray.get(ref)
        except ray.exceptions.RayError as err:  # the task raised (a failed job) or its worker died
            yield position[ref], err


if plugin is not None:

    class RayLauncher(plugin.RayLauncher):
        """Jobs as Ray tasks (`ray.remote` options from `ray.remote`), gathered as they end."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            """Start (or join) Ray, submit every job, then gather every one as it ends."""
            import ray
            from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

            from rnnbench.training.scheduled import gather

            setup_globals()
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            log.info(f"Ray launcher: {len(job_overrides)} job(s), sweep output dir: {sweep_dir}")
            self.ray_cfg.init.setdefault("object_store_memory", OBJECT_STORE_BYTES)
            start_ray(self.ray_cfg.init)
            remote = OmegaConf.to_container(self.ray_cfg.remote, resolve=True) or {}
            task = ray.remote(**remote)(run_job) if remote else ray.remote(run_job)
            refs = []
            for pos, overrides in enumerate(job_overrides):
                idx = initial_job_idx + pos
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                with open_dict(sweep_config):
                    sweep_config.hydra.job.id = f"job_id_for_{idx}"  # as the plugin: no scheduler id here
                    sweep_config.hydra.job.num = idx
                refs.append(
                    task.remote(
                        hydra_context=self.hydra_context,
                        sweep_config=sweep_config,
                        task_function=self.task_function,
                        singleton_state=Singleton.get_state(),
                    )
                )
            echo = not self.ray_cfg.init.get("log_to_driver", True)  # Ray shows the job's own line by default
            return gather(self.config, self.hydra_context, job_overrides, initial_job_idx, _ended(refs), echo=echo)

    @dataclass
    class RayConf(RayLauncherConf):
        """The plugin's settings (`ray.init`, `ray.remote`), launched by rnnbench's RayLauncher."""

        _target_: str = f"{__name__}.RayLauncher"

    # The schema of conf/hydra/launcher/ray.yaml, which sets rnnbench's defaults on it; it replaces the plugin's own
    # `ray` option, whose launcher would stop at a failure.
    take_over("hydra/launcher", "ray", RayConf, base="_ray")
