"""End to end: composed configs train with trainer=smoke, leave run.json and offline W&B runs; the CLI's
multirun keeps going past a failed job, records it, and resumes."""

from __future__ import annotations

import csv
import json
import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from rnnbench.tracking.run_record import read_record
from rnnbench.training import allocator
from rnnbench.training import cli as cli_module
from rnnbench.training.cli import main as cli_main
from rnnbench.training.config import compose_config
from rnnbench.training.train import run_name, train

SMALL_DATA = ["task.n_train=128", "task.n_val=64", "task.n_test=64", "task.batch_size=32"]


def smoke(overrides: list[str], out: Path) -> dict:
    cfg = compose_config(["trainer=smoke", *SMALL_DATA, *overrides])
    return train(cfg, out, overrides)


def test_smoke_run_writes_a_complete_record_and_an_offline_wandb_run(run_dir: Path) -> None:
    record = smoke(["model=gru", "task=copy_memory", "task.seq_len=5"], run_dir)
    on_disk = read_record(run_dir / "run.json")
    assert on_disk == json.loads(json.dumps(on_disk))  # plain JSON, nothing Python-specific
    assert on_disk["status"] == record["status"] == "finished"
    assert on_disk["task"] == "copy_memory" and on_disk["config"]["model"]["cell"] == "gru"
    assert on_disk["overrides"] == ["model=gru", "task=copy_memory", "task.seq_len=5"]
    assert on_disk["num_parameters"] == 64 * 3 * (10 + 64 + 2) + 65 * 10  # GRU body + linear head
    assert set(on_disk["test"]) == {"test/loss", "test/copy_acc"}
    assert on_disk["baseline"]["copy_acc"] == 1 / 8 and isinstance(on_disk["beats_baseline"], bool)
    assert len(on_disk["history"]) == 1 and on_disk["history"][0]["step"] == on_disk["max_steps"] == 2
    assert {"train/loss", "val/loss", "val/copy_acc", "perf/samples_per_s"} <= set(on_disk["history"][0])
    assert on_disk["best_val"]["step"] == 2 and set(on_disk["best_val"]) == {
        "val/loss",
        "val/copy_acc",
        "epoch",
        "step",
    }
    assert on_disk["solved"] is False and on_disk["steps_to_solve"] is None and on_disk["stage"] is None
    assert on_disk["peak_memory_mb"] > 0 and on_disk["train_time_s"] > 0
    assert on_disk["versions"]["torch"] and on_disk["seed"] == 0
    assert on_disk["malloc"] == allocator.tune()  # what training/allocator.py applied in this environment
    assert on_disk["time_loops"] == "python"  # the GRU's custom path; conftest turns the compiled loops off
    wandb_dir = Path(on_disk["wandb"]["dir"])
    assert wandb_dir.parent == run_dir / "wandb" and wandb_dir.name.startswith("offline-run-")
    assert (wandb_dir / f"run-{on_disk['wandb']['id']}.wandb").stat().st_size > 0
    assert on_disk["wandb"]["name"] == run_name(["model=gru", "task=copy_memory", "task.seq_len=5"])


def test_consecutive_runs_in_one_process_get_distinct_wandb_runs(tmp_path: Path) -> None:
    ids = {smoke([f"seed={s}"], tmp_path / str(s))["wandb"]["id"] for s in (0, 1)}
    assert len(ids) == 2


def test_the_record_names_the_time_loops_of_its_own_run_only(tmp_path: Path) -> None:
    """A launcher's worker runs several jobs in one process: an LSTM on the fused kernel after a GRU on the custom
    path ran no custom time loop, and its record says so (null) instead of inheriting the GRU's."""
    assert smoke(["logger=none", "model=gru"], tmp_path / "gru")["time_loops"] == "python"
    assert smoke(["logger=none", "model=lstm"], tmp_path / "lstm")["time_loops"] is None
    assert read_record(tmp_path / "lstm" / "run.json")["time_loops"] is None


@pytest.mark.parametrize(
    ("switch", "allowed"), [("RNNBENCH_COMPILED_LOOPS", "0, false"), ("RNNBENCH_MALLOC", "tuned, default")]
)
def test_a_misspelt_environment_switch_stops_the_command_before_any_job(monkeypatch, switch: str, allowed: str) -> None:
    from rnnbench.training.config import ConfigError, preflight

    monkeypatch.setenv(switch, "yes please")
    with pytest.raises(ConfigError, match=f"^{switch}='yes please': expected one of {allowed}"):
        preflight(["trainer=smoke"])


def test_same_seed_gives_identical_results(tmp_path: Path) -> None:
    a = smoke(["logger=none", "model=rnn"], tmp_path / "a")
    b = smoke(["logger=none", "model=rnn"], tmp_path / "b")
    assert a["test"] == b["test"] and a["history"][0]["train/loss"] == b["history"][0]["train/loss"]


def test_divergence_is_recorded_not_dropped(run_dir: Path) -> None:
    record = smoke(["logger=none", "optim=sgd", "optim.optimizer.lr=1e30", "optim.grad_clip=null"], run_dir)
    assert record["status"] == "diverged"
    assert "training loss" in read_record(run_dir / "run.json")["error"]  # non-finite, or above the bound first


