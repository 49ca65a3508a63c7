"""A study's two stages as `rnnbench-train -m` command lines: tuning (grid x tuning grid x tuning seeds) and
evaluation (grid x evaluation seeds at each group's chosen value), each into its own folder of the study folder.

Each stage is an ordinary Hydra multirun run as a subprocess, so it gets a fresh Hydra, the same preflight, the
same launcher (joblib at budget=cpu) and the same resume: a relaunch skips every job whose finished run.json has
the same overrides. That is why every override here is machine-independent: the evaluation jobs find the
selection as `${hydra:sweep.dir}/../selection.json`, never by an absolute path, so records restored on another
machine still match the relaunched jobs.
"""

from __future__ import annotations

import math
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnbench.study.selection import SELECTION_NAME
from rnnbench.study.spec import Study, StudyError, eval_stops, parse_study
from rnnbench.study.tuning import override_map
from rnnbench.training.config import compose_config, group_options

STAGES = ("tune", "eval")
SELECTION_FROM_JOB = "${hydra:sweep.dir}/../" + SELECTION_NAME  # an eval job's path to selection.json
RESERVED = ("seed", "stage", "tuned", "stop_on_solve", "hydra.sweep.dir")  # the study sets these itself


@dataclass(frozen=True)
class Launch:
    """One `rnnbench-study` command: the sweep, its study, the user's overrides and where the study lives."""

    name: str
    study: Study
    grid: dict[str, str]  # the sweep's hydra.sweeper.params after the user's overrides replace theirs
    overrides: tuple[str, ...] = ()
    config_dir: str | None = None
    directory: Path = Path("outputs/studies")
    max_steps: int | None = None  # the jobs' step budget (None: an epoch budget), as composed by `load`

    def stage_dir(self, stage: str) -> Path:
        """`<study folder>/tune` or `<study folder>/eval`: the stage's hydra.sweep.dir."""
        return self.directory / stage

    @property
    def selection_path(self) -> Path:
        return self.directory / SELECTION_NAME


def _parse(override: str) -> Override:
    try:
        return OverridesParser.create().parse_override(override)
    except HydraException as err:
        raise StudyError(f"{override}: not a Hydra override ({str(err).strip().splitlines()[0]})") from err


def _key(override: str) -> str:
    return _parse(override).get_key_element().lstrip("+~")


class NoStudy(StudyError):
    """A sweep file without a study: block (a plain multirun)."""


def load(name: str, overrides: list[str], config_dir: str | None = None, directory: Path | None = None) -> Launch:
    """Compose the sweep with the user's overrides and read its study block; one StudyError line if unusable."""
    sweeps = group_options("sweep", config_dir)
    if name not in sweeps:
        raise StudyError(f"unknown sweep {name!r}; allowed: {', '.join(sweeps)}")
    for override in overrides:
        key = _key(override)
        if key in RESERVED or key.startswith("hydra.sweep"):
            raise StudyError(f"{override}: the study sets {key} itself (its seeds, stages and folders); drop it")
    fixed = [o for o in overrides if not _parse(o).is_sweep_override()]
    try:
        base = compose_config([f"+sweep={name}", *fixed], config_dir, hydra=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise StudyError(str(err).strip().splitlines()[0]) from err
    if base.get("study") is None:
        raise NoStudy(f"sweep {name} declares no study: add a study: block with tuning and seeds (sweeps/README.md)")
    study = parse_study(OmegaConf.to_container(base.study, resolve=True))
    if study.tuning is None or not study.seeds:
        raise StudyError(f"sweep {name}'s study needs study.tuning and study.seeds (its evaluation seeds)")
    for override in overrides:
        if _key(override) == study.tuning.key:
            raise StudyError(f"{override}: {study.tuning.key} is the study's tuned key; change study.tuning.grid")
    grid = {str(k): str(v) for k, v in (base.hydra.sweeper.get("params") or {}).items()}
    grid.update({_key(o): o.split("=", 1)[1] for o in overrides if _key(o) in grid or "," in o})
    if study.tuning.key in grid:
        raise StudyError(f"sweep {name}'s grid sweeps {study.tuning.key}, the study's tuned key: drop it from the grid")
    steps = base.trainer.get("max_steps")
    max_steps = int(steps) if steps is not None and int(steps) > 0 else None
    folder = directory or Path("outputs/studies") / name
    return Launch(name, study, grid, tuple(overrides), config_dir, folder, max_steps)


def declared_launches(config_dir: str | None = None) -> dict[str, Launch]:
    """Every sweep that declares a study (shipped, or in a user's --config-dir), composed once as `rnnbench-study
    NAME` would launch it now: its study block, grid and budget (reports read all three)."""
    launches = {}
    for name in group_options("sweep", config_dir):
        try:
            launches[name] = load(name, [], config_dir)
        except NoStudy:
            continue
    return launches


def _values(launch: Launch, key: str) -> list[str]:
    override = _parse(f"{key}={launch.grid[key]}")
    return list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(override.value())]


