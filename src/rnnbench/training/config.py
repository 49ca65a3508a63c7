"""Finding, composing and validating configs, so a bad override fails in one line before any data is built.

Hydra reports a typo in an override as a multi-line trace deep in its own terms. `preflight` composes every job
a command line would launch (each value of each sweep at least once), instantiates the cheap parts (task object,
model, optimiser) and turns any failure into one `ConfigError` line naming the key and the allowed values.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override
from hydra.errors import HydraException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.accelerators import AcceleratorRegistry

from rnnbench.models import fast_loops
from rnnbench.study.spec import StudyError, check_variants, parse_study
from rnnbench.tracking.wandb_run import MODES as WANDB_MODES
from rnnbench.training import (
    allocator,
    resolvers,  # noqa: F401  (registers ${unique_now:...} and ${task_direction:...})
)
from rnnbench.training.diagnostics import GradientDiagnostics
from rnnbench.training.diagnostics import from_config as diagnostics_from_config
from rnnbench.training.precision import check_precision
from rnnbench.training.train import check_protocol
from rnnbench.training.typecheck import check_node

PACKAGE_DIR = Path(__file__).resolve().parents[1]
FULL_PRODUCT_LIMIT = 32  # sweeps up to this many jobs are validated job by job; larger ones value by value
TOP_LEVEL = {
    "seed": int,
    "experiment": str,
    "tags": list,
    "checkpoint": bool,
    "resume": bool,
    "diagnostics": dict,
    "divergence": dict,
    "stop_on_solve": bool,
}
NULLABLE_TOP_LEVEL = ("threads", "study", "fault", "tuned")  # may be null or absent; each is checked on its own below
NULLABLE_TOP_LEVEL += ("stage", "checkpoint_metric")  # checked with the built task by train.check_protocol
TYPE_NAMES = {int: "an int", str: "a string", list: "a list", bool: "true or false", dict: "a mapping"}
GROUPS = ("model", "task", "trainer", "optim", "logger")
SELECTABLE = (*GROUPS, "sweep", "budget", "search")  # groups whose options a user picks by name (the last 3: global)


# Options whose Hydra plugin comes with an optional extra: the config Hydra cannot find without it, what the user
# picked, the modules it needs, the extra (pyproject.toml) that installs them.
SUBMITIT = ("hydra_plugins.hydra_submitit_launcher",)
PLUGIN_OPTIONS = (
    ("hydra/launcher/_submitit_local", "hydra/launcher=submitit_local", SUBMITIT, "submitit"),
    ("hydra/launcher/_submitit_slurm", "hydra/launcher=slurm", SUBMITIT, "submitit"),
    ("hydra/launcher/_ray", "hydra/launcher=ray", ("hydra_plugins.hydra_ray_launcher", "ray"), "ray"),
    ("hydra/sweeper/optuna", "hydra/sweeper=optuna", ("hydra_plugins.hydra_optuna_sweeper", "optuna"), "optuna"),
)


class ConfigError(ValueError):
    """A user-facing configuration error: one line, naming the key and what is allowed."""


def _resource_dir(name: str) -> Path:
    """`conf`/`sweeps` inside an installed wheel, else at the top of the source checkout (editable install)."""
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"rnnbench's {name}/ directory is missing from {PACKAGE_DIR} and its checkout")


def config_dir() -> Path:
    """The directory holding train.yaml and the config groups."""
    return _resource_dir("conf")


def compose_config(
    overrides: Iterable[str] = (), user_config_dir: str | None = None, hydra: bool = False
) -> DictConfig:
    """Compose `train.yaml` with overrides, as `rnnbench-train` would; a user's --config-dir adds options."""
    overrides = list(overrides)
    if user_config_dir:
        overrides.append(f"hydra.searchpath=[file://{Path(user_config_dir).resolve()}]")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra)


def group_options(group: str, user_config_dir: str | None = None) -> list[str]:
    """The selectable options of a config group (files starting with `_` are shared bases, not options)."""
    dirs = [Path(user_config_dir)] if user_config_dir else []
    names = {p.stem for d in [*dirs, config_dir()] for p in (d / group).glob("*.yaml")}
    return sorted(n for n in names if not n.startswith("_"))


