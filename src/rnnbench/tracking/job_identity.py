"""When two runs are the same job: the same command (overrides) and the same resolved config, paths aside.

A relaunch keeps a finished (or diverged) record only if it is this job's: its overrides name the same job and its
resolved config is the one this job would train with now. So editing a sweep or budget file (`max_steps`, a data
size, a learning rate) reruns the jobs it changes, where matching the overrides alone kept the stale results.
`rnnbench-train`'s resume (training/resume.py), a study's restore (study/archive.py) and its selection
(study/tuning.py) all decide it here.

The rule, in full:
1. **Overrides**: the job's overrides, sorted (their order follows the composed sweep config, not the job), minus
   those of `COMMAND_FREE` keys: how to relaunch (`resume`), test-only fault injections (`+fault=...`, so a relaunch
   without the fault finds the faulted jobs), paths that differ between machines (`tuned`, `task.cache_dir`) and
   the study block (`study.seeds=[0,...,19]`: a relaunch that adds evaluation seeds to an undecided study names the
   jobs it already ran as the same jobs, as rule 2 does for the block in the config).
   Every other override counts as written (`logger=csv` and `threads=2` name other commands, so other jobs).
2. **Resolved config**: compared key by key (dotted, values as canonical JSON, an integral float equal to its int)
   except the `CONFIG_FREE` keys, which cannot change a result: the same paths and relaunch keys; where results are
   logged (`logger`: W&B project, mode, entity) and how they are labelled there (`experiment`, the W&B group, and
   `tags`); how progress is shown (`trainer.enable_progress_bar`, `enable_model_summary`, `log_every_n_steps`:
   the W&B chart density of train/grad_norm, not the history or any metric); `threads` (intra-op threads change
   float summation order in the last bits at most; the launcher's choice, like `budget=cpu`'s 1); the study block
   (`study`: claim, hypotheses and seed lists; a job's own seed and tuned value are keys of their own, so adding
   evaluation seeds or a hypothesis reruns nothing); and the citation text of a task's solve criterion
   (`task.solve.source`).
3. **Schema growth**: a key that only one side has (added to the configs after the older record was written, or
   removed since) counts only where the job's overrides set it (`key=value`, or `key={...}` for a mapping). Config
   keys are added with defaults that reproduce the old behaviour, so a record written before `model.forget_bias`
   existed is the same job as one with its default; otherwise every committed study record (restored from
   reports/<sweep>/runs.jsonl.gz) would rerun after any new key. A group choice (`model=gru`) sets no key itself.

The code version (`git_sha`, `git_dirty` in run.json) is recorded, not compared: every commit would otherwise rerun
every study.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

COMMAND_FREE = ("resume", "fault", "tuned", "task.cache_dir", "study")  # overrides of these do not make another job
CONFIG_FREE = (
    *COMMAND_FREE,
    "logger",
    "experiment",
    "tags",
    "threads",
    "study",
    "task.solve.source",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
)


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def override_key(override: str) -> str:
    """The dotted key an override sets (`+`, `++` and `~` dropped): `model.hidden_size=64` -> model.hidden_size."""
    return override.split("=", 1)[0].lstrip("+~")


def override_identity(overrides: Iterable[str]) -> tuple[str, ...]:
    """The overrides that name a job (rule 1): sorted, without those of COMMAND_FREE keys."""
    return tuple(sorted(o for o in overrides if not _under(override_key(o), COMMAND_FREE)))


def job_digest(overrides: Iterable[str]) -> str:
    """12 hex digits naming a job by its override identity: folders that hold a job's result outside Hydra's job
    numbers (restored from an archive, or moved aside by a later launch) are named by it."""
    return hashlib.sha1(json.dumps(list(override_identity(overrides))).encode()).hexdigest()[:12]


def _canonical(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return json.dumps(str(value))  # run.json stores nan / inf as strings
        if value.is_integer():
            value = int(value)
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return json.dumps(value, sort_keys=True, default=str)


def identity_view(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A resolved config as {dotted key: canonical JSON}, the CONFIG_FREE keys left out."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if _under(dotted, CONFIG_FREE):
            continue
        if isinstance(value, Mapping) and value:
            flat.update(identity_view(value, f"{dotted}."))
        else:
            flat[dotted] = _canonical(value)
    return flat


def _set_by(key: str, overrides: Iterable[str]) -> bool:
    """Whether the overrides set `key`: `key=...`, or a mapping above it (`divergence={factor: 10}`)."""
    for override in overrides:
        name, _, value = override.partition("=")
        name = name.lstrip("+~")
        if key == name or (key.startswith(f"{name}.") and value.lstrip().startswith("{")):
            return True
    return False


def config_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], overrides: Iterable[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """The keys in which two resolved configs differ (rules 2 and 3), as {key: (old, new)}; a key one side lacks
    shows as None there. Empty: the same job, given equal override identities."""
    overrides = list(overrides)
    a, b = identity_view(old), identity_view(new)
    differ = {}
    for key in sorted(a.keys() | b.keys()):
        if key in a and key in b:
            if a[key] != b[key]:
                differ[key] = (json.loads(a[key]), json.loads(b[key]))
        elif _set_by(key, overrides):
            differ[key] = (json.loads(a[key]) if key in a else None, json.loads(b[key]) if key in b else None)
    return differ


def job_differences(
    record: Mapping[str, Any], config: Mapping[str, Any], overrides: Iterable[str]
) -> dict[str, tuple[Any, Any]] | None:
    """How a run record differs from the job (`config` resolved, `overrides` as launched): None when it is another
    job's (other overrides), else the differing config keys, {} for the same job."""
    overrides = list(overrides)
    if override_identity(record.get("overrides") or []) != override_identity(overrides):
        return None
    return config_differences(record.get("config") or {}, config, overrides)


def same_job(record: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two run records are of one job (both as written, either possibly older)."""
    return job_differences(record, other.get("config") or {}, other.get("overrides") or []) == {}


def describe(differences: Mapping[str, tuple[Any, Any]], limit: int = 6) -> str:
    """`trainer.max_steps: 4 -> 6, task.n_train: 64 -> 128` (the first `limit` keys, then how many more)."""
    shown = [f"{k}: {json.dumps(old)} -> {json.dumps(new)}" for k, (old, new) in list(differences.items())[:limit]]
    more = len(differences) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
