"""Resuming from the last checkpoint (training/resume.py, train.py): a job killed or failed mid-training and then
relaunched finishes from its last checkpoint's global step, with each validation check once in its history, the
solve state and the best checkpoint of both segments, one W&B run id and no (metric, step) pair logged twice, as
W&B's own reader (`wandb leet inspect`) reads the offline run folders."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnbench.tracking.run_record import effective_status, read_record, write_record
from rnnbench.tracking.step_log import LOG_NAME, StepLog, earlier_steps
from rnnbench.tracking.wandb_run import earlier_attempts, job_run_id, start_run, wandb_logger
from rnnbench.training.config import compose_config
from rnnbench.training.resume import checkpoint_step, decide, job_config
from rnnbench.training.train import train

BIN = Path(sys.executable).parent
SMALL = ["trainer=smoke", "trainer.max_steps=8", "trainer.log_every_n_steps=1", "threads=1"]
SMALL += ["task.n_train=64", "task.n_val=32", "task.n_test=32", "task.batch_size=16"]  # 4 steps an epoch


def wandb_run(folder: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """One offline run folder as W&B's own reader gives it: its run id (None where the run record never reached
    the file) and its history rows."""
    out = subprocess.run(
        [str(BIN / "wandb"), "leet", "inspect", "--json", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    ids = [r["run"]["run_id"] for r in rows if r["type"] == "run"]
    return (ids[0] if ids else None), [r["history"]["item"] for r in rows if r["type"] == "history"]


def repeated(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(metric, trainer/global_step) pairs that occur more than once across the rows."""
    pairs = collections.Counter(
        (k, r["trainer/global_step"]) for r in rows for k in r if not k.startswith("_") and k != "trainer/global_step"
    )
    return sorted(pair for pair, n in pairs.items() if n > 1)