def test_threads_sets_torchs_intra_op_threads(run_dir: Path) -> None:
    assert torch.get_num_threads() == 1  # conftest
    assert smoke(["logger=none", "threads=2"], run_dir)["status"] == "finished"
    assert torch.get_num_threads() == 2


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "rnnbench-train"
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "launcher",
    [
        pytest.param([], id="basic"),
        # joblib's worker processes: a slow case (also tests/test_progress.py's joblib sweep, -m slow; -m launchers)
        pytest.param(
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=1"], id="joblib", marks=pytest.mark.slow
        ),
    ],
)
def test_cli_multirun_records_every_job_survives_a_failure_and_resumes(tmp_path: Path, launcher: list[str]) -> None:
    """Also with jobs in joblib's worker processes (budget=cpu): the summary reads run.json, not process memory.
    The seed-1 jobs fail at their first step, every time (an injected fault, which is no part of the job). The
    relaunch gives the overrides in another order (so other job numbers): every finished job is still found and
    skipped, never overwritten."""
    sweep = tmp_path / "sweep"
    fault = ["+fault=raise_at_step", "fault.action=null", "fault.seeds={1: raise}"]
    common = [*fault, "trainer=smoke", *SMALL_DATA, *launcher, f"hydra.sweep.dir={sweep}"]
    first = _cli(["-m", "model=rnn,lstm", "seed=0,1", *common], tmp_path)
    assert first.returncode == 1, first.stderr[-2000:]
    assert "2 job(s) failed" in first.stderr
    records = {p.parent.name: read_record(p) for p in sweep.glob("*/run.json")}
    assert sorted(r["status"] for r in records.values()) == ["failed", "failed", "finished", "finished"]
    assert all("injected fault" in r["error"] for r in records.values() if r["status"] == "failed")
    finished = [p for p in sweep.glob("*/run.json") if read_record(p)["status"] == "finished"]
    runs = {read_record(p)["wandb"]["id"] for p in finished}
    assert len(runs) == 2 and len(list(sweep.glob("*/wandb/offline-run-*"))) == 4  # failed jobs keep theirs too
    assert {read_record(p)["overrides"][0] for p in finished} == {"model=rnn", "model=lstm"}
    stamps = {p: p.stat().st_mtime_ns for p in finished}

    again = _cli(["-m", "seed=1,0", "model=lstm,rnn", *common], tmp_path)
    assert again.returncode == 1
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished jobs skipped, not retrained
    assert (again.stdout + again.stderr).count("already finished, skipping") == 2


def test_python_m_runs_the_package_modules_main(monkeypatch) -> None:
    """rnnbench-study runs its stages as `python -m rnnbench.training.cli`: that must be the package module's main,
    whose FAILED list Hydra's SweepSummary (imported as rnnbench.training.cli) fills, or failed jobs exit 0."""
    calls = []
    monkeypatch.setattr(cli_module, "main", lambda: calls.append("package main"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is already imported (as the package's)
        runpy.run_module("rnnbench.training.cli", run_name="__main__")
    assert calls == ["package main"]


def test_cli_bad_override_exits_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    """The console command's own function, in this process (tests/test_bad_input.py runs the installed command)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["rnnbench-train", "model.hidden_size=-4"])
    with pytest.raises(SystemExit) as exit_:
        cli_main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == "rnnbench-train: error: model.hidden_size must be a positive int, got -4"
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_lstm_beats_the_adding_baseline_at_the_default_budget(tmp_path: Path) -> None:
    cfg = compose_config(["logger=none", "trainer.enable_progress_bar=false"])
    record = train(cfg, tmp_path / "run")
    assert record["test"]["test/mse"] < 0.5 * record["baseline"]["mse"]


def test_a_failure_before_fitting_is_recorded_as_failed(run_dir: Path) -> None:
    with pytest.raises(Exception, match="not_a_trainer_arg"):
        smoke(["logger=none", "+trainer.not_a_trainer_arg=1"], run_dir)
    record = read_record(run_dir / "run.json")
    assert record["status"] == "failed" and "not_a_trainer_arg" in record["error"] and "finished_at" in record


def test_train_loss_and_grad_norm_reach_the_loggers_and_the_record(run_dir: Path) -> None:
    """The train loss since the last check is logged at each validation check, the pre-clipping gradient norm every
    log_every_n_steps steps."""
    record = smoke(["logger=csv", "trainer.log_every_n_steps=1", "trainer.max_steps=4"], run_dir)
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    grad_steps = [int(r["step"]) for r in rows if r.get("train/grad_norm")]
    assert grad_steps == [0, 1, 2, 3]  # 4 steps, a validation check after every 2 (trainer=smoke)
    check_losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    history = record["history"]
    assert check_losses == pytest.approx([h["train/loss"] for h in history]) and len(history) == 2
    assert [h["step"] for h in history] == [2, 4] and all(h["train/grad_norm"] > 0 for h in history)
    assert [float(r["perf/step_time_ms"]) for r in rows if r.get("perf/step_time_ms")] == pytest.approx(
        [h["perf/step_time_ms"] for h in history]
    )
