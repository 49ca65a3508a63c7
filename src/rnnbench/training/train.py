"""One training job, top to bottom: config -> task + model -> Lightning fit/test -> W&B + run.json.

`train` is what `rnnbench-train` runs for each Hydra job and what the tests call with composed configs; it takes
the output directory explicitly so it needs no Hydra runtime.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import WandbLogger

from rnnbench.tracking.run_record import RECORD_NAME, git_sha, versions
from rnnbench.tracking.wandb_run import run_info
from rnnbench.training.callbacks import RunRecorder
from rnnbench.training.diagnostics import from_config as diagnostics_from_config
from rnnbench.training.module import SequenceModule

log = logging.getLogger(__name__)

NOISE = (  # third-party chatter that says nothing about the run; real warnings still show
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*does not have many workers.*",  # data is in memory; worker processes would only add start-up time
    r".*smaller than the logging interval.*",
)


def quiet_third_party() -> None:
    """Silence Lightning's start-up tips and known-harmless warnings so the progress bar and results stand out."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)


def run_name(overrides: list[str]) -> str:
    """A readable W&B run name from the job's own overrides (hydra.* settings left out)."""
    own = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    return ",".join(own) or "defaults"


def run_tags(cfg: DictConfig) -> list[str]:
    """W&B tags: the compared factors named in `tags`, plus the model and task chosen."""
    return [*cfg.tags, f"cell:{cfg.model.get('cell', 'seq2seq')}", f"task:{cfg.task._target_.rsplit('.', 1)[-1]}"]


def train(cfg: DictConfig, output_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train and test one (model, task) pair; returns the final run record (also written to run.json)."""
    overrides = list(overrides or [])
    quiet_third_party()
    output_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)  # jobs run side by side (budget=cpu): one core each, not oversubscribed
    get_class(cfg.task._target_).check_model_class(get_class(cfg.model._target_))  # before any data is read
    task = instantiate(cfg.task)
    body = instantiate(cfg.model, **task.model_kwargs())
    module = SequenceModule(body, task, cfg.optim)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    record: dict[str, Any] = {
        "status": "running",
        "task": task.label,
        "config": resolved,
        "overrides": overrides,
        "seed": cfg.seed,
        "experiment": cfg.experiment,
        "output_dir": str(output_dir),
        "git_sha": git_sha(),
        "versions": versions(),
        "baseline": task.baseline(),
        "primary_metric": task.primary_metric,
        "higher_is_better": task.higher_is_better,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    recorder = RunRecorder(output_dir / RECORD_NAME, record)
    recorder.save()
    wandb_run = None
    try:
        # _partial_: the config holds the logger's options; the job's identity is passed as plain Python values.
        logger = instantiate(cfg.logger, _partial_=True)(
            save_dir=output_dir,
            name=run_name(overrides),
            group=cfg.experiment,
            job_type=task.label,
            tags=run_tags(cfg),
            run_config=resolved,
        )
        wandb_run = logger.experiment if isinstance(logger, WandbLogger) else None
        if wandb_run is not None:
            record["wandb"] = run_info(wandb_run)
            wandb_run.summary.update({"num_parameters": module.num_parameters})
            wandb_run.summary.update({f"baseline/{k}": v for k, v in task.baseline().items()})

        callbacks: list[pl.Callback] = [recorder]
        checkpoint = ModelCheckpoint(
            dirpath=output_dir / "checkpoints", filename="best", monitor="val/loss", mode="min"
        )
        if cfg.checkpoint:
            callbacks.append(checkpoint)
        if cfg.trainer.get("enable_progress_bar", True):
            callbacks.append(RichProgressBar(leave=True))
        diagnostics = diagnostics_from_config(cfg.diagnostics, body)
        if diagnostics is not None:
            record["diagnostics"] = diagnostics.records  # the same list: saved with the record as probes append to it
            callbacks.append(diagnostics)
        trainer: pl.Trainer = instantiate(
            cfg.trainer,
            logger=logger,
            callbacks=callbacks,
            default_root_dir=str(output_dir),
            gradient_clip_val=cfg.optim.get("grad_clip"),
            enable_checkpointing=bool(cfg.checkpoint),
        )
        trainer.fit(module, datamodule=task)
        if record["status"] == "running":
            best = "best" if cfg.checkpoint and checkpoint.best_model_path else None
            tested = trainer.test(module, datamodule=task, ckpt_path=best, verbose=False, weights_only=True)[0]
            final = {k: float(v) for k, v in tested.items()}
            primary = final.get(f"test/{task.primary_metric}")
            recorder.save(
                status="finished",
                test=final,
                best_val=_best_val(record["history"]),
                beats_baseline=None if primary is None else task.beats_baseline(primary),
                clip_fraction=module.clip_count / max(trainer.global_step, 1),
                checkpoint=checkpoint.best_model_path or None,
            )
    except BaseException as err:
        if record["status"] == "running":  # failures Lightning's on_exception did not see (set-up, testing glue)
            recorder.fail(err)
        raise
    finally:
        recorder.save(finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if wandb_run is not None:
            wandb_run.summary.update(record.get("test", {}))
            wandb_run.summary.update({k: record.get(k) for k in ("status", "train_time_s", "peak_memory_mb")})
            wandb_run.finish(exit_code=0 if record["status"] == "finished" else 1)
    return record


def _best_val(history: list[dict[str, Any]]) -> dict[str, float]:
    """Validation metrics of the epoch with the lowest val/loss (the checkpoint that gets tested)."""
    scored = [h for h in history if "val/loss" in h]
    if not scored:
        return {}
    best = min(scored, key=lambda h: h["val/loss"])
    return {k: v for k, v in best.items() if k.startswith("val/")} | {"epoch": best["epoch"]}
