"""Sweep progress and single-run result lines (rnnbench.training.progress), also from joblib's worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rnnbench.tracking.run_record import write_record
from rnnbench.training.progress import PROGRESS_NAME, launch_jobs, progress_line, result_line

SMALL = ["trainer=smoke", "task.n_train=128", "task.n_val=64", "task.n_test=64", "task.batch_size=32"]


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def test_progress_counts_the_sweep_folder_and_estimates_the_rest(tmp_path: Path) -> None:
    """10 jobs; 4 ended (1 skipped from an earlier launch, 3 run in this one, 100 s in): 6 left at 100/3 s each."""
    start = 1_800_000_000.0
    write_record(tmp_path / PROGRESS_NAME, {"total": 10, "started": start})
    earlier = {"status": "finished", "started_at": _stamp(start - 3600), "overrides": ["model=rnn"]}
    write_record(tmp_path / "0" / "run.json", earlier)
    for i, status in enumerate(["finished", "diverged", "failed"], start=1):
        write_record(tmp_path / str(i) / "run.json", {"status": status, "started_at": _stamp(start + i)})
    write_record(tmp_path / "4" / "run.json", {"status": "running", "started_at": _stamp(start + 9)})
    job = {"status": "failed", "started_at": _stamp(start + 3), "overrides": ["a=1"]}
    write_record(tmp_path / "3" / "run.json", job)
    line = progress_line(tmp_path, tmp_path / "3", now=start + 100)
    assert line == "[4/10] a=1: failed | 1 failed, 1 diverged so far | ETA 3m20s"


def test_progress_counts_this_launchs_jobs_once_wherever_their_records_are(tmp_path: Path) -> None:
    """A study relaunched on restored records (as `rnnbench-study cell task=chorales` after a restore): a skipped
    job's result is another folder's, and the folder's records of jobs this launch does not run are not counted."""
    start = 1_800_000_000.0
    jobs = [["model=gru", "seed=0"], ["model=lstm", "seed=0"]]
    write_record(tmp_path / PROGRESS_NAME, {"total": 2, "jobs": jobs, "started": start})
    restored = {"status": "finished", "started_at": _stamp(start - 3600), "overrides": ["seed=0", "model=gru"]}
    write_record(tmp_path / "restored-1a" / "run.json", {**restored, "output_dir": "/elsewhere/restored-1a"})
    other = {"status": "failed", "started_at": _stamp(start - 3600), "overrides": ["model=gru", "task=adding"]}
    write_record(tmp_path / "restored-2b" / "run.json", other)  # another launch's job: not counted
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("- model=gru\n- seed=0\n")
    line = progress_line(tmp_path, tmp_path / "0", now=start + 10)
    assert line == "[1/2] seed=0,model=gru: already finished (skipped: restored-1a) | 0 failed, 0 diverged so far"


def test_result_line_says_the_metric_against_the_baseline_and_where_the_record_is() -> None:
    record = {
        "task": "adding",
        "status": "finished",
        "primary_metric": "mse",
        "higher_is_better": False,
        "test": {"test/mse": 0.01234, "test/loss": 0.01234},
        "baseline": {"mse": 1 / 6},
        "beats_baseline": True,
    }
    assert result_line(record, Path("out/run.json")) == (
        "result: adding finished: test/mse 0.01234 vs baseline 0.1667 (lower is better), beats it"
        " | record: out/run.json"
    )
    tuned = record | {"test": {}, "best_val": {"val/mse": 0.5}, "beats_baseline": None, "stage": "tune"}
    assert "val/mse 0.5 vs baseline 0.1667 (lower is better), not compared" in result_line(tuned, Path("r"))
    failed = {"task": "adding", "status": "failed", "error": "OSError: disk", "primary_metric": "mse"}
    assert result_line(failed, Path("r")) == "result: adding failed (OSError: disk) | record: r"


@pytest.mark.slow  # joblib's worker processes start up (~40 s); the launchers' own tests: -m launchers
def test_a_joblib_sweep_prints_a_line_per_job_from_its_workers(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "rnnbench-train"
    args = ["-m", "model=rnn", "task.cache_dir=null,/dev/null/nope", *SMALL, "logger=none"]
    args += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=1", f"hydra.sweep.dir={tmp_path / 's'}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run([str(exe), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert len(lines) == 2, result.stdout[-3000:] + result.stderr[-3000:]
    first, last = lines
    head = r"\[1/2\] model=rnn,task.cache_dir=.*: (failed|finished) \| \d failed, 0 diverged so far"
    assert re.match(head + r" \| ETA \d+m\d\ds$", first)
    assert re.match(r"\[2/2\] .*: (failed|finished) \| 1 failed, 0 diverged so far$", last)


def test_the_job_count_leaves_hydra_runtime_interpolations_unresolved() -> None:
    """A study's eval stage passes tuned=${hydra:sweep.dir}/...: counting its jobs must not resolve it."""
    sweeper = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": {"seed": "0,1,2"}}
    task = ["tuned=${hydra:sweep.dir}/../selection.json", "model=lstm,gru"]
    config = OmegaConf.create({"hydra": {"sweeper": sweeper, "overrides": {"task": task}}})
    assert len(launch_jobs(config)) == 6
    config.hydra.sweeper.params = None  # a multirun from the command line alone
    assert len(launch_jobs(config)) == 2