def grid_values(launch: Launch) -> dict[str, tuple[str, ...]]:
    """Each key of the launch's grid with the values it sweeps, as override strings ('lstm', 'True', ...)."""
    return {key: tuple(_values(launch, key)) for key in launch.grid}


def in_grid(launch: Launch) -> Callable[[Iterable[str]], bool]:
    """The test of whether a job's overrides fall inside the launch's grid (its values parsed once). A study launched
    on part of its sweep (`rnnbench-study depth model.num_layers=4`) selects among the groups it runs: a restored
    archive's other groups, tuned on an older grid, would otherwise stop the selection as incomplete."""
    values = {key: allowed for key, allowed in grid_values(launch).items() if key not in RESERVED}

    def inside(overrides: Iterable[str]) -> bool:
        mine = override_map(overrides)
        return all(mine[key] in allowed for key, allowed in values.items() if key in mine)

    return inside


@dataclass(frozen=True)
class Plan:
    """What a study will run: its stages' job counts and the step budget of each job."""

    tune_runs: int
    eval_runs: int
    max_steps: int | None  # None: an epoch budget

    def sentence(self) -> str:
        """'48 tuning + 30 evaluation runs of at most 4,000 optimiser steps each'."""
        budget = "" if self.max_steps is None else f" of at most {self.max_steps:,} optimiser steps each"
        return f"{self.tune_runs} tuning + {self.eval_runs} evaluation runs{budget}"


def plan(launch: Launch) -> Plan:
    """The job counts of both stages, from the grid as the stages launch it (the tuning stage at the factor's
    largest value only with per_factor=hardest), and the sweep's step budget (`load` composed it)."""
    tuning = launch.study.tuning
    if tuning is None:
        raise StudyError("study.tuning is missing")
    sizes = {key: len(_values(launch, key)) for key in launch.grid if key not in RESERVED}  # the stages set seeds
    groups = math.prod(sizes.values())
    factor = launch.study.factor
    tune_groups = groups // sizes[factor] if tuning.per_factor == "hardest" and factor in sizes else groups
    return Plan(tune_groups * len(tuning.grid) * len(tuning.seeds), groups * len(launch.study.seeds), launch.max_steps)


def _joined(values: tuple[float, ...] | tuple[int, ...]) -> str:
    return ",".join(repr(v) for v in values)


def stage_overrides(launch: Launch, stage: str) -> list[str]:
    """The stage's overrides after `+sweep=NAME`: the user's, then its stage, its seeds, and the tuning grid (tune)
    or the selection (eval); with per_factor=hardest the tuning stage runs the factor's largest value only."""
    tuning = launch.study.tuning
    if tuning is None:
        raise StudyError("study.tuning is missing")
    user = list(launch.overrides)
    if stage == "tune":
        extra = [f"{tuning.key}={_joined(tuning.grid)}", f"seed={_joined(tuning.seeds)}"]
        factor = launch.study.factor
        if tuning.per_factor == "hardest" and factor in launch.grid:
            user = [o for o in user if _key(o) != factor]  # the user's values of the factor: their largest only
            extra.append(f"{factor}={max(_values(launch, factor), key=float)}")
        return [*user, "stage=tune", "stop_on_solve=true", *extra]
    if stage == "eval":
        seeds = f"seed={_joined(launch.study.seeds)}"
        return [
            *user,
            "stage=eval",
            f"stop_on_solve={str(eval_stops(launch.study)).lower()}",
            f"tuned={SELECTION_FROM_JOB}",
            seeds,
        ]
    raise StudyError(f"unknown stage {stage!r}; allowed: {', '.join(STAGES)}")


def command(launch: Launch, stage: str) -> list[str]:
    """The full `rnnbench-train -m` command line of a stage."""
    config_dir = ["--config-dir", str(Path(launch.config_dir).resolve())] if launch.config_dir else []
    sweep_dir = f"hydra.sweep.dir={launch.stage_dir(stage)}"
    return [
        sys.executable,
        "-m",
        "rnnbench.training.cli",
        "-m",
        *config_dir,
        f"+sweep={launch.name}",
        *stage_overrides(launch, stage),
        sweep_dir,
    ]


def run_stage(launch: Launch, stage: str) -> int:
    """Run one stage's multirun (resuming whatever it finished before); its exit status."""
    line = command(launch, stage)
    print(f"rnnbench-study: {stage} stage: rnnbench-train {shlex.join(line[3:])}", flush=True)
    return subprocess.run(line, check=False).returncode
