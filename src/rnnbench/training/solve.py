"""Solve criteria and steps-to-solve: when a run has learned its task, and after how many optimiser steps.

A long-lag or timing task declares what "solved" means (`solve: {metric, op, threshold, source}` in its
conf/task/*.yaml, from the paper it follows: e.g. adding, validation MSE < 0.01). `SolveTracker` tests the criterion
at every validation check (every `trainer.val_check_interval` optimiser steps) and records the first global step at
which it held: steps-to-solve, a time to event, censored at the step budget (`max_steps`) when never met, which is
what the Kaplan-Meier "fraction solved vs steps" curves of the reports need. With `stop_on_solve` a solved run ends
at that check instead of burning the rest of its budget (studies turn it on; the checkpoint tested is then the best
one up to that step).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from rnnbench.tasks.solve import SolveCriterion


def step_budget(trainer: pl.Trainer) -> int:
    """The run's budget in optimiser steps: `max_steps`, or what `max_epochs` of the loader amount to."""
    return int(trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches)


class SolveTracker(pl.Callback):
    """Record `max_steps`, `solve`, `solved` and `steps_to_solve` in the run record; stop a solved run if asked.

    Also makes the budget's last step a validation check: Lightning validates only at multiples of
    `val_check_interval`, so a budget that is not one would otherwise end unchecked (its last steps could neither
    solve nor be tested as the best checkpoint).
    """

    def __init__(self, criterion: SolveCriterion | None, record: dict[str, Any], stop_on_solve: bool = False) -> None:
        self.criterion = criterion
        self.record = record
        self.stop_on_solve = stop_on_solve
        self.budget = 0
        record.update(  # a resumed attempt's record already holds the solve state its checkpoint had reached
            max_steps=None,  # known once fitting starts (an epoch budget needs the loader's length)
            solve=criterion.as_dict() if criterion else None,
            solved=bool(record.get("solved")) if criterion else None,
            steps_to_solve=record.get("steps_to_solve") if criterion else None,
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.budget = step_budget(trainer)
        self.record["max_steps"] = self.budget
        if self.stop_on_solve and self.record["solved"]:  # resumed after it solved (killed while testing, say)
            trainer.should_stop = True

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step >= self.budget:
            trainer.should_stop = True  # Lightning validates a stopping run at once, whatever the interval

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or self.criterion is None or self.record["solved"]:
            return
        if self.record.get("status") != "running":  # diverged (or failed) at an earlier step: a later check is moot
            return
        value = trainer.callback_metrics.get(self.criterion.key)
        if value is not None and self.criterion.met(float(value)):
            self.record.update(solved=True, steps_to_solve=trainer.global_step)
            if self.stop_on_solve:
                trainer.should_stop = True
