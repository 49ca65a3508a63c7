"""One training job, top to bottom: config -> task + model -> Lightning fit/test -> W&B + run.json.

`train` is what `rnnbench-train` runs for each Hydra job and what the tests call with composed configs; it takes
the output directory explicitly so it needs no Hydra runtime.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import WandbLogger

from rnnbench.models import fast_loops
from rnnbench.study.selection import apply_selection
from rnnbench.tasks.base import SequenceTask
from rnnbench.tracking.device import device_record
from rnnbench.tracking.run_record import RECORD_NAME, git_dirty, git_sha, now_stamp, versions
from rnnbench.tracking.step_log import LOG_NAME, StepLog, earlier_steps
from rnnbench.tracking.wandb_run import define_metrics, earlier_attempts, finish_run, run_info
from rnnbench.training import allocator
from rnnbench.training.callbacks import RunRecorder
from rnnbench.training.diagnostics import from_config as diagnostics_from_config
from rnnbench.training.module import SequenceModule
from rnnbench.training.resume import CHECKPOINT_DIR, LAST, Resume, carry_over
from rnnbench.training.solve import SolveTracker

log = logging.getLogger(__name__)

NOISE = (  # third-party chatter that says nothing about the run; real warnings still show
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*does not have many workers.*",  # data is in memory; worker processes would only add start-up time
    r".*smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",  # a resumed job's own checkpoints/ (training/resume.py)
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


STAGES = ("tune", "eval")  # or null: as eval, outside a study


def checkpoint_monitor(task: SequenceTask, metric: str | None) -> tuple[str, str]:
    """(logged key, mode) that picks the tested checkpoint: the task's primary validation metric in its direction by
    default; `metric` names another (`loss`, lowest; any other as `name:min` or `name:max`)."""
    names = task.metric_names()
    name, _, mode = (metric or task.primary_metric).partition(":")
    mode = mode or {"loss": "min", task.primary_metric: "max" if task.higher_is_better else "min"}.get(name, "")
    if name not in names or mode not in ("min", "max"):
        raise ValueError(
            f"checkpoint_metric must be null (the primary metric, {task.primary_metric}), loss, or "
            f"<metric>:min|max with a metric of task {task.label} ({', '.join(names)}), got {metric!r}"
        )
    return f"val/{name}", mode


def check_protocol(cfg: DictConfig, task: SequenceTask) -> None:
    """The evaluation-protocol keys, against the built task: `stage`, `checkpoint_metric` and the task's `solve`."""
    if cfg.get("stage") not in (None, *STAGES):
        raise ValueError(f"stage must be null, {' or '.join(STAGES)}, got {cfg.get('stage')!r}")
    checkpoint_monitor(task, cfg.get("checkpoint_metric"))
    try:
        task.check_solve()
    except ValueError as err:
        raise ValueError(f"task.{err}") from err


