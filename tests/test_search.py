"""Hyperparameter search: the value a job returns (its validation primary metric, in the task's direction), the launch
check passing sweeps it cannot enumerate through to Hydra, and an Optuna search (conf/search/) end to end."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnbench.tracking.run_record import read_record
from rnnbench.training.cli import _objective
from rnnbench.training.config import ConfigError, compose_config, job_overrides, preflight
from rnnbench.training.resolvers import task_direction

optuna_sweeper = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("hydra_plugins.hydra_optuna_sweeper"),
    reason="needs the optuna extra: pip install -e '.[optuna]'",
)


def test_a_job_returns_its_validation_primary_metric_never_the_test_one() -> None:
    record = {
        "status": "finished",
        "primary_metric": "mse",
        "higher_is_better": False,
        "best_val": {"val/mse": 0.02, "val/loss": 0.03, "step": 400},
        "test": {"test/mse": 0.01},
    }
    assert _objective(record) == 0.02
    assert _objective({**record, "status": "diverged", "best_val": {}}) == math.inf  # the worst, as selection counts
    assert _objective({**record, "status": "diverged", "higher_is_better": True}) == -math.inf
    assert _objective({**record, "status": "failed", "best_val": {}}) is None  # Optuna: a failed trial


def test_the_search_direction_is_the_tasks() -> None:
    assert task_direction("rnnbench.tasks.adding.AddingTask") == "minimize"  # mse
    assert task_direction("rnnbench.tasks.copy_memory.CopyMemoryTask") == "maximize"  # accuracy


@optuna_sweeper
def test_the_example_search_composes_with_the_tasks_direction_and_one_seed() -> None:
    cfg = compose_config(["+search=lstm_adding"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert dict(sweeper.params) == {
        "seed": "0",  # fixed: the budget's seed list would otherwise be a searched parameter
        "optim.optimizer.lr": "tag(log, interval(1e-4, 3e-2))",
        "model.hidden_size": "choice(32, 64, 128)",
    }
    assert compose_config(["+search=lstm_adding", "task=copy_memory"], hydra=True).hydra.sweeper.direction == (
        "maximize"
    )


def test_sweeps_that_cannot_be_enumerated_are_checked_at_their_ends() -> None:
    lr, size = "optim.optimizer.lr=tag(log,interval(1e-4,3e-2))", "model.hidden_size=choice(32,64)"
    assert job_overrides([lr, size], product=False) == [
        ["optim.optimizer.lr=0.0001", "model.hidden_size=32"],
        ["optim.optimizer.lr=0.03", "model.hidden_size=32"],
        ["optim.optimizer.lr=0.0001", "model.hidden_size=64"],
    ]  # each value once (the sweeper picks the combinations), an interval at both ends
    models = job_overrides(["model=glob(*ru*)", "seed=0,1"], options={"model": ["gru", "lstm", "rnn"]}.get)
    assert models == [["model=gru", "seed=0"], ["model=gru", "seed=1"]]
    assert job_overrides(["seed=glob(*)", "model=rnn"]) == [["model=rnn"]]  # a glob over no group: left to Hydra


def test_preflight_passes_an_interval_sweep_and_still_refuses_a_bad_value() -> None:
    assert preflight(["optim.optimizer.lr=interval(1e-4,3e-2)", "model=rnn,gru", "trainer=smoke"], multirun=True) == 4
    with pytest.raises(ConfigError, match=r"^model\.hidden_size must be a positive int, got -3$"):
        preflight(["optim.optimizer.lr=interval(1e-4,3e-2)", "model.hidden_size=-3"], multirun=True)
    with pytest.raises(ConfigError, match=r"^model\.dropout must be a float in \[0, 1\), got 1\.5$"):
        preflight(["model.dropout=interval(0,1.5)", "model.num_layers=2"], multirun=True)  # the far end is checked


@optuna_sweeper
def test_preflight_checks_an_optuna_search_value_by_value() -> None:
    assert preflight(["+search=lstm_adding", "budget=smoke"], multirun=True) == 4  # 2 lr ends, then 2 more sizes
    with pytest.raises(ConfigError, match=r"^model\.hidden_size must be a positive int, got 0$"):
        preflight(["+search=lstm_adding", "model.hidden_size=choice(0,8)"], multirun=True)  # the command line wins


@optuna_sweeper
@pytest.mark.launchers
def test_an_optuna_search_of_4_smoke_trials_ranks_them_by_their_validation_metric(tmp_path: Path) -> None:
    sweep, storage = tmp_path / "search", tmp_path / "optuna.db"
    args = ["-m", "+search=lstm_adding", "budget=smoke", "logger=none", "hydra.sweeper.n_trials=4"]
    args += [f"hydra.sweeper.storage=sqlite:///{storage}", f"hydra.sweep.dir={sweep}"]
    exe = Path(sys.executable).parent / "rnnbench-train"
    done = subprocess.run([str(exe), *args], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=os.environ)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [read_record(p) for p in sorted(sweep.glob("*/run.json"))]
    assert len(records) == 4 and {r["status"] for r in records} == {"finished"}
    scores = {(r["config"]["optim"]["optimizer"]["lr"], r["config"]["model"]["hidden_size"]): r for r in records}
    with sqlite3.connect(storage) as db:  # what Optuna was told per trial (SQLAlchemy < 2 storage: the extra's pin)
        told = db.execute("SELECT trial_id, value FROM trial_values ORDER BY trial_id").fetchall()
    assert sorted(v for _, v in told) == sorted(r["best_val"]["val/mse"] for r in records)  # validation, not test
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    lowest = min(records, key=lambda r: r["best_val"]["val/mse"])  # adding: mse, lower is better
    assert best["best_value"] == lowest["best_val"]["val/mse"]
    assert scores[(best["best_params"]["optim.optimizer.lr"], best["best_params"]["model.hidden_size"])] is lowest
    assert min(lr for lr, _ in scores) >= 1e-4 and max(lr for lr, _ in scores) <= 3e-2
