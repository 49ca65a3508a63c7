"""Weights & Biases setup: one run per job, offline unless asked otherwise, never blocking training.

W&B is the dashboard, not the source of truth (that is `run.json`), so everything here degrades gracefully: if an
online run cannot start (no network, no login), the job falls back to an offline run that `wandb sync` can upload
later. Lightning's `WandbLogger` silently *reuses* a run left open in the same process, which would merge
consecutive multirun jobs into one W&B run; `start_run` finishes any such run first.

Under `wandb agent` (sweeps/wandb/), the agent names a params file in `WANDB_SWEEP_PARAM_PATH`
(`wandb_version: 1`, then `<name>: {value: <v>}` per parameter) and passes the same values on the command line,
which Hydra composes. W&B would merge that file over the run's config as locked keys, so `model: gru` would
replace the whole composed `model` node; `start_run` reads the file itself, keeps it from W&B, and records the
parameters under `sweep_params` instead, next to the full resolved config.

Each job has one W&B run across retries: its id is derived from the job's output directory (`job_run_id`) and
opened with `resume="allow"`, so online a relaunched job continues its run (resumed from its last checkpoint, it
logs no step twice: tracking/step_log.py); a job rerun from scratch gets a run of its own. Offline, every attempt
writes its own `wandb/offline-run-<time>-<id>/` with that same id; `wandb sync --id <id> <those folders>` uploads
them into the one run in order of start time. Under an agent, the agent's `WANDB_RUN_ID` wins (its sweep tracks
runs by it).

Charts get `trainer/global_step` as their x axis (`define_metrics`; Lightning defines none for a run it was handed),
and at the end `finish_run` makes the summary say what run.json says: the validation metrics of the tested
checkpoint (`best_val`, not the last epoch), the test metrics, the status and the solve fields. W&B's own
`define_metric(summary="min")` is not used for that: it turns the summary value into `{"min": v}`, which panels and
`rnnbench-report --source wandb` would not read as the metric, and it would pick each metric's best epoch separately.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import wandb
import yaml
from pytorch_lightning.loggers import WandbLogger

from rnnbench.tracking.run_record import SUPERSEDED_DIR

log = logging.getLogger(__name__)
MODES = ("offline", "online", "disabled")
STEP_METRIC = "trainer/global_step"  # what Lightning's WandbLogger adds to every row it logs
STEPPED = ("train/*", "val/*", "diag/*", "perf/*", "test/*")
RECORD_SUMMARY = (  # run.json fields copied into the summary as they are
    "status",
    "stage",
    "solved",
    "steps_to_solve",
    "max_steps",
    "diverged_at_step",
    "beats_baseline",
    "num_parameters",
    "train_time_s",
    "peak_memory_mb",
    "clip_fraction",
    "tuning",
    "best_val",  # nested, as run.json has it (rnnbench-report --source wandb reads it back)
    "device",  # nested: accelerator, name, CUDA / cuDNN versions and settings, precision, threads
    "time_loops",  # compiled | python | null: the custom path's time loops in this run (models/fast_loops.py)
)
SWEEP_PARAMS_KEY = "sweep_params"  # the agent's parameters, as the agent named them: {"model": "gru", "seed": 0}


def agent_parameters() -> dict[str, Any]:
    """The parameters `wandb agent` chose for this run, from the params file it names; {} outside an agent."""
    path = os.environ.get(wandb.env.SWEEP_PARAM_PATH)
    if not path or not Path(path).is_file():
        return {}
    params = yaml.safe_load(Path(path).read_text()) or {}
    return {k: v["value"] for k, v in params.items() if isinstance(v, dict) and "value" in v}


def job_run_id(save_dir: Path) -> str:
    """A W&B run id that is the same for every attempt of the job in `save_dir` (a resumed one continues the run)
    and differs between jobs; a job started afresh over earlier attempts (set aside in `superseded/<n>/`, see
    training/resume.py) gets a new one, so its steps never land in the history of the run it replaces."""
    aside = save_dir / SUPERSEDED_DIR
    fresh_starts = sum(1 for p in aside.iterdir() if p.is_dir()) if aside.is_dir() else 0
    key = str(save_dir.resolve()) + (f"#{fresh_starts}" if fresh_starts else "")
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _settings(init_timeout: float) -> wandb.Settings:
    """Quiet, fast settings: no system-metrics sampler for tiny runs, no console capture, no code upload."""
    return wandb.Settings(
        x_disable_stats=True,
        console="off",
        silent=True,
        save_code=False,
        disable_git=True,  # run.json records the git SHA itself
        init_timeout=init_timeout,
    )


def start_run(
    save_dir: Path,
    project: str,
    name: str,
    group: str,
    job_type: str,
    tags: list[str],
    config: dict[str, Any],
    mode: str = "offline",
    entity: str | None = None,
    init_timeout: float = 30.0,
    run_id: str | None = None,
) -> wandb.sdk.wandb_run.Run:
    """Start (or resume) this job's W&B run, finishing any left open; fall back to offline if online init fails."""
    if mode not in MODES:
        raise ValueError(f"logger.mode must be one of {', '.join(MODES)}, got {mode!r}")
    if wandb.run is not None:
        wandb.finish()
    sweep = agent_parameters()
    os.environ.pop(wandb.env.SWEEP_PARAM_PATH, None)  # read before W&B's setup, which would lock them over config
    if sweep:
        config = {**config, SWEEP_PARAMS_KEY: sweep}
    save_dir.mkdir(parents=True, exist_ok=True)
    kwargs = dict(
        dir=str(save_dir),
        project=project,
        entity=entity,
        name=name,
        group=group,
        job_type=job_type,
        tags=tags,
        config=config,
        id=None if os.environ.get(wandb.env.RUN_ID) or os.environ.get(wandb.env.SWEEP_ID) else run_id,
        resume="allow",
        reinit="finish_previous",
        settings=_settings(init_timeout),
    )
    try:
        return wandb.init(mode=mode, **kwargs)
    except Exception as err:
        if mode != "online":
            raise
        log.warning("W&B online init failed (%s); logging offline instead, upload later with `wandb sync`", err)
        return wandb.init(mode="offline", **kwargs)