def train(
    cfg: DictConfig, output_dir: Path, overrides: list[str] | None = None, resume: Resume | None = None
) -> dict[str, Any]:
    """Train and test one (model, task) pair, or finish an earlier attempt of it from its last checkpoint
    (`resume`, chosen by training/resume.py); returns the final run record (also written to run.json)."""
    overrides = list(overrides or [])
    cfg, tuning = apply_selection(cfg, overrides)  # a study's eval job: its group's tuned value, before any build
    quiet_third_party()
    output_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)  # jobs run side by side (budget=cpu): one core each, not oversubscribed
    # Vanishing gradients underflow into denormal floats, which x86 CPUs compute 2-5x slower (measured: rnn at T=200
    # 52 -> 20 ms a step, gru 117 -> 42): flushing them to zero changes only values below 1.2e-38 in float32.
    torch.set_flush_denormal(True)
    malloc = allocator.tune()  # large step buffers stay in the heap (training/allocator.py: measured why)
    get_class(cfg.task._target_).check_model_class(get_class(cfg.model._target_))  # before any data is read
    task = instantiate(cfg.task)
    check_protocol(cfg, task)
    if cfg.get("stage") == "tune":
        task.baseline_split = "val"  # tuning never reads the test split, not even for a data-dependent baseline
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
        "malloc": malloc,
        "baseline": task.baseline(),
        "baseline_split": task.baseline_split,
        "primary_metric": task.primary_metric,
        "perfect": task.perfect,  # the primary metric's best value (an instance's: counting's depends on its range)
        "higher_is_better": task.higher_is_better,
        "stage": cfg.get("stage"),
        "tuning": tuning,
        "started_at": now_stamp(),
    }
    record["git_dirty"] = git_dirty()  # the checkout git_sha names has uncommitted changes to tracked files
    resumed_at = None
    if resume is not None:  # the history, solve state and time trained up to the checkpoint's step
        attempt = {k: record[k] for k in ("started_at", "git_sha", "git_dirty")}
        resumed_at = carry_over(record, resume, attempt)
    loops_before = fast_loops.calls()  # which time loops the custom path ran in this run (compiled or Python)
    solve = SolveTracker(task.solve, record, stop_on_solve=bool(cfg.get("stop_on_solve")))
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
            floors = earlier_steps(output_dir / LOG_NAME, earlier_attempts(wandb_run)) if resume else {}
            StepLog(output_dir / LOG_NAME, floors).attach(logger)  # resumed: no (metric, step) logged twice
            define_metrics(wandb_run)
            wandb_run.summary.update({"num_parameters": module.num_parameters})
            wandb_run.summary.update({f"baseline/{k}": v for k, v in task.baseline().items()})

        callbacks: list[pl.Callback] = [solve, recorder]
        monitor, mode = checkpoint_monitor(task, cfg.get("checkpoint_metric"))
        folder = output_dir / CHECKPOINT_DIR
        kept = {"dirpath": folder, "enable_version_counter": False}  # one file each, replaced in place
        checkpoint = ModelCheckpoint(filename="best", monitor=monitor, mode=mode, **kept)
        # `last`, for a relaunch to resume from: no monitor, so every validation check replaces it (save_last=True
        # writes only at checks that improve the monitor). After `best` in the list, so it holds best's state as of
        # that check, restored on resume. Not on an exception (save_on_exception): Lightning's loops do not restart
        # cleanly from mid-batch state (measured: resumed from an exception at step 6, it validated at step 7, not
        # 6), so an attempt that failed or was interrupted resumes from its last check.
        last = ModelCheckpoint(filename=Path(LAST).stem, **kept)
        if cfg.checkpoint:
            callbacks += [checkpoint, last]
        if cfg.trainer.get("enable_progress_bar", True):
            callbacks.append(RichProgressBar(leave=True))
        diagnostics = diagnostics_from_config(cfg.diagnostics, body)
        if diagnostics is not None:
            if resume is not None:
                diagnostics.resume([d for d in resume.record.get("diagnostics") or [] if d["step"] <= resumed_at])
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
        record["device"] = device_record(trainer.strategy.root_device, trainer.precision)  # saved at fit start
        ckpt_path = None if resume is None else str(resume.checkpoint)
        trainer.fit(module, datamodule=task, ckpt_path=ckpt_path, weights_only=True)
        if record["status"] == "running":
            # the validation metrics of the model tested: the best check's, or without checkpoints the last one's
            checks = record["history"] if cfg.checkpoint else record["history"][-1:]
            ended = {
                "best_val": _best_val(checks, monitor, mode),
                "clip_fraction": module.clip_count / max(trainer.global_step, 1),
                "checkpoint": checkpoint.best_model_path or None,
            }
            if cfg.get("stage") != "tune":  # tuning is scored on validation only: the test split is never built
                best = (checkpoint.best_model_path or None) if cfg.checkpoint else None  # best of every attempt
                tested = trainer.test(module, datamodule=task, ckpt_path=best, verbose=False, weights_only=True)[0]
                ended["test"] = {k: float(v) for k, v in tested.items()}
                primary = ended["test"].get(f"test/{task.primary_metric}")
                ended["beats_baseline"] = None if primary is None else task.beats_baseline(primary)
            recorder.save(status="finished", **ended)
    except BaseException as err:
        if record["status"] == "running":  # failures Lightning's on_exception did not see (set-up, testing glue)
            recorder.fail(err)
        raise
    finally:
        recorder.save(finished_at=now_stamp(), time_loops=fast_loops.loops_since(loops_before))
        if wandb_run is not None:
            finish_run(wandb_run, record)  # the summary says what run.json says
    return record


def _best_val(history: list[dict[str, Any]], monitor: str, mode: str) -> dict[str, float]:
    """Validation metrics, epoch and step of the check ModelCheckpoint keeps (the tested one): the best `monitor`
    in `mode`, the earliest on ties, non-finite values never."""
    scored = [h for h in history if math.isfinite(h.get(monitor, math.nan))]
    if not scored:
        return {}
    sign = 1 if mode == "min" else -1
    best = min(scored, key=lambda h: sign * h[monitor])
    return {k: v for k, v in best.items() if k.startswith("val/")} | {"epoch": best["epoch"], "step": best["step"]}
