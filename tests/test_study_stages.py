"""The study's parts that need no training loop: each stage's command line, the checks on a study's overrides,
an evaluation job's lookup of its group in selection.json, and restoring records from the archive."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rnnbench.reports.archive import read_archive
from rnnbench.study.archive import restore, restored_dir
from rnnbench.study.selection import apply_selection, write_selection
from rnnbench.study.spec import StudyError
from rnnbench.study.stages import SELECTION_FROM_JOB, Plan, command, in_grid, load, plan, stage_overrides
from rnnbench.tracking.run_record import read_record, write_record
from rnnbench.training.config import compose_config
from rnnbench.training.resume import set_aside
from rnnbench.training.train import train
from study_fakes import TINY_STUDY, write_sweep


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    write_sweep(tmp_path / "conf")
    write_sweep(tmp_path / "conf", "each", {**TINY_STUDY, "tuning": {**TINY_STUDY["tuning"], "per_factor": "each"}})
    return tmp_path / "conf"


def test_tuning_stage_runs_the_tuning_grid_on_tuning_seeds_at_the_hardest_factor_value(conf: Path) -> None:
    launch = load("tiny", ["budget=smoke"], str(conf), Path("study"))
    assert stage_overrides(launch, "tune") == [
        "budget=smoke",
        "stage=tune",
        "stop_on_solve=true",
        "optim.optimizer.lr=0.001,0.01",
        "seed=100",
        "task.seq_len=10",  # per_factor=hardest: the largest of the sweep's 5,10 only
    ]
    line = command(launch, "tune")
    assert line[1:7] == ["-m", "rnnbench.training.cli", "-m", "--config-dir", str(conf.resolve()), "+sweep=tiny"]
    assert line[-1] == "hydra.sweep.dir=study/tune"
    narrowed = load("tiny", ["task.seq_len=5,7"], str(conf), Path("study"))  # the user's values replace the sweep's
    assert stage_overrides(narrowed, "tune")[-1] == "task.seq_len=7" and "task.seq_len=5,7" not in command(
        narrowed, "tune"
    )


def test_the_plan_counts_each_stages_jobs_as_the_stages_launch_them(conf: Path) -> None:
    """2 cells x 2 lengths; tuning at the hardest length only (2 groups x 2 rates x 1 seed) or at each (4 x 2);
    the budget's seed sweep is not counted: the stages set their own seeds."""
    assert plan(load("tiny", [], str(conf))) == Plan(tune_runs=4, eval_runs=4, max_steps=2)
    assert plan(load("each", [], str(conf))) == Plan(tune_runs=8, eval_runs=4, max_steps=2)
    assert plan(load("tiny", ["task.seq_len=5,7,9", "trainer.max_steps=300"], str(conf))) == Plan(4, 6, 300)
    assert Plan(48, 30, 4000).sentence() == "48 tuning + 30 evaluation runs of at most 4,000 optimiser steps each"
    assert Plan(2, 1, None).sentence() == "2 tuning + 1 evaluation runs"


def test_a_launch_on_part_of_the_grid_selects_among_its_own_groups_only(conf: Path) -> None:
    """`rnnbench-study tiny model=gru` must not be stopped by the rnn groups a restored archive tuned on an older
    grid: selection reads the jobs inside the launch's grid; keys a job does not set (seed, stage) do not count."""
    narrowed = load("tiny", ["model=gru", "task.seq_len=5,10"], str(conf))
    job = ["seed=100", "stage=tune", "task.seq_len=10", "optim.optimizer.lr=0.01"]
    inside = in_grid(narrowed)
    assert inside(["model=gru", *job]) and inside(["+fault=nan", "model=gru", *job])
    assert not inside(["model=rnn", *job])
    assert not in_grid(load("tiny", ["task.seq_len=5"], str(conf)))(["model=gru", *job])
    assert in_grid(load("tiny", [], str(conf)))(["model=rnn", *job])


