"""`GradientDiagnostics`: watch the seed's vanishing-gradient claim happen during training.

Every `every_n_steps` optimiser steps (and once before the first) the callback probes a fixed batch (the first
validation batch, cut to `probe_batch_size` examples) with `models.probe.probe`: ||dL/dh_t|| (and ||dL/dc_t|| for
the LSTM family) over every step t of every layer for a loss read at the last step, the forget/input/output (GRU:
reset/update) gate means and saturation fractions, and the cell-state magnitude. Next to them it records the global
gradient norm before clipping and the clipping count that `SequenceModule` already keeps.

Scalars go to every Lightning logger (`diag/l{k}/grad_h_first_over_last`, `diag/l{k}/forget_mean`, ...), the
per-step curve of each layer to W&B as a line plot, and a compact entry per probe to `records`, which `train`
stores in run.json under "diagnostics". Off by default (`diagnostics.enabled`): when off, no callback exists.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import wandb
from omegaconf import DictConfig
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor, nn

from rnnbench.models.probe import ProbeResult, probe
from rnnbench.models.recurrent import Recurrent
from rnnbench.tasks.base import Batch, SequenceTask


def last_step_loss(task: SequenceTask, body: nn.Module, head: nn.Module, batch: Batch) -> Tensor:
    """The task's loss at the last time step: the task's own loss for readout 'last'; for readout 'all', its loss
    on the final step alone (`final_step`)."""
    pred = task.predict(body, head, batch)
    if task.readout == "all":
        batch = final_step(batch, steps=pred.shape[1])
        pred = pred[:, -1:]
    return task.loss(pred, batch)


def final_step(batch: Batch, steps: int) -> Batch:
    """Cut every per-step tensor of a batch (dim 1 of size `steps`) to its last step. Boolean per-step masks become
    True there: the probe needs a loss at the final step even where the task leaves that step unscored (timing's
    msd scores only spike steps), and any target value gives the same gradient-vs-lag structure."""

    def cut(value: Any) -> Any:
        if not isinstance(value, Tensor) or value.dim() < 2 or value.shape[1] != steps:
            return value
        value = value[:, -1:]
        return torch.ones_like(value) if value.dtype == torch.bool else value

    return {key: cut(value) for key, value in batch.items()}


def _sig4(values: Tensor | list[float]) -> list[float]:
    """Round to 4 significant digits for a compact run.json."""
    return [float(f"{v:.4g}") for v in (values.tolist() if isinstance(values, Tensor) else values)]


def compact(result: ProbeResult) -> dict[str, Any]:
    """Per-layer curves (forward direction) and gate statistics of one probe, rounded for run.json."""
    entry: dict[str, Any] = {
        "probe_loss": float(f"{result.loss:.4g}"),
        "grad_h": [_sig4(curve) for curve in result.grad_h[:, 0]],
    }
    if result.grad_c is not None:
        entry["grad_c"] = [_sig4(curve) for curve in result.grad_c[:, 0]]
        entry["cell_abs_mean"] = _sig4(result.cell_abs_mean)
    if any(result.gates):
        entry["gates"] = [dict(zip(stats, _sig4(list(stats.values())), strict=True)) for stats in result.gates]
    return entry


def scalars(result: ProbeResult) -> dict[str, float]:
    """The probe's headline numbers per layer: first-over-last gradient ratios, gate means and saturation."""
    out: dict[str, float] = {}
    for k, stats in enumerate(result.gates):
        out[f"diag/l{k}/grad_h_first_over_last"] = result.first_over_last(k)
        if result.grad_c is not None:
            out[f"diag/l{k}/grad_c_first_over_last"] = result.first_over_last(k, cell=True)
            out[f"diag/l{k}/cell_abs_mean"] = result.cell_abs_mean[k]
        out.update({f"diag/l{k}/{name}": value for name, value in stats.items()})
    return out


class GradientDiagnostics(pl.Callback):
    """Probe gradients-vs-lag and gate statistics on a fixed batch every N training steps."""

    def __init__(self, every_n_steps: int = 50, probe_batch_size: int = 16) -> None:
        for name, value in (("every_n_steps", every_n_steps), ("probe_batch_size", probe_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.every_n_steps = every_n_steps
        self.probe_batch_size = probe_batch_size
        self.records: list[dict[str, Any]] = []  # one compact entry per probe, in step order
        self.batch: Batch | None = None  # the fixed probe batch, taken at train start
        self._last_step = -1

    def measure(self, pl_module: pl.LightningModule) -> ProbeResult:
        """Probe the module's body on the fixed batch in eval mode; parameters' grads and optimiser stay as they are."""
        batch = {k: v.to(pl_module.device) for k, v in self.batch.items()}
        was_training = pl_module.training
        pl_module.eval()
        try:
            return probe(pl_module.body, lambda body: last_step_loss(pl_module.task, body, pl_module.head, batch))
        finally:
            pl_module.train(was_training)

    def resume(self, records: list[dict[str, Any]]) -> None:
        """Continue an earlier attempt's probes (those up to the checkpoint resumed from): no step probed twice."""
        self.records.extend(records)
        if records:
            self._last_step = records[-1]["step"]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with torch.random.fork_rng(devices=[]):  # a DataLoader iterator draws a seed: keep training's RNG untouched
            first = next(iter(trainer.datamodule.val_dataloader()))
        self.batch = {k: v[: self.probe_batch_size] for k, v in first.items()}
        self._probe(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._probe(trainer, pl_module)

    def _probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step:  # gradient accumulation: several batches per optimiser step
            return
        self._last_step = step
        result = self.measure(pl_module)
        grad_norm = getattr(pl_module, "grad_norm", None)  # the module's last one, before clipping
        self.records.append(
            {
                "step": step,
                "epoch": trainer.current_epoch,
                **compact(result),
                "grad_norm": None if grad_norm is None else float(f"{float(grad_norm):.4g}"),
                "clip_count": pl_module.clip_count,  # optimiser steps so far whose norm exceeded grad_clip
            }
        )
        for logger in trainer.loggers:
            logger.log_metrics(scalars(result), step=step)
            if isinstance(logger, WandbLogger):
                self._log_curves(logger, result, step)

    @staticmethod
    def _log_curves(logger: WandbLogger, result: ProbeResult, step: int) -> None:
        """One W&B line plot of ||dL/dh_t|| over t per probe, a line per layer (forward direction)."""
        steps = list(range(result.grad_h.shape[-1]))
        plot = wandb.plot.line_series(
            xs=steps,
            ys=[curve.tolist() for curve in result.grad_h[:, 0]],
            keys=[f"layer {k}" for k in range(result.grad_h.shape[0])],
            title=f"||dL/dh_t|| at step {step} (loss at t = {steps[-1]})",
            xname="t",
        )
        logger.log_metrics({"diag/grad_h_vs_t": plot}, step=step)  # WandbLogger adds trainer/global_step


def from_config(node: DictConfig, body: nn.Module) -> GradientDiagnostics | None:
    """The callback a run's `diagnostics:` block asks for, or None when it is disabled; bad values raise ValueError."""
    enabled = node.get("enabled")
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be true or false, got {enabled!r}")
    if not enabled:
        return None
    if not isinstance(body, Recurrent):
        raise ValueError(f"enabled=true needs a Recurrent body, got {type(body).__name__}")
    return GradientDiagnostics(node.get("every_n_steps"), node.get("probe_batch_size"))
