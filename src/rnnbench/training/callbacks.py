"""Callbacks that make a run's record complete: timing/throughput per validation check, divergence, and `run.json`."""

from __future__ import annotations

import math
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from rnnbench.tracking.run_record import process_identity, write_record
from rnnbench.training import allocator

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
MEMORY_SCOPES = {  # what `peak_memory_mb` means, recorded next to it as `peak_memory_scope`
    "job": "the process's resident-set high-water mark, reset when the job started (Linux): this job's own peak",
    "process": "the process's max RSS since it started: with reused workers (joblib), earlier jobs' peaks count too",
    "cuda": "the CUDA allocator's peak for this job (tensors only), reset when the job started",
}


def _vm_hwm_kib() -> int | None:
    """VmHWM (the RSS high-water mark, KiB) from /proc/self/status, where there is one."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_memory(device: torch.device | None = None) -> str:
    """Start measuring this job's peak memory; returns the scope the figure will have (see MEMORY_SCOPES).

    On Linux, writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS, so a joblib worker that ran an
    earlier, larger job reports this job's peak, not its own lifetime maximum (ru_maxrss cannot be reset). The
    heap's kept free memory goes back to the kernel first (allocator.release): with the tuned trim threshold an
    earlier job's freed buffers would otherwise stay resident and count in this job's figure."""
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda"
    allocator.release()
    if _vm_hwm_kib() is not None:
        try:
            PROC_CLEAR_REFS.write_text("5")
            return "job"
        except OSError:
            pass
    return "process"


def peak_memory_mb(device: torch.device, scope: str = "process") -> float:
    """Peak memory in MiB, in the sense of `scope` (the value `reset_peak_memory` returned)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    hwm = _vm_hwm_kib() if scope == "job" else None
    if hwm is not None:
        return hwm / 2**10
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


DEFAULT_DIVERGENCE = {"factor": 1000.0, "max_loss": None}


def divergence_bound(config: dict[str, Any] | None, baseline: dict[str, Any] | None) -> float | None:
    """The training loss above which a run counts as diverged: `divergence.max_loss` if set, else
    `divergence.factor` times the task's trivial-baseline loss (None: only a non-finite loss counts).

    Why a multiple of the baseline: a predictor that ignores its input scores the baseline loss, so a loss a
    thousand times worse is a numerical blow-up, not slow learning, on every task (an untrained model starts within
    ~100x of it even on copy_memory at T=1000, the loosest ratio among the tasks)."""
    settings = {**DEFAULT_DIVERGENCE, **((config or {}).get("divergence") or {})}
    if settings.get("max_loss") is not None:
        return float(settings["max_loss"])
    base = (baseline or {}).get("loss")
    if settings.get("factor") is None or not isinstance(base, int | float) or not math.isfinite(base) or base <= 0:
        return None
    return float(settings["factor"]) * float(base)


FAULT_ACTIONS = ("raise", "kill", "diverge")


def fault_action(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The injected fault (conf/fault/, tests only) this job gets: {"action", "at_step", "lr"}, or None."""
    fault = (config or {}).get("fault")
    if not fault:
        return None
    action = fault.get("action")
    if fault.get("seeds"):
        action = {str(k): v for k, v in fault["seeds"].items()}.get(str(config.get("seed")))
    return None if action is None else {"action": action, "at_step": fault.get("at_step", 1), "lr": fault.get("lr")}


class RunRecorder(pl.Callback):
    """Keep `run.json` current: status, history per validation check, timings, and how the run ended.

    Every training step's loss is checked: non-finite, or above `divergence_bound`, stops the run as `diverged`
    with `diverged_at_step` (the optimiser step, counted from 1, whose loss it was) in the record and W&B summary."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        self.record.setdefault("history", [])
        self._fit_start = 0.0
        self._trained_before = float(record.get("train_time_s") or 0.0)  # earlier attempts' (a resumed run)
        self._peak_before = float(record.get("peak_memory_mb") or 0.0)
        self._since = (0.0, 0)  # (time, global step) where the training time since the last check started
        self._train_s = 0.0  # training seconds (validation excluded) between the last check and this one
        self.bound = divergence_bound(record.get("config"), record.get("baseline"))
        self.memory_scope = reset_peak_memory()  # from here (task object built, no data yet) to each validation check
        self.record.setdefault("process", process_identity())  # tells a killed job (its pid gone) from a running one
        self.fault = fault_action(record.get("config"))

    def save(self, **updates: Any) -> None:
        """Merge `updates` into the record and write it atomically."""
        self.record.update(updates)
        write_record(self.path, self.record)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        if pl_module.device.type == "cuda":
            self.memory_scope = reset_peak_memory(pl_module.device)
        self.save(status="running", num_parameters=pl_module.num_parameters, peak_memory_scope=self.memory_scope)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since = (time.perf_counter(), trainer.global_step)
        if self.fault and self.fault["action"] == "diverge":
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = float(self.fault["lr"])

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        step = trainer.global_step + 1  # the step this batch is about to take, counted from 1
        if not self.fault or step != self.fault["at_step"]:
            return
        if self.fault["action"] == "raise":
            raise RuntimeError(f"injected fault (+fault) at step {step}")
        if self.fault["action"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or self.record.get("status") == "diverged":
            return
        value = float(loss)
        if math.isfinite(value) and (self.bound is None or value <= self.bound):
            return
        step = trainer.global_step  # this batch's optimiser step has run: its count is the step's number
        if math.isfinite(value):
            error = f"training loss {value:.4g} above the divergence bound {self.bound:.4g} at step {step}"
        else:
            error = f"non-finite training loss ({value}) at step {step}"
        trainer.should_stop = True
        self.save(status="diverged", diverged_at_step=step, divergence_bound=self.bound, error=error)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update({"status": "diverged", "diverged_at_step": step})

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_s = time.perf_counter() - self._since[0]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One history entry per validation check (every `trainer.val_check_interval` steps, or per epoch)."""
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        steps = trainer.global_step - self._since[1]
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, **_scalars(trainer.callback_metrics)}
        if steps > 0:
            step_s = self._train_s / steps  # data, forward, backward and optimiser: the training side only
            perf = {
                "perf/step_time_ms": 1000 * step_s,
                "perf/samples_per_s": trainer.datamodule.batch_size / step_s,
                "perf/epoch_time_s": step_s * trainer.num_training_batches,  # an epoch's training at this pace
            }
            for logger in trainer.loggers:
                logger.log_metrics(perf, step=trainer.global_step)
            entry.update(perf)
        if getattr(pl_module, "grad_norm", None) is not None:
            entry["train/grad_norm"] = pl_module.grad_norm  # the last step before the check, before clipping
        self.record["history"].append(entry)
        self.save(
            steps_completed=trainer.global_step,
            epochs_completed=trainer.global_step / trainer.num_training_batches,  # fractional under a step budget
            train_time_s=self._trained_before + time.perf_counter() - self._fit_start,
            peak_memory_mb=max(self._peak_before, peak_memory_mb(pl_module.device, self.memory_scope)),
        )
        self._since = (time.perf_counter(), trainer.global_step)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.fail(exception)

    def fail(self, exception: BaseException) -> None:
        """Record why the run stopped: interrupted (Ctrl-C, or SIGTERM: a scheduler's preemption) or failed, with the
        exception's type and message."""
        status = "interrupted" if isinstance(exception, KeyboardInterrupt | SIGTERMException) else "failed"
        self.save(status=status, error=f"{type(exception).__name__}: {exception}")
