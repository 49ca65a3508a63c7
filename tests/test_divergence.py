"""Divergence: a training loss that is non-finite or above the bound (a multiple of the task's baseline loss, or
an absolute `divergence.max_loss`) stops the run as `diverged` at that step, in run.json and the W&B summary."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from pytorch_lightning.loggers import WandbLogger

from rnnbench.tracking.run_record import read_record
from rnnbench.training.callbacks import RunRecorder, divergence_bound
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train

SMALL = ["trainer=smoke", "task.n_train=128", "task.n_val=64", "task.n_test=64", "task.batch_size=32"]


def test_the_bound_is_a_multiple_of_the_baseline_loss_or_an_absolute_value() -> None:
    baseline = {"loss": 1 / 6, "mse": 1 / 6}
    assert divergence_bound({"divergence": {"factor": 1000.0, "max_loss": None}}, baseline) == pytest.approx(1000 / 6)
    assert divergence_bound({"divergence": {"factor": 1000.0, "max_loss": 5.0}}, baseline) == 5.0
    assert divergence_bound({"divergence": {"factor": None, "max_loss": None}}, baseline) is None
    assert divergence_bound({}, baseline) == pytest.approx(1000 / 6)  # records of older runs: the default
    assert divergence_bound({}, {"loss": 0.0}) is None and divergence_bound(None, None) is None


def test_a_finite_blow_up_ends_diverged_at_its_step_not_finished(run_dir: Path) -> None:
    # The case: at lr=1e6 the vanilla RNN's loss stays finite (test MSE 7.8e14) and the run used to finish.
    cfg = compose_config([*SMALL, "model=rnn", "optim.optimizer.lr=1e6"])
    record = train(cfg, run_dir)
    on_disk = read_record(run_dir / "run.json")
    assert record["status"] == on_disk["status"] == "diverged"
    assert on_disk["diverged_at_step"] == 2  # step 1's loss is the untrained model's; its update blows up step 2
    assert on_disk["divergence_bound"] == pytest.approx(1000 * on_disk["baseline"]["loss"])
    assert on_disk["error"].startswith("training loss ") and "above the divergence bound" in on_disk["error"]
    assert "test" not in on_disk  # a diverged run is never tested


def test_the_wandb_summary_says_diverged_and_when(tmp_path: Path) -> None:
    wandb_logger = mock.Mock(spec=WandbLogger)
    trainer = SimpleNamespace(global_step=7, should_stop=False, loggers=[wandb_logger])
    recorder = RunRecorder(tmp_path / "run.json", {"status": "running", "baseline": {"loss": 0.5}, "config": {}})
    recorder.on_train_batch_end(trainer, None, {"loss": torch.tensor(0.4)}, None, 6)  # below 1000 x 0.5: goes on
    assert not trainer.should_stop and recorder.record["status"] == "running"
    recorder.on_train_batch_end(trainer, None, {"loss": torch.tensor(float("nan"))}, None, 7)
    assert trainer.should_stop and read_record(tmp_path / "run.json")["diverged_at_step"] == 7
    assert read_record(tmp_path / "run.json")["error"] == "non-finite training loss (nan) at step 7"
    wandb_logger.experiment.summary.update.assert_called_once_with({"status": "diverged", "diverged_at_step": 7})


def test_the_bound_is_checked_every_step_and_is_configurable(run_dir: Path) -> None:
    cfg = compose_config([*SMALL, "logger=none", "divergence.max_loss=1e-9"])
    record = train(cfg, run_dir)
    assert record["status"] == "diverged" and record["diverged_at_step"] == 1  # the very first step
    relaxed = train(compose_config([*SMALL, "logger=none", "divergence.factor=null"]), run_dir.parent / "relaxed")
    assert relaxed["status"] == "finished" and "diverged_at_step" not in relaxed


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("divergence.factor=0", "divergence.factor must be a positive number or null, got 0"),
        ("divergence.max_loss=abc", "divergence.max_loss must be a positive number or null, got 'abc'"),
        ("+divergence.bound=3", "unknown key divergence.bound; allowed keys under divergence: factor, max_loss"),
    ],
)
def test_bad_divergence_settings_are_one_line(override: str, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        preflight([override])
    assert str(info.value) == line
