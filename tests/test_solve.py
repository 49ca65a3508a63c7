"""Solve criteria, steps-to-solve, stop on solve, the tuning stage and the checkpoint metric, on tiny real runs whose
validation metric is scripted so that the step at which a criterion first holds is known in advance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from rnnbench.tasks.adding import AddingTask
from rnnbench.tasks.copy_memory import CopyMemoryTask
from rnnbench.tasks.seq2seq import Seq2SeqTask
from rnnbench.tasks.solve import SolveCriterion
from rnnbench.training.config import ConfigError, check_config, compose_config, group_options
from rnnbench.training.module import SequenceModule
from rnnbench.training.train import checkpoint_monitor, train

# 64 sequences of 16: 4 steps an epoch, so 12 steps cycle the loader 3 times; a validation check every 3 steps.
STEPS = ["trainer=smoke", "trainer.max_steps=12", "trainer.val_check_interval=3", "logger=none", "task.seq_len=5"]
STEPS += ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=16"]
MSE = {3: 0.5, 6: 0.2, 9: 0.005, 12: 0.001}  # adding solves (MSE < 0.01) at the third check, step 9


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> dict[int, float]:
    """Replace the logged val/mse (adding's criterion) by MSE[global step]; returns the script to edit."""
    script = dict(MSE)

    def log_metrics(self: SequenceModule, split: str) -> None:
        values = self.metrics[split].compute()
        self.metrics[split].reset()
        if split == "val":
            values["mse"] = torch.tensor(script.get(self.global_step, 1.0))
        self.log_dict({f"{split}/{k}": v for k, v in values.items()})

    monkeypatch.setattr(SequenceModule, "_log_metrics", log_metrics)
    return script


def run(overrides: list[str], out: Path) -> dict:
    return train(compose_config([*STEPS, *overrides]), out, overrides)


def test_steps_to_solve_is_the_first_check_that_meets_the_criterion(scripted: dict, run_dir: Path) -> None:
    record = run([], run_dir)
    assert record["status"] == "finished" and record["max_steps"] == 12
    assert [h["step"] for h in record["history"]] == [3, 6, 9, 12]
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2, 2]  # checks cross epoch boundaries
    assert record["solved"] is True and record["steps_to_solve"] == 9
    assert {k: record["solve"][k] for k in ("metric", "op", "threshold")} == {
        "metric": "mse",
        "op": "<",
        "threshold": 0.01,
    }
    assert "Hochreiter" in record["solve"]["source"]
    assert record["best_val"]["step"] == 12 and record["best_val"]["val/mse"] == pytest.approx(0.001)
    assert "test/mse" in record["test"] and record["stage"] is None


def test_stop_on_solve_ends_the_run_at_that_check(scripted: dict, run_dir: Path) -> None:
    record = run(["stop_on_solve=true"], run_dir)
    assert record["steps_to_solve"] == 9 and record["steps_completed"] == 9
    assert [h["step"] for h in record["history"]] == [3, 6, 9]
    assert record["best_val"]["step"] == 9 and record["status"] == "finished" and "test" in record
    assert torch.load(record["checkpoint"], weights_only=False)["global_step"] == 9  # the tested checkpoint


def test_a_run_that_never_solves_is_censored_at_its_budget(scripted: dict, run_dir: Path) -> None:
    scripted.update({9: 0.05, 12: 0.02})
    record = run(["stop_on_solve=true"], run_dir)
    assert record["solved"] is False and record["steps_to_solve"] is None and record["max_steps"] == 12
    assert record["steps_completed"] == 12


def test_the_last_step_of_a_budget_off_the_interval_still_gets_a_check(scripted: dict, run_dir: Path) -> None:
    scripted[10] = 0.004
    record = run(["trainer.max_steps=10", "trainer.val_check_interval=4"], run_dir)
    assert [h["step"] for h in record["history"]] == [4, 8, 10] and record["steps_to_solve"] == 10


def test_history_entries_carry_step_train_loss_and_step_time(run_dir: Path) -> None:
    record = run([], run_dir)
    for entry in record["history"]:
        assert {"epoch", "step", "val/loss", "val/mse", "train/loss", "train/grad_norm"} <= set(entry)
        assert entry["perf/step_time_ms"] > 0
        assert entry["perf/epoch_time_s"] == pytest.approx(4 * entry["perf/step_time_ms"] / 1000)  # 4 steps/epoch
        assert entry["perf/samples_per_s"] == pytest.approx(16 / (entry["perf/step_time_ms"] / 1000))
    assert record["history"][0]["train/loss"] != record["history"][1]["train/loss"]  # reset at each check


def built_splits(monkeypatch: pytest.MonkeyPatch, task_class: type) -> list[str]:
    """The splits a task class builds from now on, in order (a spy on its build_split)."""
    built: list[str] = []
    original = task_class.build_split

    def spy(self: object, split: str) -> object:
        built.append(split)
        return original(self, split)

    monkeypatch.setattr(task_class, "build_split", spy)
    return built


