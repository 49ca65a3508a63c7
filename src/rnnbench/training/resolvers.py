"""The OmegaConf resolvers rnnbench's configs use: unique launch folders and a task's optimisation direction.

`${unique_now:PATTERN}` names run and sweep folders (conf/train.yaml). Hydra's `${now:...}` is to the second, so two
launches in the same second shared a folder and wrote into each other's jobs. This one appends the microseconds and
a random suffix. Like `now` it is cached (`use_cache=True`): the value lives in the config's resolver cache, which
Hydra copies into every job's config (`load_sweep_config`) and which travels with the config when a launcher pickles
it to a worker (joblib, submitit, Ray), so every job of a sweep agrees on the folder the launching process chose.

`${task_direction:${task._target_}}` is `maximize` or `minimize` from the task class's `higher_is_better`, so an
Optuna search (conf/search/) ranks trials by the task's primary metric in the task's own direction.

Registered on import; `rnnbench.training.cli` and `rnnbench.training.config` import this module, and so does every
worker process that unpickles a job (it imports the task function's module, `rnnbench.training.cli`).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from hydra.utils import get_class
from omegaconf import OmegaConf


def unique_now(pattern: str) -> str:
    """The time now as `pattern` (strftime), then `-<microseconds>-<4 random hex digits>`: unique per call."""
    now = datetime.now()
    return f"{now.strftime(pattern)}-{now:%f}-{secrets.token_hex(2)}"


def task_direction(target: str) -> str:
    """`maximize` when the task class at `target` says higher is better, else `minimize` (Optuna's words)."""
    return "maximize" if get_class(target).higher_is_better else "minimize"


def register() -> None:
    """Register both resolvers (idempotent: importing this module again, or in a worker, replaces them)."""
    OmegaConf.register_new_resolver("unique_now", unique_now, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("task_direction", task_direction, use_cache=True, replace=True)


register()