def hydra_group_options(group: str) -> list[str]:
    """The options of a Hydra config group such as `hydra/launcher` (its plugins' configs included)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        options = GlobalHydra.instance().config_loader().get_group_options(group)
    return sorted(o for o in options if not o.startswith("_"))


def sweep_values(override: Override, options: Callable[[str], list[str]] = lambda group: []) -> list[str]:
    """The `key=value` lines preflight checks for one sweep override: every value of a choice or range (tags
    aside), the options of a config group a glob matches (`options(group)` lists them), and the two ends of an
    interval, which a sampling sweeper (Optuna) draws between; [] where it cannot tell (a glob over no group)."""
    key = override.get_key_element()
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        return [f"{key}={sweep.start}", f"{key}={sweep.end}"]
    if isinstance(sweep, Glob):
        return [f"{key}={name}" for name in sweep.filter(options(override.key_or_group))]
    return [f"{key}={v}" for v in override.sweep_string_iterator()]


def job_overrides(
    overrides: list[str],
    sweeper_params: dict[str, str] | None = None,
    crossed: Iterable[str] = (),
    product: bool = True,
    options: Callable[[str], list[str]] = lambda group: [],
) -> list[list[str]]:
    """The override list of every job a (multi)run launches, as far as it can be told before launching.

    With Hydra's basic sweeper (`product`) that is the product of the sweeps; large ones are cut to one value at a
    time, except the `crossed` keys (a study's compared keys), whose values are always crossed in full: every
    variant gets checked. A sweeper that picks the combinations itself (`product=False`: Optuna) gets each value
    checked once, the ends of its intervals included. A sweep whose values cannot be told (a glob over a plain key)
    is left out of the check and passed to Hydra as it is."""
    parser = OverridesParser.create()
    given = parser.parse_overrides(list(overrides))
    keys = {o.get_key_element().lstrip("+~") for o in given}
    # A sweep file's params come first and yield to the command line's, as in Hydra's basic sweeper.
    swept = [f"{k}={v}" for k, v in (sweeper_params or {}).items() if k not in keys]
    parsed = parser.parse_overrides(swept) + given
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeps = {o.get_key_element(): sweep_values(o, options) for o in parsed if o.is_sweep_override()}
    sweeps = {key: values for key, values in sweeps.items() if values}
    if not sweeps:
        return [fixed]
    if product and math.prod(len(values) for values in sweeps.values()) <= FULL_PRODUCT_LIMIT:
        return [fixed + list(combo) for combo in itertools.product(*sweeps.values())]
    crossed = [key for key in sweeps if key.lstrip("+~") in set(crossed)]
    firsts = {key: values[0] for key, values in sweeps.items()}
    combos = [dict(zip(crossed, combo, strict=True)) for combo in itertools.product(*(sweeps[k] for k in crossed))]
    combos += [{key: value} for key in sweeps if key not in crossed for value in sweeps[key][1:]]
    jobs = [fixed + [combo.get(key, first) for key, first in firsts.items()] for combo in combos]
    return jobs


def _check_kwargs(key: str, target: Any, given: Iterable[str], extra: Iterable[str] = ()) -> None:
    """Unknown config keys for a `_target_`'s signature fail with the allowed ones."""
    params = inspect.signature(target).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if n not in ("self", *extra) and p.kind != p.VAR_POSITIONAL]
    unknown = sorted(set(given) - set(allowed) - {"_target_", "_partial_", "_recursive_", "_convert_"})
    if unknown:
        raise ConfigError(f"unknown key {key}.{unknown[0]}; allowed keys under {key}: {', '.join(sorted(allowed))}")


def _instantiate(key: str, node: DictConfig, **kwargs: Any) -> Any:
    """Instantiate a config node; a constructor's ValueError ('seq_len must be ...') becomes 'task.seq_len must ...'."""
    try:
        return instantiate(node, **kwargs)
    except Exception as err:
        cause = err  # Hydra's wrappers hide the constructor's own error, the one written for users: unwrap only them
        while isinstance(cause, HydraException) and cause.__cause__ is not None:
            cause = cause.__cause__
        raise ConfigError(f"{key}.{cause}" if isinstance(cause, ValueError) else f"{key}: {cause}") from err


def _values(node: DictConfig) -> dict[str, Any]:
    """A group's resolved keyword arguments, without Hydra's `_target_`/`_partial_` keys."""
    try:
        values = OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from err
    return {k: v for k, v in values.items() if not k.startswith("_")}


