"""selection.json: the tuning stage's choices, written by `rnnbench-study` and applied by each evaluation job.

An evaluation job runs with `tuned=<path to selection.json>`. Before anything is built, `apply_selection` finds
the job's own group (its variant by `Study.variant_of`, its task label, its factor value) in that file and sets
the tuned key (e.g. `optim.optimizer.lr`) in the job's config, so the resolved config in run.json and W&B holds
the value the job really trained with; the run record's `tuning` field says where it came from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnbench.study.spec import Study, StudyError, parse_study
from rnnbench.study.tuning import Group, group_name, override_map

SELECTION_NAME = "selection.json"


def write_selection(path: Path, selection: dict[str, Any]) -> None:
    """Write selection.json (sorted keys, so an unchanged choice leaves the file byte for byte the same)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(selection, indent=2, sort_keys=True) + "\n")


def read_selection(path: Path) -> dict[str, Any]:
    """Load selection.json; a missing file is one line saying how to make it."""
    if not path.is_file():
        raise StudyError(f"tuned: no selection file at {path}; run the tuning stage first (rnnbench-study NAME)")
    return json.loads(path.read_text())


def find_choice(selection: dict[str, Any], group: Group, overrides: Iterable[str] = ()) -> dict[str, Any] | None:
    """The choice that applies to a job: its group's (with per_factor=hardest, the one tuned at the smallest factor
    value at or above the job's), in the setting its overrides name."""
    variant, task, factor = group
    mine = override_map(overrides)
    candidates = [
        c
        for c in selection["choices"]
        if c["variant"] == variant
        and c["task"] == task
        and all(mine.get(k) == v for k, v in (c.get("setting") or {}).items())
    ]
    if factor is None:
        return next((c for c in candidates if c["factor"] is None), None)
    if selection.get("per_factor") == "hardest":
        above = [c for c in candidates if c["factor"] is not None and c["factor"] >= factor]
        return min(above, key=lambda c: c["factor"], default=None)
    return next((c for c in candidates if c["factor"] is not None and math.isclose(c["factor"], factor)), None)


def apply_selection(cfg: DictConfig, overrides: Iterable[str] = ()) -> tuple[DictConfig, dict[str, Any] | None]:
    """Set the tuned key from `cfg.tuned`'s selection for this job's group (and setting, from its overrides);
    returns the config and the record's `tuning` field ({key, value, selection, at_edge}), or (cfg, None) when the
    job is not tuned."""
    if cfg.get("tuned") is None:
        return cfg, None
    path = Path(str(cfg.tuned)).resolve()
    if cfg.get("study") is None:
        raise StudyError(f"tuned={path} needs the study block of the sweep it was selected for (+sweep=NAME)")
    study: Study = parse_study(OmegaConf.to_container(cfg.study, resolve=True))
    selection = read_selection(path)
    config = OmegaConf.to_container(cfg, resolve=True)
    group = (study.variant_of(config), instantiate(cfg.task).label, study.factor_of(config))
    choice = find_choice(selection, group, overrides)
    if choice is None:
        setting = sorted(
            {(k, override_map(overrides).get(k)) for c in selection["choices"] for k in c.get("setting") or {}}
        )
        name = group_name(group, study, tuple(setting))
        raise StudyError(f"tuned: no choice for {name} in {path}; rerun its tuning stage")
    OmegaConf.update(cfg, selection["key"], choice["value"], merge=False)
    return cfg, {
        "key": selection["key"],
        "value": choice["value"],
        "selection": str(path),
        "at_edge": choice["at_edge"],
    }
