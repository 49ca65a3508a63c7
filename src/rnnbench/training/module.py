"""The one LightningModule: a recurrent body (from `conf/model`) under a task's head, loss and metrics.

Everything task-specific (readout, loss, metrics) is delegated to the task, and everything architecture-specific
to the body, so every (model, task) pair trains through this same code with the same optimiser and budget: the
fairness the comparisons rely on.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from rnnbench.models.params import count_parameters
from rnnbench.tasks.base import Batch, SequenceTask


def body_output_size(body: nn.Module) -> int:
    """Features per step that the body hands to the head (dirs * H_last for a Recurrent stack)."""
    return getattr(body, "output_size", None) or body.num_directions * body.hidden_size


class SequenceModule(pl.LightningModule):
    """Train any recurrent body on any compatible task."""

    def __init__(self, body: nn.Module, task: SequenceTask, optim: DictConfig) -> None:
        super().__init__()
        task.check_model(body)
        self.body = body
        self.head = task.make_head(body_output_size(body))
        self.task = task
        self.optim_cfg = optim
        # Task metrics on held-out data only: training progress is read from train/loss, and skipping
        # per-batch metric updates keeps the training step as cheap as the body allows.
        self.metrics = nn.ModuleDict({split: task.make_metrics() for split in ("val", "test")})
        self.clip_count = 0  # optimiser steps whose gradient norm exceeded the clipping threshold
        self.grad_norm: float | None = None  # the last optimiser step's global gradient norm, before clipping
        self._loss_sum: Tensor | float = 0.0  # sum of loss * examples since the last validation check, on its device
        self._examples = 0

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of body + head, the figure the parameter comparisons use."""
        return count_parameters(self)

    def forward(self, batch: Batch) -> Tensor:
        return self.task.predict(self.body, self.head, batch)

    def _step(self, batch: Batch, split: str) -> Tensor:
        pred = self(batch)
        loss = self.task.loss(pred, batch)
        batch_size = batch["y"].shape[0]
        if split in self.metrics:
            self.metrics[split].update(*self.task.evaluate(self.body, self.head, batch, pred.detach()))
            self.log(f"{split}/loss", loss, prog_bar=split == "val", on_epoch=True, batch_size=batch_size)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """The train loss is summed here and its mean since the previous validation check logged at the next one
        (`on_validation_epoch_end`): a `self.log` per step costs Lightning a few ms of bookkeeping, a third of a
        small model's whole step on CPU."""
        loss = self._step(batch, "train")
        examples = batch["y"].shape[0]
        self._loss_sum = self._loss_sum + loss.detach() * examples  # no host sync per step
        self._examples += examples
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_metrics(self, split: str) -> None:
        values = self.metrics[split].compute()
        self.log_dict({f"{split}/{k}": v for k, v in values.items()}, prog_bar=split == "val")
        self.metrics[split].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")
        if self._examples:  # the training steps since the previous check: its history entry's train/loss
            self.log("train/loss", float(self._loss_sum) / self._examples, prog_bar=True)
            self._loss_sum, self._examples = 0.0, 0

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep the global gradient norm before clipping (the exploding-gradient signal of the seed notes) and send
        it to the loggers every `log_every_n_steps` steps, straight, without a per-step `self.log`."""
        norms = [p.grad.detach().norm() for p in self.parameters() if p.grad is not None]
        total = torch.linalg.vector_norm(torch.stack(norms)).item() if norms else 0.0
        self.grad_norm = total if math.isfinite(total) else float("nan")
        clip = self.optim_cfg.get("grad_clip")
        if clip and total > clip:
            self.clip_count += 1
        if self.global_step % self.trainer.log_every_n_steps == 0:
            for logger in self.loggers:
                logger.log_metrics({"train/grad_norm": self.grad_norm}, step=self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The counters a run resumed from this checkpoint continues: clipped steps, the train loss since the check."""
        loss_sum = float(self._loss_sum)
        checkpoint["rnnbench"] = {"clip_count": self.clip_count, "loss_sum": loss_sum, "examples": self._examples}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rnnbench") or {}
        self.clip_count = int(state.get("clip_count", self.clip_count))
        self._loss_sum, self._examples = float(state.get("loss_sum", 0.0)), int(state.get("examples", 0))

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.optim_cfg.optimizer)(self.parameters())
        if self.optim_cfg.get("scheduler") is None:
            return optimizer
        scheduler = instantiate(self.optim_cfg.scheduler)(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