def _check_ranges(cfg: DictConfig) -> None:
    """Values of the right type that Lightning or torch would refuse only once training starts (or never)."""
    trainer = _values(cfg.trainer)
    for name in ("max_epochs", "max_steps"):
        value = trainer.get(name)
        if value is not None and value < -1:
            raise ConfigError(f"trainer.{name} must be an int >= -1 (-1: no limit) or null, got {value!r}")
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"):
        value = trainer.get(name)
        if value is not None and (value < 0 or (isinstance(value, float) and value > 1)):
            raise ConfigError(f"trainer.{name} must be an int >= 0 (batches) or a float in [0, 1], got {value!r}")
    accelerator = trainer.get("accelerator")
    accelerators = ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))
    if isinstance(accelerator, str) and accelerator.lower() not in accelerators:
        raise ConfigError(f"trainer.accelerator must be one of {', '.join(accelerators)}, got {accelerator!r}")
    devices = trainer.get("devices", "auto")
    if not (
        (isinstance(devices, int) and devices >= -1 and devices != 0)
        or (isinstance(devices, list) and devices and all(isinstance(d, int) and d >= 0 for d in devices))
        or (isinstance(devices, str) and re.fullmatch(r"auto|-1|\d+|\d+(,\d*)+", devices.strip()))
    ):
        raise ConfigError(
            f"trainer.devices must be auto, a positive int, -1 (all), a list of device ids or a string such as "
            f"'0,1', got {devices!r}"
        )
    lr = cfg.optim.optimizer.get("lr")
    if isinstance(lr, int | float) and not isinstance(lr, bool) and not lr >= 0:
        raise ConfigError(f"optim.optimizer.lr must be a number >= 0, got {lr!r}")
    clip = cfg.optim.get("grad_clip")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or not clip > 0):
        raise ConfigError(f"optim.grad_clip must be a positive number or null (no clipping), got {clip!r}")


def _check_fault(fault: Any) -> None:
    """The test-only `+fault=...` block (conf/fault/): which fault, at which step, for which seeds."""
    from rnnbench.training.callbacks import FAULT_ACTIONS

    actions = ", ".join(FAULT_ACTIONS)
    if not isinstance(fault, dict):
        raise ConfigError(f"fault must be a mapping (pick one with +fault=raise_at_step), got {fault!r}")
    unknown = sorted(set(fault) - {"action", "at_step", "lr", "seeds"})
    if unknown:
        raise ConfigError(f"unknown key fault.{unknown[0]}; allowed keys under fault: action, at_step, lr, seeds")
    seeds = fault.get("seeds") or {}
    if not isinstance(seeds, dict):
        raise ConfigError(f"fault.seeds must be a mapping seed -> action ({actions}) or null, got {seeds!r}")
    for where, action in [("fault.action", fault.get("action")), *((f"fault.seeds.{k}", v) for k, v in seeds.items())]:
        if action is not None and action not in FAULT_ACTIONS:
            raise ConfigError(f"{where} must be one of {actions} or null, got {action!r}")
    step = fault.get("at_step", 1)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ConfigError(f"fault.at_step must be a positive int, got {step!r}")


