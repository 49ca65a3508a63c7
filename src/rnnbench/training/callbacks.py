"""Callbacks that make a run's record complete: timing/throughput per validation check, divergence, and `run.json`."""

from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from rnnbench.tracking.run_record import write_record


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this job: CUDA allocator peak on GPU, the process's max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


class RunRecorder(pl.Callback):
    """Keep `run.json` current: status, history per validation check, timings, and how the run ended."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        self.record.setdefault("history", [])
        self._fit_start = 0.0
        self._since = (0.0, 0)  # (time, global step) where the training time since the last check started
        self._train_s = 0.0  # training seconds (validation excluded) between the last check and this one

    def save(self, **updates: Any) -> None:
        """Merge `updates` into the record and write it atomically."""
        self.record.update(updates)
        write_record(self.path, self.record)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self.save(status="running", num_parameters=pl_module.num_parameters)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            trainer.should_stop = True
            self.save(status="diverged", error=f"non-finite training loss at step {trainer.global_step}")

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
            train_time_s=time.perf_counter() - self._fit_start,
            peak_memory_mb=peak_memory_mb(pl_module.device),
        )
        self._since = (time.perf_counter(), trainer.global_step)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.fail(exception)

    def fail(self, exception: BaseException) -> None:
        """Record why the run stopped: interrupted (Ctrl-C) or failed, with the exception's type and message."""
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        self.save(status=status, error=f"{type(exception).__name__}: {exception}")