def test_the_tuning_stage_never_builds_the_test_split(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built = built_splits(monkeypatch, AddingTask)
    record = run(["stage=tune", "task.seq_len=7"], tmp_path / "tune")
    assert sorted(built) == ["train", "val"] and "test" not in record and "beats_baseline" not in record
    assert record["stage"] == "tune" and record["status"] == "finished" and record["best_val"]["step"] in (3, 6, 9, 12)
    built.clear()
    record = run(["stage=eval", "task.seq_len=7"], tmp_path / "eval")
    assert sorted(built) == ["test", "train", "val"] and "test/mse" in record["test"] and record["stage"] == "eval"


def test_a_data_dependent_baseline_is_scored_on_val_when_tuning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ecg_anomaly's baseline reads a split's positive rate: the test split's, but the validation split's in tuning."""
    from rnnbench.tasks.ecg_anomaly import EcgAnomalyTask

    built = built_splits(monkeypatch, EcgAnomalyTask)
    ecg = ["task=ecg_anomaly", "task.seq_len=100", "task.n_train=16", "task.n_val=8", "task.n_test=8"]
    record = run(["stage=tune", *ecg], tmp_path / "tune")
    assert "test" not in built and record["baseline_split"] == "val" and record["status"] == "finished"
    record = run(["stage=eval", *ecg], tmp_path / "eval")
    assert "test" in built and record["baseline_split"] == "test"


def test_the_tested_checkpoint_is_the_best_primary_metric_not_the_best_loss(
    monkeypatch: pytest.MonkeyPatch, run_dir: Path
) -> None:
    """copy_memory: copy accuracy (higher is better) peaks at step 6 while val/loss keeps falling to step 12."""
    acc, loss = {3: 0.2, 6: 0.9, 9: 0.5, 12: 0.4}, {3: 2.0, 6: 1.5, 9: 1.0, 12: 0.5}

    def log_metrics(self: SequenceModule, split: str) -> None:
        self.metrics[split].reset()
        if split == "val":
            step = self.global_step
            self.log_dict({"val/copy_acc": acc[step], "val/loss": loss[step]})
        else:
            self.log("test/copy_acc", 0.0)

    monkeypatch.setattr(SequenceModule, "_log_metrics", log_metrics)
    monkeypatch.setattr(SequenceModule, "validation_step", lambda self, batch, i: None)  # no val/loss of its own
    record = run(["task=copy_memory"], run_dir)
    assert record["best_val"] == pytest.approx({"val/copy_acc": 0.9, "val/loss": 1.5, "epoch": 1, "step": 6})
    assert torch.load(record["checkpoint"], weights_only=False)["global_step"] == 6
    assert record["steps_to_solve"] is None  # 0.9 < 0.99
    by_loss = run(["task=copy_memory", "checkpoint_metric=loss"], run_dir.parent / "by_loss")
    assert by_loss["best_val"]["step"] == 12


def test_checkpoint_monitor_follows_the_metrics_direction() -> None:
    adding, copy = AddingTask(seq_len=5), CopyMemoryTask(seq_len=5)
    assert checkpoint_monitor(adding, None) == ("val/mse", "min")
    assert checkpoint_monitor(copy, None) == ("val/copy_acc", "max")
    assert checkpoint_monitor(copy, "loss") == ("val/loss", "min")
    assert checkpoint_monitor(adding, "mae:max") == ("val/mae", "max")
    assert checkpoint_monitor(Seq2SeqTask(), None) == ("val/exact_match", "max")  # one of its `scores` values
    for bad in ("mae", "acc", "mse:up"):
        with pytest.raises(ValueError, match=f"checkpoint_metric must be .*got '{bad}'"):
            checkpoint_monitor(adding, bad)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"metric": "mse", "op": "==", "threshold": 0.01, "source": "x"},
            "solve.op must be one of <, <=, >, >=, got '=='",
        ),
        ({"metric": "mse", "op": "<", "threshold": True, "source": "x"}, "solve.threshold must be a number, got True"),
        ({"metric": "mse", "op": "<", "threshold": 0.01}, "solve.source is missing; solve needs exactly: metric, op, "),
        ({"metric": "mse", "op": "<", "threshold": 0.01, "source": "x", "n": 1}, "unknown key solve.n; solve needs"),
        ({"metric": "mse", "op": "<", "threshold": 0.01, "source": " "}, "solve.source must say where"),
    ],
)
def test_a_malformed_criterion_fails_in_one_line(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")) as err:
        AddingTask(seq_len=5, solve=spec)
    assert "\n" not in str(err.value)


def test_criterion_ops_and_nan() -> None:
    below = SolveCriterion("mse", "<", 0.01, "s")
    assert below.met(0.009) and not below.met(0.01) and not below.met(float("nan"))
    assert SolveCriterion("acc", ">=", 0.99, "s").met(0.99) and not SolveCriterion("acc", ">", 0.99, "s").met(0.99)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.solve.metric=acc", "task.solve.metric must be one of loss, mse, mae, got 'acc'"),
        ("~task.solve.op", "task.solve.op is missing; solve needs exactly: metric, op, threshold, source"),
        ("stage=test", "stage must be null, tune or eval, got 'test'"),
        ("stop_on_solve=1", "stop_on_solve must be true or false, got 1"),
        ("checkpoint_metric=nope", "checkpoint_metric must be null (the primary metric, mse), loss, or"),
    ],
)
def test_protocol_keys_are_checked_before_anything_is_built(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        check_config(compose_config([override]))


def test_every_declared_criterion_names_a_metric_its_task_logs() -> None:
    declared = {}
    for name in group_options("task"):
        cfg = compose_config([f"task={name}"])
        if cfg.task.get("solve") is not None:
            task = instantiate(cfg.task)
            task.check_solve()
            declared[task.label] = (task.solve.metric, task.solve.op, task.solve.threshold)
    assert declared == {
        "adding": ("mse", "<", 0.01),
        "copy_memory": ("copy_acc", ">=", 0.99),
        "counting_anbn": ("max_n", ">=", 100.0),
        "temporal_order": ("acc", ">=", 0.99),
        "timing_msd": ("timed_acc", ">=", 0.99),
        "timing_gts": ("timed_acc", ">=", 0.99),
    }