def check_config(cfg: DictConfig) -> None:
    """Validate a composed config: top-level types, then every group by building its cheap parts."""
    for name, kind in TOP_LEVEL.items():
        value = cfg.get(name)
        value = OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise ConfigError(f"{name} must be {TYPE_NAMES[kind]}, got {value!r}")
    divergence = OmegaConf.to_container(cfg.divergence, resolve=True)
    unknown = sorted(set(divergence) - {"factor", "max_loss"})
    if unknown:
        raise ConfigError(f"unknown key divergence.{unknown[0]}; allowed keys under divergence: factor, max_loss")
    for name, value in divergence.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not value > 0):
            raise ConfigError(f"divergence.{name} must be a positive number or null, got {value!r}")
    if cfg.get("fault") is not None:
        _check_fault(OmegaConf.to_container(cfg.fault, resolve=True))
    threads = cfg.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive int or null (torch's default), got {threads!r}")
    if cfg.get("study") is not None:
        if not isinstance(cfg.study, DictConfig):
            raise ConfigError(f"study must be a mapping (the study block of a sweep file) or null, got {cfg.study!r}")
        try:
            parse_study(OmegaConf.to_container(cfg.study, resolve=True))
        except StudyError as err:
            raise ConfigError(str(err)) from err
    known = {*TOP_LEVEL, *NULLABLE_TOP_LEVEL, *GROUPS}
    extra = sorted(set(cfg.keys()) - known)
    if extra:
        raise ConfigError(f"unknown top-level key {extra[0]}; allowed: {', '.join(sorted(known))}")
    task_cls = _instantiate("task", cfg.task, _partial_=True).func  # the classes, located but not yet built
    model_cls = _instantiate("model", cfg.model, _partial_=True).func
    optimizer_cls = _instantiate("optim.optimizer", cfg.optim.optimizer, _partial_=True).func
    targets = {"task": task_cls, "model": model_cls, "trainer": pl.Trainer, "optim.optimizer": optimizer_cls}
    targets["logger"] = _instantiate("logger", cfg.logger, _partial_=True).func
    if cfg.optim.get("scheduler") is not None:
        targets["optim.scheduler"] = _instantiate("optim.scheduler", cfg.optim.scheduler, _partial_=True).func
    trainer = _values(cfg.trainer)  # before the type check: it would list every precision Lightning knows
    wrong = check_precision(trainer.get("precision"), trainer.get("accelerator", "auto"))
    if wrong:
        raise ConfigError(wrong)
    for key, target in targets.items():
        wrong = check_node(key, target, _values(OmegaConf.select(cfg, key)))
        if wrong:
            raise ConfigError(wrong)
    _check_ranges(cfg)
    try:
        task_cls.check_model_class(model_cls)  # before the task reads any data: a wrong pair needs none to fail
    except ValueError as err:
        raise ConfigError(str(err)) from err
    task = _instantiate("task", cfg.task)
    try:
        check_protocol(cfg, task)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    body = _instantiate("model", cfg.model, **task.model_kwargs())
    try:
        task.check_model(body)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    try:
        diagnostics_from_config(cfg.diagnostics, body)
    except ValueError as err:
        raise ConfigError(f"diagnostics.{err}") from err
    probe = {k: v for k, v in _values(cfg.diagnostics).items() if k != "enabled"}  # typed even while disabled
    wrong = check_node("diagnostics", GradientDiagnostics, probe)
    if wrong:
        raise ConfigError(wrong)
    _check_kwargs("trainer", pl.Trainer, [k for k in cfg.trainer if k != "_target_"])
    try:
        optimizer_cls([torch.nn.Parameter(torch.zeros(1))], **_values(cfg.optim.optimizer))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"optim.optimizer: {err}") from err
    identity = ("save_dir", "name", "group", "job_type", "tags", "run_config")  # filled in by train()
    _check_kwargs("logger", get_method(cfg.logger._target_), cfg.logger.keys(), identity)
    if cfg.logger.get("mode") not in (None, *WANDB_MODES):
        raise ConfigError(f"logger.mode must be one of {', '.join(WANDB_MODES)}, got {cfg.logger.mode!r}")


def missing_plugin(text: str, overrides: Iterable[str] = ()) -> str | None:
    """A composition error that is a plugin not installed (picked on the command line, or by a config Hydra could
    not find without it), as the line that says which extra installs it."""
    picked = {o.lstrip("+~") for o in overrides}
    for config, option, modules, extra in PLUGIN_OPTIONS:
        if (f"'{config}'" in text or option in picked) and any(importlib.util.find_spec(m) is None for m in modules):
            return f"{option} needs the {extra} extra, which is not installed: pip install 'rnnbench[{extra}]'"
    return None


def _explain(err: Exception, overrides: list[str], user_config_dir: str | None) -> str:
    """Hydra/OmegaConf composition errors as one line with the allowed values."""
    missing = missing_plugin(str(err), overrides)
    if missing:
        return missing
    for line in overrides:
        key, _, value = line.lstrip("+~").partition("=")
        if key in SELECTABLE and value and value not in group_options(key, user_config_dir):
            return f"unknown {key} {value!r}; allowed: {', '.join(group_options(key, user_config_dir))}"
        if "/" in key and value and value not in hydra_group_options(key):  # hydra/launcher=..., hydra/sweeper=...
            what = key.rpartition("/")[2]
            return f"unknown {what} {value!r} for {key}; allowed: {', '.join(hydra_group_options(key))}"
    text = str(err)
    for line in overrides:
        key, _, value = line.lstrip("+~").partition("=")
        if line.startswith("+") and text.startswith(f"Multiple values for {key}."):
            return f"{key} is already in the defaults list: select it with {key}={value} (no +)"
    for line in overrides:
        key = line.lstrip("+~").partition("=")[0]
        if text.startswith(f"Could not override '{key}'") and "." not in key and "/" not in key:
            known = sorted({*TOP_LEVEL, *NULLABLE_TOP_LEVEL, *GROUPS})
            return f"unknown top-level key {key}; allowed: {', '.join(known)} (add a new key with +{key}=...)"
        if f"'{key}'" in text and "." in key:
            parent, _, _ = key.rpartition(".")
            base = compose_config([o for o in overrides if o != line], user_config_dir)
            node = OmegaConf.select(base, parent)
            keys = node.keys() if isinstance(node, DictConfig) else []
            allowed = ", ".join(sorted(k for k in keys if not k.startswith("_"))) or "(none)"
            return f"unknown key {key}; allowed keys under {parent}: {allowed} (add a new key with +{key}=...)"
    return text.strip().splitlines()[0]


