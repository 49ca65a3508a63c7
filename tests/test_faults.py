"""Fault injection (`+fault=...`, tests only): a sweep of six smoke jobs where one diverges (huge learning rate),
one raises and one is SIGKILLed records 3 finished, 1 diverged, 1 failed, 1 interrupted; a relaunch without the fault
reruns only the failed and the interrupted job; the report shows all six with the right statuses."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench.reports.archive import ARCHIVE_NAME, write_archive
from rnnbench.reports.cli import main as report
from rnnbench.reports.collect import local_records
from rnnbench.tracking.run_record import effective_status, process_alive, process_identity, read_record, write_record
from rnnbench.training.callbacks import fault_action
from rnnbench.training.config import ConfigError, compose_config, preflight
from rnnbench.training.train import train

SMOKE = ["trainer=smoke", "logger=none", "checkpoint=false", "task.n_train=64", "task.n_val=32", "task.n_test=32"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "rnnbench-train"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=os.environ)


def _statuses(out: Path) -> list[tuple[str, str]]:
    with open(out / "faults" / "results.csv") as f:
        return [(row["seed"], row["status"]) for row in csv.DictReader(f)]


def test_a_fault_is_picked_per_job_and_checked_at_launch() -> None:
    plan = compose_config(["+fault=by_seed"]).fault
    config = {"fault": {k: plan[k] for k in plan}, "seed": 4}
    assert fault_action(config) == {"action": "raise", "at_step": 1, "lr": 1e6}
    assert fault_action({**config, "seed": 0}) is None and fault_action({"seed": 0}) is None
    assert fault_action({"fault": {"action": "kill", "at_step": 3}, "seed": 9})["action"] == "kill"
    with pytest.raises(ConfigError, match=r"^fault.action must be one of raise, kill, diverge or null, got 'explode'$"):
        preflight(["+fault=raise_at_step", "fault.action=explode"])
    with pytest.raises(ConfigError, match=r"^fault.at_step must be a positive int, got 0$"):
        preflight(["+fault=raise_at_step", "fault.at_step=0"])


def test_an_injected_raise_is_a_failed_run_with_its_reason(run_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="injected fault"):
        train(compose_config([*SMOKE, "+fault=raise_at_step", "fault.at_step=2"]), run_dir)
    record = read_record(run_dir / "run.json")
    assert record["status"] == "failed" and record["error"] == "RuntimeError: injected fault (+fault) at step 2"
    assert record["process"] == process_identity()


def test_a_running_record_whose_process_is_gone_reads_as_interrupted(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = {**process_identity(), "pid": child.pid, "start_ticks": None}
        assert process_alive(alive) is True
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
    assert process_alive(alive) is False
    assert process_alive({**alive, "host": "elsewhere"}) is None  # another node's job: cannot be told, stays running
    write_record(tmp_path / "a" / "run.json", {"status": "running", "process": alive})
    write_record(tmp_path / "b" / "run.json", {"status": "running", "process": process_identity()})  # this one lives
    assert [effective_status(r) for r in local_records([tmp_path])] == ["interrupted", "running"]
    assert "ended without finishing the run" in local_records([tmp_path])[0]["error"]
    # an archive is the snapshot a report was made from: its `running` record stays running, so that report
    # regenerates the same after the process has gone
    write_archive(tmp_path / "c" / ARCHIVE_NAME, [{"status": "running", "process": alive}])
    assert [r["status"] for r in local_records([tmp_path / "c"])] == ["running"]


@pytest.mark.slow  # a minute of subprocess sweeps; the default run's multirun test (test_train.py) fails and relaunches
def test_six_jobs_three_faults_then_a_relaunch_finishes_only_what_is_missing(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1,2,3,4,5", *SMOKE, "experiment=faults", f"hydra.sweep.dir={sweep}"]
    first = _cli([*args, "+fault=by_seed"], tmp_path)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]  # job 5 killed the sweep's process
    records = {int(read_record(p)["seed"]): read_record(p) for p in sweep.glob("*/run.json")}
    assert {s: r["status"] for s, r in records.items()} == {
        0: "finished",
        1: "finished",
        2: "finished",
        3: "diverged",
        4: "failed",
        5: "running",  # SIGKILL: nothing could write; its pid is dead
    }
    assert records[3]["diverged_at_step"] == 2 and "injected fault" in records[4]["error"]
    assert effective_status(records[5]) == "interrupted"
    assert report([str(sweep), "--out", str(tmp_path / "before")]) == 0
    expected = ["finished"] * 3 + ["diverged", "failed", "interrupted"]
    assert sorted(_statuses(tmp_path / "before")) == [(str(s), status) for s, status in enumerate(expected)]

    stamps = {s: (sweep / str(s) / "run.json").stat().st_mtime_ns for s in range(6)}
    again = _cli(args, tmp_path)  # the same sweep, the fault removed
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = [s for s in range(6) if (sweep / str(s) / "run.json").stat().st_mtime_ns != stamps[s]]
    assert rerun == [4, 5]  # only the failed and the interrupted job ran again
    assert report([str(sweep), "--out", str(tmp_path / "after")]) == 0
    expected = ["finished"] * 3 + ["diverged", "finished", "finished"]
    assert sorted(_statuses(tmp_path / "after")) == [(str(s), status) for s, status in enumerate(expected)]
