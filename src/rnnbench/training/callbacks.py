"""Callbacks that make a run's record complete: per-epoch timing/throughput, divergence, and `run.json`."""

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
    """Keep `run.json` current: status, history per epoch, timings, and how the run ended."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        self.record.setdefault("history", [])
        self._epoch_start = 0.0
        self._fit_start = 0.0

    def save(self, **updates: Any) -> None:
        """Merge `updates` into the record and write it atomically."""
        self.record.update(updates)
        write_record(self.path, self.record)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self.save(status="running", num_parameters=pl_module.num_parameters)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            trainer.should_stop = True
            self.save(status="diverged", error=f"non-finite training loss at step {trainer.global_step}")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self._epoch_start
        samples = trainer.num_training_batches * trainer.datamodule.batch_size
        perf = {"perf/epoch_time_s": seconds, "perf/samples_per_s": samples / seconds}
        pl_module.log_dict(perf)
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, **_scalars(trainer.callback_metrics)}
        entry.update(perf)
        if getattr(pl_module, "grad_norm", None) is not None:
            entry["train/grad_norm"] = pl_module.grad_norm  # the epoch's last step, before clipping
        self.record["history"].append(entry)
        self.save(
            epochs_completed=trainer.current_epoch + 1,
            train_time_s=time.perf_counter() - self._fit_start,
            peak_memory_mb=peak_memory_mb(pl_module.device),
        )

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.fail(exception)

    def fail(self, exception: BaseException) -> None:
        """Record why the run stopped: interrupted (Ctrl-C) or failed, with the exception's type and message."""
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        self.save(status=status, error=f"{type(exception).__name__}: {exception}")
