"""Job identity by resolved config (tracking/job_identity.py) and what a relaunch decides from it
(training/resume.py): an unchanged job skips, a changed resolved config reruns with the old record kept aside, an
old-style record lacking a newly added key is still the same job, and `resume=false` reruns from scratch."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rnnbench.tracking.job_identity import config_differences, job_differences, override_identity, same_job
from rnnbench.tracking.run_record import git_dirty, git_sha, read_record, write_record
from rnnbench.tracking.wandb_run import job_run_id
from rnnbench.training.cli import unfinished_runs
from rnnbench.training.config import compose_config
from rnnbench.training.resume import decide, job_config

SMOKE = ["trainer=smoke", "logger=none", "task.n_train=64", "task.n_val=32", "task.n_test=32"]


def finished(overrides: list[str], **config_edits: Any) -> dict[str, Any]:
    """The finished record a job with `overrides` leaves, its config as composed now (then edited)."""
    config = job_config(compose_config(overrides), overrides)
    for dotted, value in config_edits.items():
        *parents, leaf = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]  # a key older code did not have
        else:
            node[leaf] = value
    return {"status": "finished", "overrides": overrides, "config": config, "seed": config["seed"]}


def test_a_job_is_its_overrides_in_any_order_without_faults_and_paths() -> None:
    assert override_identity(["seed=1", "model=gru", "+fault=kill_at_step", "fault.at_step=3"]) == (
        "model=gru",
        "seed=1",
    )
    assert override_identity(["tuned=a/selection.json", "task.cache_dir=/x", "resume=false", "threads=2"]) == (
        "threads=2",  # another command: another job (as before); its config value alone never reruns one
    )
    # more evaluation seeds for an undecided study: the jobs it ran are the same jobs
    assert override_identity(["seed=3", "study.seeds=[0,1,2,3,4,5]", "task=chorales"]) == ("seed=3", "task=chorales")


def test_config_differences_name_each_key_and_skip_what_cannot_change_a_result() -> None:
    old = finished(SMOKE)["config"]
    new = copy.deepcopy(old)
    new["trainer"]["max_steps"], new["optim"]["optimizer"]["lr"] = 4, 0.5
    new["logger"], new["threads"], new["experiment"], new["tags"] = {"mode": "online"}, 3, "other", ["x"]
    new["task"]["cache_dir"], new["tuned"], new["resume"], new["study"] = "/scratch", "s.json", False, {"seeds": [1]}
    new["trainer"]["enable_progress_bar"], new["task"]["solve"]["source"] = True, "another citation"
    assert config_differences(old, new) == {"trainer.max_steps": (2, 4), "optim.optimizer.lr": (0.01, 0.5)}
    new = copy.deepcopy(old)
    new["model"]["forget_bias"] = 1  # the record's 1.0 read back as written: the same value
    new["model"]["hidden_size"] = [64]
    assert config_differences(old, new) == {"model.hidden_size": (64, [64])}


def test_an_old_record_lacking_a_newly_added_key_is_the_same_job() -> None:
    overrides = [*SMOKE, "model=lstm"]
    config = job_config(compose_config(overrides), overrides)
    old = finished(overrides, model__chrono_t_max=None, model__layer_norm=None)  # written before those keys existed
    assert job_differences(old, config, overrides) == {}
    assert same_job(old, {"overrides": overrides, "config": config}) and same_job({**old, "config": config}, old)
    # ... unless the job's overrides set the new key: then the old record cannot have run with that value
    chrono = [*overrides, "model.chrono_t_max=50"]
    config = job_config(compose_config(chrono), chrono)
    assert job_differences({**old, "overrides": chrono}, config, chrono) == {"model.chrono_t_max": (None, 50)}
    # a group choice sets no key itself: a key added under model/ is no reason to rerun every model=... job
    assert job_differences(old, job_config(compose_config(overrides), overrides), overrides) == {}


def test_decide_skips_an_unchanged_job_reruns_a_changed_one_and_keeps_the_old_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    overrides = [*SMOKE, "seed=3"]
    config = job_config(compose_config(overrides), overrides)
    write_record(sweep / "0" / "run.json", finished(overrides))
    (sweep / "0" / "checkpoints").mkdir()
    (sweep / "0" / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    others = [sweep / "0", sweep / "1"]
    assert decide(sweep / "0", config, overrides, others).action == "skip"
    elsewhere = decide(sweep / "1", config, list(reversed(overrides)), others)
    assert (elsewhere.action, elsewhere.found_in) == ("skip", sweep / "0")  # found in another folder, which it names

    budget = [*overrides, "trainer.max_steps=4"]  # e.g. the budget file edited: the same overrides, another config
    edited = job_config(compose_config(budget), budget)
    old_id = job_run_id(sweep / "0")
    with caplog.at_level(logging.WARNING, logger="rnnbench"):
        decision = decide(sweep / "1", edited, overrides, others)
    assert decision.action == "fresh"
    assert "differs from this job's config in trainer.max_steps: 2 -> 4" in caplog.text
    aside = sweep / "0" / "superseded" / "1"
    assert read_record(aside / "record.json") == finished(overrides)  # kept whole, not overwritten
    assert (aside / "checkpoints" / "best.ckpt").read_bytes() == b"weights"
    assert not (sweep / "0" / "run.json").exists() and job_run_id(sweep / "0") != old_id  # a new W&B run there
    assert unfinished_runs(sweep) == []  # folder 0 now holds no job of this sweep, folder 1 no record yet
    (sweep / "1").mkdir()
    assert unfinished_runs(sweep) == [str(sweep / "1")]
    assert not list(sweep.rglob("run.json"))  # what reports and studies read: no second copy of the job


def test_a_job_skipped_for_a_result_in_another_folder_is_not_unfinished(tmp_path: Path) -> None:
    """A study relaunched on records restored from its archive: the restored folder holds the result, the job's
    own folder (Hydra's .hydra/ only) none; a job with no result anywhere is still unfinished."""
    sweep = tmp_path / "sweep"
    write_record(sweep / "restored-1a2b" / "run.json", finished(["seed=3", "model=gru"]))
    for job, overrides in (("0", "- model=gru\n- seed=3\n"), ("1", "- model=lstm\n- seed=3\n")):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(overrides)
    assert unfinished_runs(sweep) == [str(sweep / "1")]


def test_decide_refuses_another_jobs_result_and_resume_false_starts_afresh(tmp_path: Path) -> None:
    job = tmp_path / "0"
    mine, other = [*SMOKE, "seed=1"], [*SMOKE, "seed=2"]
    write_record(job / "run.json", finished(other))
    config = job_config(compose_config(mine), mine)
    decision = decide(job, config, mine)
    assert decision.action == "refuse" and "holds the finished job" in decision.reason
    assert (job / "run.json").is_file()
    write_record(job / "run.json", finished(mine))
    assert decide(job, config, mine).action == "skip"
    assert decide(job, config, mine, resume=False).action == "fresh"  # resume=false: rerun, the result set aside
    assert read_record(job / "superseded" / "1" / "record.json")["status"] == "finished"


def test_decide_resumes_only_an_unfinished_attempt_of_the_same_job_with_a_checkpoint(tmp_path: Path) -> None:
    job = tmp_path / "0"
    overrides = [*SMOKE, "seed=1"]
    config = job_config(compose_config(overrides), overrides)
    dead = {"host": os.uname().nodename, "pid": 2**22 + 12345, "start_ticks": 1}
    live = {"host": os.uname().nodename, "pid": os.getpid(), "start_ticks": None}
    for status, process in (("failed", None), ("interrupted", None), ("running", dead), ("running", live)):
        shutil.rmtree(job, ignore_errors=True)
        write_record(job / "run.json", {**finished(overrides), "status": status, "process": process})
        (job / "checkpoints").mkdir()
        (job / "checkpoints" / "last.ckpt").write_bytes(b"state")
        decision = decide(job, config, overrides)
        if process is live:
            assert decision.action == "refuse" and "is running now" in decision.reason
            continue
        assert decision.action == "resume" and decision.resume.checkpoint == job / "checkpoints" / "last.ckpt"
        edited = {**config, "seed": 9}
        assert decide(job, edited, overrides).action == "fresh"  # another config: the checkpoint is not its own
        assert (job / "superseded" / "1" / "checkpoints" / "last.ckpt").is_file()
    write_record(tmp_path / "1" / "run.json", {**finished(overrides), "status": "failed"})
    assert decide(tmp_path / "1", config, overrides).action == "fresh"  # nothing to resume from


@pytest.mark.slow  # two rnnbench-train launches: 32 s on a loaded 2-core machine; decide() is tested above
def test_a_changed_budget_file_reruns_its_jobs_and_an_unchanged_one_skips(tmp_path: Path) -> None:
    """Through rnnbench-train: a user's budget (--config-dir) edited between two launches of one sweep."""
    conf = tmp_path / "conf"
    (conf / "budget_task").mkdir(parents=True)
    (conf / "budget_task" / "smoke_copy_memory.yaml").write_text("# @package _global_\ntrainer: {max_steps: 2}\n")
    sweep = tmp_path / "sweep"
    args = ["--config-dir", str(conf), "-m", "task=adding,copy_memory", "budget=smoke", "seed=0", "logger=none"]
    args += ["threads=1", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    exe = [str(Path(sys.executable).parent / "rnnbench-train"), *args]
    first = subprocess.run(exe, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {read_record(p)["task"]: read_record(p) for p in sweep.glob("*/run.json")}
    assert {t: r["max_steps"] for t, r in before.items()} == {"adding": 2, "copy_memory": 2}

    (conf / "budget_task" / "smoke_copy_memory.yaml").write_text("# @package _global_\ntrainer: {max_steps: 4}\n")
    again = subprocess.run(exe, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert log.count("already finished, skipping") == 1  # adding: unchanged
    assert "trainer.max_steps: 2 -> 4" in log  # copy_memory: the key that differs, named
    after = {read_record(p)["task"]: read_record(p) for p in sweep.glob("*/run.json")}
    assert after["adding"] == before["adding"] and after["copy_memory"]["max_steps"] == 4
    assert [h["step"] for h in after["copy_memory"]["history"]] == [2, 4]
    aside = list(sweep.glob("*/superseded/1/record.json"))
    assert [read_record(p)["max_steps"] for p in aside] == [2] and read_record(aside[0]) == before["copy_memory"]


def test_the_record_names_the_commit_and_whether_tracked_files_changed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    code = repo / "module.py"
    code.write_text("x = 1\n")
    subprocess.run([*git, "add", "module.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert (git_sha(code), git_dirty(code)) == (head, False)
    (repo / "outputs.txt").write_text("untracked")  # outputs, scratch files: not a code change
    assert git_dirty(code) is False
    code.write_text("x = 2\n")
    assert (git_sha(code), git_dirty(code)) == (head, True)
    (repo / "wheel.py").write_text("")  # code that is not tracked there (a wheel in a venv inside a checkout)
    assert (git_sha(repo / "wheel.py"), git_dirty(repo / "wheel.py")) == (None, None)


def test_a_study_job_moves_another_launchs_result_of_the_same_stage_out_of_its_folder(tmp_path: Path) -> None:
    """`rnnbench-study depth model.num_layers=4` numbered its jobs 0.. in tune/; the full launch's job 0 is another
    job. Its result is moved whole to tune/moved-<digest>/ (where later relaunches find it) and the job starts
    afresh; outside a study the job still refuses (test above)."""
    sweep = tmp_path / "tune"
    earlier, mine = [*SMOKE, "stage=tune", "seed=1"], [*SMOKE, "stage=tune", "seed=2"]
    record = finished(earlier)
    write_record(sweep / "0" / "run.json", record)
    (sweep / "0" / "checkpoints").mkdir()
    (sweep / "0" / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    config = job_config(compose_config(mine), mine)
    assert decide(sweep / "0", config, mine).action == "fresh"
    (moved,) = sweep.glob("moved-*")
    assert (
        read_record(moved / "run.json") == record and (moved / "checkpoints" / "best.ckpt").read_bytes() == b"weights"
    )
    assert not (sweep / "0" / "run.json").exists()
    earlier_config = job_config(compose_config(earlier), earlier)
    skip = decide(sweep / "1", earlier_config, earlier, [sweep / "0", moved])
    assert skip.action == "skip" and skip.record == record  # the relaunch of the moved job finds it there
    other_stage = job_config(compose_config([*SMOKE, "stage=eval", "seed=2"]), [*SMOKE, "stage=eval", "seed=2"])
    write_record(sweep / "2" / "run.json", record)
    assert decide(sweep / "2", other_stage, [*SMOKE, "stage=eval", "seed=2"]).action == "refuse"  # another stage