def _group_options_any(group: str, user_config_dir: str | None = None) -> list[str]:
    """The options of one of our config groups, or of a Hydra group (`hydra/launcher`); [] for a plain key."""
    return hydra_group_options(group) if group.startswith("hydra/") else group_options(group, user_config_dir)


def preflight(overrides: list[str], multirun: bool = False, user_config_dir: str | None = None) -> int:
    """Compose and check every job the command would run; returns how many jobs were checked."""
    try:
        fast_loops.enabled()  # the environment switch, read by every job's first custom time loop
        allocator.choice()  # RNNBENCH_MALLOC, read by every job at start
    except ValueError as err:
        raise ConfigError(str(err)) from err
    try:
        fixed = [o.input_line for o in OverridesParser.create().parse_overrides(overrides) if not o.is_sweep_override()]
        base = compose_config(fixed, user_config_dir, hydra=True) if multirun else None
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_explain(err, overrides, user_config_dir)) from err
    sweeper = dict(base.hydra.sweeper.get("params") or {}) if base is not None else {}
    study = base.get("study") if base is not None else None
    try:
        compared = parse_study(OmegaConf.to_container(study, resolve=True)).compare if study is not None else ()
    except StudyError as err:
        raise ConfigError(str(err)) from err
    # Hydra's basic sweeper launches the product of the sweeps; another one (Optuna) picks the combinations itself
    grid = base is None or str(base.hydra.sweeper.get("_target_", "")).endswith(".BasicSweeper")
    options = partial(_group_options_any, user_config_dir=user_config_dir)  # what a glob(...) sweep can match
    jobs = job_overrides(overrides, sweeper, compared, product=grid, options=options) if multirun else [overrides]
    labels: dict[str, set[str]] = {}  # study block (as JSON) -> the variant labels its jobs produce
    for job in jobs:
        try:
            cfg = compose_config(job, user_config_dir)
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(_explain(err, job, user_config_dir)) from err
        check_config(cfg)
        if cfg.get("study") is not None:
            block = json.dumps(OmegaConf.to_container(cfg.study, resolve=True), sort_keys=True)
            labels.setdefault(block, set()).add(_variant(cfg))
    if multirun:
        _check_study_variants(labels, overrides, sweeper, user_config_dir)
    return len(jobs)


def _variant(cfg: DictConfig) -> str:
    """A composed job's variant label under its study block. Only the compared keys are resolved: other values may
    interpolate Hydra's runtime (`tuned=${hydra:sweep.dir}/...`), which a composed config does not have."""
    study = parse_study(OmegaConf.to_container(cfg.study, resolve=True))
    return study.label_of([OmegaConf.select(cfg, key) for key in study.compare])


def _check_study_variants(
    labels: dict[str, set[str]], overrides: list[str], sweeper: dict[str, str], user_config_dir: str | None
) -> None:
    """The reference and each hypothesis's variant must be variants of the sweep: a typo fails at launch. A command
    line that narrows the sweep (`model=lstm,gru`) may leave a hypothesis without runs, so a label missing from the
    launched jobs is looked for in the sweep file's own grid before it is an error."""
    for block, variants in labels.items():
        study = parse_study(json.loads(block))
        try:
            check_variants(study, variants)
        except StudyError:
            own = [o for o in overrides if o.lstrip("+~").partition("=")[0] not in sweeper]
            jobs = job_overrides(own, sweeper, study.compare)
            grid = {_variant(compose_config(job, user_config_dir)) for job in jobs}
            try:
                check_variants(study, variants | grid)
            except StudyError as err:
                raise ConfigError(str(err)) from err