def wandb_logger(run: wandb.sdk.wandb_run.Run) -> WandbLogger:
    """Wrap a started run for Lightning; the metrics namespace stays ours (`train/loss`, `val/mse`, ...)."""
    return WandbLogger(experiment=run, log_model=False)


def run_info(run: wandb.sdk.wandb_run.Run) -> dict[str, Any]:
    """The identifiers run.json keeps so a report can find the W&B run again."""
    return {
        "id": run.id,
        "name": run.name,
        "dir": str(Path(run.dir).parent),
        "mode": run.settings.mode,
        "project": run.project,
        "group": run.group,
    }


def earlier_attempts(run: wandb.sdk.wandb_run.Run) -> list[Path] | None:
    """The offline folders of this run's earlier attempts (`offline-run-<time>-<id>/` beside its own); None online."""
    if run.settings.mode != "offline":
        return None
    own = Path(run.dir).parent
    return sorted(p for p in own.parent.glob(f"offline-run-*-{run.id}") if p != own)


def define_metrics(run: wandb.sdk.wandb_run.Run) -> None:
    """Plot every metric family against the optimiser step, not W&B's internal `_step`."""
    run.define_metric(STEP_METRIC)
    for pattern in STEPPED:
        run.define_metric(pattern, step_metric=STEP_METRIC)


def record_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The W&B summary a run record implies: best_val's `val/*` (the tested checkpoint) at the top level and
    `best_val` whole, the test metrics, `baseline/*` and the record's status and solve fields."""
    summary = {k: v for k, v in (record.get("best_val") or {}).items() if k.startswith("val/")}
    summary |= record.get("test") or {}
    summary |= {f"baseline/{k}": v for k, v in (record.get("baseline") or {}).items()}
    summary |= {k: record[k] for k in RECORD_SUMMARY if k in record}
    return summary


def log_checkpoint(run: wandb.sdk.wandb_run.Run, record: dict[str, Any]) -> None:
    """The tested checkpoint as a `model` artifact (alias `best`), with the scores it got as metadata."""
    artifact = wandb.Artifact(
        f"model-{run.id}",
        type="model",
        metadata={k: record.get(k) for k in ("task", "experiment", "best_val", "test", "overrides")},
    )
    artifact.add_file(record["checkpoint"], name="best.ckpt")
    run.log_artifact(artifact, aliases=["best"])


def finish_run(run: wandb.sdk.wandb_run.Run, record: dict[str, Any]) -> None:
    """Write the record's summary into the run, log the tested checkpoint if `logger.log_checkpoint` asks for it,
    and close the run, failed unless the record says finished."""
    run.summary.update(record_summary(record))
    wanted = (record.get("config") or {}).get("logger", {}).get("log_checkpoint")
    if wanted and record.get("status") == "finished" and record.get("checkpoint"):
        log_checkpoint(run, record)
    run.finish(exit_code=0 if record.get("status") == "finished" else 1)