def test_each_tunes_every_factor_value_and_eval_runs_the_evaluation_seeds_at_the_selection(conf: Path) -> None:
    launch = load("each", [], str(conf), Path("study"))
    assert not any(o.startswith("task.seq_len") for o in stage_overrides(launch, "tune"))
    assert stage_overrides(launch, "eval") == [
        "stage=eval",
        "stop_on_solve=true",
        f"tuned={SELECTION_FROM_JOB}",
        "seed=0",
    ]
    assert SELECTION_FROM_JOB == "${hydra:sweep.dir}/../selection.json"  # no absolute path: records travel
    assert command(launch, "eval")[-1] == "hydra.sweep.dir=study/eval"
    assert load("each", [], str(conf)).directory == Path("outputs/studies/each")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seed=1,2"], "seed=1,2: the study sets seed itself (its seeds, stages and folders); drop it"),
        (["stage=eval"], "stage=eval: the study sets stage itself (its seeds, stages and folders); drop it"),
        (
            ["optim.optimizer.lr=0.1"],
            "optim.optimizer.lr=0.1: optim.optimizer.lr is the study's tuned key; change study.tuning.grid",
        ),
    ],
)
def test_overrides_the_study_sets_itself_are_refused(conf: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(StudyError) as err:
        load("tiny", overrides, str(conf))
    assert str(err.value) == message


def test_a_malformed_override_or_a_grid_sweeping_the_tuned_key_is_refused(conf: Path) -> None:
    with pytest.raises(StudyError, match=r"^model=\[: not a Hydra override \("):
        load("tiny", ["model=["], str(conf))
    swept = write_sweep(conf, "swept")
    body = yaml.safe_load(swept.read_text())
    body["hydra"]["sweeper"]["params"]["optim.optimizer.lr"] = "0.1,0.2"
    swept.write_text("# @package _global_\n" + yaml.safe_dump(body))
    with pytest.raises(StudyError, match=r"grid sweeps optim\.optimizer\.lr, the study's tuned key"):
        load("swept", [], str(conf))


def test_a_sweep_without_a_study_or_an_unknown_one_is_refused(conf: Path) -> None:
    bare = write_sweep(conf, "bare")
    body = yaml.safe_load(bare.read_text())
    del body["study"]
    bare.write_text("# @package _global_\n" + yaml.safe_dump(body))
    with pytest.raises(StudyError, match=r"sweep bare declares no study: add a study: block"):
        load("bare", [], str(conf))
    write_sweep(conf, "untuned", {"compare": "model.cell", "seeds": [0]})
    with pytest.raises(StudyError, match=r"sweep untuned's study needs study\.tuning and study\.seeds"):
        load("untuned", [], str(conf))
    with pytest.raises(StudyError, match=r"unknown sweep 'nope'; allowed: .*cell.*tiny"):
        load("nope", [], str(conf))


def selection_file(folder: Path) -> Path:
    path = folder / "selection.json"
    choices = [
        {"variant": "gru", "task": "adding", "factor": 10.0, "value": 0.01, "at_edge": True, "scores": []},
        {"variant": "rnn", "task": "adding", "factor": 10.0, "value": 0.001, "at_edge": False, "scores": []},
    ]
    write_selection(path, {"key": "optim.optimizer.lr", "per_factor": "hardest", "choices": choices})
    return path


def test_an_eval_job_sets_its_groups_value_before_anything_is_built(conf: Path, tmp_path: Path) -> None:
    path = selection_file(tmp_path)
    cfg = compose_config(["+sweep=tiny", "model=rnn", "task.seq_len=5", f"tuned={path}"], str(conf))
    assert cfg.optim.optimizer.lr != 0.001
    cfg, tuning = apply_selection(cfg)
    assert cfg.optim.optimizer.lr == 0.001  # rnn, tuned at the hardest seq_len 10, reused at 5
    assert tuning == {"key": "optim.optimizer.lr", "value": 0.001, "selection": str(path), "at_edge": False}
    plain = compose_config(["model=rnn"])
    assert apply_selection(plain) == (plain, None)


def test_an_eval_job_whose_group_is_missing_fails_in_one_line(conf: Path, tmp_path: Path) -> None:
    path = selection_file(tmp_path)
    cfg = compose_config(["+sweep=tiny", "model=lstm", "task.seq_len=5", f"tuned={path}"], str(conf))
    with pytest.raises(StudyError) as err:
        train(cfg, tmp_path / "run")
    assert str(err.value) == f"tuned: no choice for lstm / adding / task.seq_len=5 in {path}; rerun its tuning stage"
    assert not (tmp_path / "run").exists()  # nothing built, nothing written
    missing = compose_config(["+sweep=tiny", "model=rnn", f"tuned={tmp_path / 'none.json'}"], str(conf))
    with pytest.raises(StudyError, match=r"tuned: no selection file at .*none\.json; run the tuning stage first"):
        apply_selection(missing)


def test_the_run_record_and_its_resolved_config_hold_the_tuned_value(conf: Path, tmp_path: Path) -> None:
    path = selection_file(tmp_path)
    overrides = ["+sweep=tiny", "model=gru", "task.seq_len=10", f"tuned={path}", "trainer=smoke"]
    record = train(compose_config(overrides, str(conf)), tmp_path / "run", overrides)
    assert record["status"] == "finished"
    assert record["config"]["optim"]["optimizer"]["lr"] == 0.01 and record["config"]["tuned"] == str(path)
    assert record["tuning"] == {"key": "optim.optimizer.lr", "value": 0.01, "selection": str(path), "at_edge": True}
    assert read_record(tmp_path / "run" / "run.json")["tuning"] == record["tuning"]


def record(stage: str | None, seed: int, status: str = "finished", sweep: str = "tiny") -> dict[str, Any]:
    return {"status": status, "stage": stage, "seed": seed, "overrides": [f"+sweep={sweep}", f"seed={seed}"]}


def test_restore_writes_each_finished_study_record_once_outside_hydras_job_numbers(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    write_record(folder / "tune" / "0" / "run.json", record("tune", 100))  # already here, in Hydra's job 0
    archived = [
        record("tune", 100),
        record("tune", 101),
        record("eval", 0),
        record("eval", 1, status="diverged"),  # a result too: the tuning stage counts it, a relaunch keeps it
        record("eval", 3, status="failed"),  # no result: the relaunch reruns it
        record(None, 0),  # a plain sweep's run
        record("eval", 2, sweep="other"),
    ]
    assert restore(archived, folder, "tiny") == {"restored": 3, "present": 1, "skipped": 3}
    written = {
        (p.parent.parent.name, p.parent.name.startswith("restored-"), read_record(p)["seed"]): p.parent.name
        for p in folder.rglob("run.json")
    }
    assert set(written) == {("tune", False, 100), ("tune", True, 101), ("eval", True, 0), ("eval", True, 1)}
    assert written["tune", False, 100] == "0"
    (folder / "eval" / "7").mkdir()
    (folder / "eval" / "7" / "run.json").write_text("{not json")  # an unreadable record holds no job
    assert restore(archived, folder, "tiny") == {"restored": 0, "present": 4, "skipped": 3}  # idempotent


def test_restore_matches_jobs_by_the_shared_identity_and_never_brings_back_a_set_aside_record(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    write_record(folder / "tune" / "0" / "run.json", record("tune", 100))
    faulted = {**record("tune", 100), "overrides": [*record("tune", 100)["overrides"], "+fault=kill_at_step"]}
    stale = record("tune", 101)
    assert restore([faulted, stale], folder, "tiny") == {"restored": 1, "present": 1, "skipped": 0}
    restored = restored_dir(folder / "tune", stale)
    set_aside(restored)  # what a relaunch does with a restored record its sweep has changed since
    assert not (restored / "run.json").exists()
    assert restore([faulted, stale], folder, "tiny") == {"restored": 0, "present": 2, "skipped": 0}
    assert not (restored / "run.json").exists()  # not restored again: the job reruns instead


def test_read_archive_reads_gzip_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(record("tune", 100)) + "\n\n" + json.dumps(record("eval", 0)) + "\n")
    assert read_archive(path) == [record("tune", 100), record("eval", 0)]