def steps_of(rows: list[dict[str, Any]], metric: str) -> list[int]:
    return [r["trainer/global_step"] for r in rows if metric in r]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A job that fails at step 6 (validation every 2 steps, so its last checkpoint is at 4; it solved at the first
    check; its checkpoint metric is the highest val/loss, so the best is early; probed every 2 steps), then its
    relaunch, in this process."""
    job = tmp_path_factory.mktemp("resume") / "job"
    base = [*SMALL, "trainer.val_check_interval=2", "checkpoint_metric=loss:max", "task.solve.threshold=10"]
    base += ["diagnostics.enabled=true", "diagnostics.every_n_steps=2"]
    faulted = [*base, "+fault=raise_at_step", "fault.at_step=6"]
    with pytest.MonkeyPatch.context() as env:  # conftest's per-test environment, for this module-wide fixture
        env.setenv("RNNBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "rnnbench-cache"))
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_SILENT", "true")
        env.setenv("WANDB_DIR", str(tmp_path_factory.getbasetemp() / "wandb"))
        threads = torch.get_num_threads()
        with pytest.raises(RuntimeError, match="injected fault"):
            train(compose_config(faulted), job, faulted)
        first = read_record(job / "run.json")
        decision = decide(job, job_config(compose_config(base), base), base)  # the relaunch, without the fault
        from_step = checkpoint_step(decision.resume.checkpoint) if decision.resume else None
        record = train(compose_config(base), job, base, resume=decision.resume)
        again = decide(job, job_config(compose_config(base), base), base)
        torch.set_num_threads(threads)
    return {"job": job, "first": first, "decision": decision, "from": from_step, "record": record, "again": again}


def test_a_failed_run_resumes_from_its_last_checkpoint(resumed: dict[str, Any]) -> None:
    first, record, job = resumed["first"], resumed["record"], resumed["job"]
    assert first["status"] == "failed" and [h["step"] for h in first["history"]] == [2, 4]
    assert resumed["decision"].action == "resume"
    assert resumed["from"] == 4  # last.ckpt: the last validation check's
    assert record["status"] == "finished" == read_record(job / "run.json")["status"]
    assert [h["step"] for h in record["history"]] == [2, 4, 6, 8]  # each check once
    assert record["steps_completed"] == 8 and record["started_at"] == first["started_at"]
    assert [r["from_step"] for r in record["resumes"]] == [4]
    assert record["resumes"][0]["git_sha"] == record["git_sha"] and "git_dirty" in record
    assert resumed["again"].action == "skip"  # finished now: a further relaunch keeps it
    assert [d["step"] for d in first["diagnostics"]] == [0, 2, 4]
    assert [d["step"] for d in record["diagnostics"]] == [0, 2, 4, 6, 8]  # the probe at the checkpoint's step once


def test_the_solve_state_and_the_best_checkpoint_span_both_attempts(resumed: dict[str, Any]) -> None:
    first, record = resumed["first"], resumed["record"]
    assert (first["solved"], first["steps_to_solve"]) == (True, 2)
    assert (record["solved"], record["steps_to_solve"]) == (True, 2)  # not reset, not found again at a later check
    losses = {h["step"]: h["val/loss"] for h in record["history"]}
    best = max(losses, key=losses.get)
    assert best <= 4 and record["best_val"]["step"] == best  # the best check is in the first attempt
    tested = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)
    assert Path(record["checkpoint"]).name == "best.ckpt" and tested["global_step"] == best  # restored, not replaced


def test_the_resumed_run_continues_its_w_and_b_run_and_logs_no_step_twice(resumed: dict[str, Any]) -> None:
    job, record = resumed["job"], resumed["record"]
    (first_id, before), (second_id, after) = (wandb_run(f) for f in sorted((job / "wandb").glob("offline-run-*")))
    assert first_id == second_id == record["wandb"]["id"]  # two attempts, one run
    assert repeated(before + after) == []
    assert steps_of(before, "train/grad_norm") == [0, 1, 2, 3, 4]  # logged before each step, counted from 0
    # the resumed attempt trained steps 5 to 8 (from the checkpoint at 4); step 5's norm (logged as 4, before the
    # step) was already in W&B from the first attempt, which ran step 5 before failing at 6
    assert steps_of(after, "train/grad_norm") == [5, 6, 7]


def test_a_run_resumed_after_it_stopped_on_solve_stops_again_at_once(run_dir: Path) -> None:
    """Killed while testing, after `stop_on_solve` ended its training at the first check: the relaunch trains no
    further step, tests, and finishes."""
    overrides = [*SMALL, "trainer.val_check_interval=2", "stop_on_solve=true", "task.solve.threshold=10"]
    overrides += ["logger=none"]
    done = train(compose_config(overrides), run_dir, overrides)
    assert (done["status"], done["steps_to_solve"], [h["step"] for h in done["history"]]) == ("finished", 2, [2])
    killed = {k: v for k, v in done.items() if k not in ("test", "best_val", "finished_at")}
    write_record(run_dir / "run.json", {**killed, "status": "interrupted"})
    decision = decide(run_dir, job_config(compose_config(overrides), overrides), overrides)
    assert decision.action == "resume"
    record = train(compose_config(overrides), run_dir, overrides, resume=decision.resume)
    assert record["status"] == "finished" and record["steps_completed"] == 2 and record["steps_to_solve"] == 2
    assert [h["step"] for h in record["history"]] == [2] and record["test"] == done["test"]


def test_a_resumed_attempt_logs_nothing_an_earlier_attempt_holds_in_w_and_b(tmp_path: Path) -> None:
    """The steps between a checkpoint and a kill: an earlier attempt logged 0-9, the resumed one restarts at 5."""
    job = tmp_path / "job"
    for attempt, steps in enumerate((range(0, 10), range(5, 15))):
        run = start_run(job, "rnnbench", "x", "g", "adding", [], {"seed": 0}, run_id=job_run_id(job))
        logger = wandb_logger(run)
        floors = earlier_steps(job / LOG_NAME, earlier_attempts(run)) if attempt else {}
        assert floors == ({"train/loss": 9} if attempt else {})  # W&B's reading of the first attempt's folder
        StepLog(job / LOG_NAME, floors).attach(logger)
        for step in steps:
            logger.log_metrics({"train/loss": float(step)}, step=step)
        run.finish()
        if not attempt:
            time.sleep(1.1)  # W&B names offline folders by the second
    rows = [r for f in sorted((job / "wandb").glob("offline-run-*")) for r in wandb_run(f)[1]]
    assert steps_of(rows, "train/loss") == list(range(15))  # every step once
    assert earlier_steps(job / LOG_NAME, None) == {"train/loss": 14}  # online: the steps rnnbench handed over


@pytest.mark.parametrize(
    "relaunch",
    ["in-process", pytest.param("rnnbench-train", marks=pytest.mark.slow)],  # 36 s on a loaded 2-core machine
)
def test_a_killed_job_relaunched_resumes_from_its_last_checkpoint(tmp_path: Path, relaunch: str) -> None:
    """SIGKILL at step 7 (validation every 4 steps): no handler runs, the record stays `running` with a dead pid.
    The relaunch (rnnbench-train, or in this process the two calls its job function makes) resumes from the last
    checkpoint, at step 4."""
    job = tmp_path / "job"
    overrides = [*SMALL, "trainer.val_check_interval=4"]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # not this process's W&B service, which
    env["WANDB_MODE"] = "offline"  # would hold the killed run's stream open ("run ID is in use")
    exe = [str(BIN / "rnnbench-train"), *overrides, f"hydra.run.dir={job}"]
    first = subprocess.run([*exe, "+fault=kill_at_step", "fault.at_step=7"], env=env, capture_output=True, timeout=600)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    killed = read_record(job / "run.json")
    assert (killed["status"], effective_status(killed)) == ("running", "interrupted")
    assert [h["step"] for h in killed["history"]] == [4] and checkpoint_step(job / "checkpoints" / "last.ckpt") == 4

    if relaunch == "rnnbench-train":
        again = subprocess.run(exe, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
    else:
        cfg = compose_config(overrides)
        decision = decide(job, job_config(cfg, overrides), overrides)
        assert decision.action == "resume"
        train(cfg, job, overrides, resume=decision.resume)
    record = read_record(job / "run.json")
    assert record["status"] == "finished" and [h["step"] for h in record["history"]] == [4, 8]
    assert [r["from_step"] for r in record["resumes"]] == [4] and record["started_at"] == killed["started_at"]
    folders = sorted((job / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and {f.name.rsplit("-", 1)[1] for f in folders} == {record["wandb"]["id"]}
    (_, before), (second_id, after) = (wandb_run(f) for f in folders)  # the killed one: what W&B wrote by then
    assert second_id == record["wandb"]["id"]
    assert repeated(before + after) == []
    logged = steps_of(before, "train/grad_norm")
    assert steps_of(after, "train/grad_norm") == list(range(max([*logged, 3]) + 1, 8))  # from step 5 (index 4) on
