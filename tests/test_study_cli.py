"""`rnnbench-study` end to end on a tiny study (budget=smoke, 4 tuning + 4 evaluation jobs): the tuning stage never
builds or reads the test split, the evaluation runs fresh seeds at each variant's chosen value, relaunching trains
nothing, and neither does a relaunch on a "new machine" restored from the compact record archive."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rnnbench.reports.collect import local_records
from rnnbench.study.cli import main
from rnnbench.study.selection import find_choice
from rnnbench.training.config import config_dir
from study_fakes import TINY_STUDY, write_sweep

SKIP = "already finished, skipping"
# The stage keys come with the protocol branch (conf/train.yaml `stage:`); until it is merged the stages cannot run.
needs_stage = pytest.mark.skipif(
    not re.search(r"^stage:", (config_dir() / "train.yaml").read_text(), re.M),
    reason="conf/train.yaml has no `stage` key yet (the protocol branch adds it)",
)


def study_cli(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "RNNBENCH_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "rnnbench.study.cli", *args, "--config-dir", str(cwd / "conf")]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def records(folder: Path) -> list[dict[str, Any]]:
    return local_records([folder]) if folder.is_dir() else []


def stamps(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("run.json")}


def test_tuning_and_evaluation_seeds_must_be_disjoint_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sweep(tmp_path / "conf", study={**TINY_STUDY, "seeds": [0, 100]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["tiny", "--config-dir", str(tmp_path / "conf")])  # the console entry, in this process: no start-up
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "rnnbench-study: error: study.tuning.seeds must be disjoint from study.seeds, both hold [100]"
    )
    assert not (tmp_path / "outputs").exists()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny study's tuning stage alone, in a fresh data cache (listed right after it)."""
    cwd = tmp_path_factory.mktemp("study")
    write_sweep(cwd / "conf")
    cache = cwd / "cache"
    tune = study_cli(["tiny", "--stage", "tune"], cwd, cache)
    cached = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    return {"cwd": cwd, "cache": cache, "folder": cwd / "outputs" / "studies" / "tiny", "tune": tune, "cached": cached}


@pytest.fixture(scope="module")
def study(tuned: dict[str, Any]) -> dict[str, Any]:
    """Then the whole study (the tuning stage resumed, selection, evaluation), then the same command again."""
    cwd, cache, folder = tuned["cwd"], tuned["cache"], tuned["folder"]
    rest = study_cli(["tiny"], cwd, cache)
    before, selection = stamps(folder), (folder / "selection.json").read_text()
    again = study_cli(["tiny"], cwd, cache)
    return {
        **tuned,
        "rest": rest,
        "again": again,
        "stamps": (before, stamps(folder)),
        "selection_text": (selection, (folder / "selection.json").read_text()),
    }


@needs_stage
def test_tuning_stage_never_builds_or_reads_the_test_split(tuned: dict[str, Any]) -> None:
    assert tuned["tune"].returncode == 0, tuned["tune"].stderr[-3000:]
    assert not (tuned["folder"] / "eval").exists() and not (tuned["folder"] / "selection.json").exists()
    runs = records(tuned["folder"] / "tune")
    assert len(runs) == 4  # rnn, gru x lr 1e-3, 1e-2 x one tuning seed, at the hardest seq_len only
    assert {(r["stage"], r["seed"], r["config"]["task"]["seq_len"]) for r in runs} == {("tune", 100, 10)}
    assert {r["config"]["optim"]["optimizer"]["lr"] for r in runs} == {1e-3, 1e-2}
    for record in runs:
        assert not record.get("test") and not re.search(r'"test/', json.dumps(record))  # no test metric anywhere
        assert f"val/{record['primary_metric']}" in record["best_val"]  # scored on validation
    splits = [re.search(r"-(train|validation|test)(-\d+-of-\d+)?\.arrow$", f) for f in tuned["cached"]]
    assert {m.group(1) for m in splits if m} == {"train", "validation"}  # built train and val, never test


@pytest.mark.slow  # about a minute: four more study launches, eight rnnbench-train processes
@needs_stage
def test_evaluation_runs_fresh_seeds_at_each_groups_chosen_value(study: dict[str, Any]) -> None:
    rest = study["rest"]
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert rest.stdout.count(SKIP) == 4  # the tuning stage resumed: all four tuning jobs were finished
    folder = study["folder"]
    selection = json.loads((folder / "selection.json").read_text())
    assert selection["per_factor"] == "hardest" and selection["key"] == "optim.optimizer.lr"
    assert [(c["variant"], c["task"], c["factor"]) for c in selection["choices"]] == [
        ("gru", "adding", 10.0),
        ("rnn", "adding", 10.0),
    ]
    assert all(c["at_edge"] for c in selection["choices"])  # a two-value grid: every choice is at an edge
    evaluated = records(folder / "eval")
    assert sorted((r["config"]["model"]["cell"], r["config"]["task"]["seq_len"]) for r in evaluated) == [
        ("gru", 5),
        ("gru", 10),
        ("rnn", 5),
        ("rnn", 10),
    ]
    for record in evaluated:
        assert record["status"] == "finished" and record["stage"] == "eval" and record["seed"] == 0
        assert record["seed"] not in TINY_STUDY["tuning"]["seeds"]
        chosen = find_choice(selection, (record["config"]["model"]["cell"], "adding", 10.0))["value"]
        assert record["config"]["optim"]["optimizer"]["lr"] == chosen  # the resolved config holds the choice
        assert record["tuning"] == {
            "key": "optim.optimizer.lr",
            "value": chosen,
            "selection": str((folder / "selection.json").resolve()),
            "at_edge": True,
        }
        assert f"test/{record['primary_metric']}" in record["test"]


@pytest.mark.slow
@needs_stage
def test_relaunching_the_study_trains_nothing(study: dict[str, Any]) -> None:
    again = study["again"]
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(SKIP) == 8  # 4 tuning + 4 evaluation jobs
    before, after = study["stamps"]
    assert len(before) == 8 and after == before
    assert study["selection_text"][0] == study["selection_text"][1]


@pytest.mark.slow
@needs_stage
def test_restoring_from_the_record_archive_on_a_new_machine_trains_nothing(study: dict[str, Any]) -> None:
    cwd, folder = study["cwd"], study["folder"]
    archive = cwd / "reports" / "tiny" / "runs.jsonl.gz"  # what rnnbench-report commits: one record per line
    archive.parent.mkdir(parents=True)
    with gzip.open(archive, "wt") as f:
        for record in records(folder):
            f.write(json.dumps(record, sort_keys=True) + "\n")
    fresh = cwd / "elsewhere"  # `outputs/` did not travel: a new study folder, the default archive found on its own
    result = study_cli(["tiny", "--dir", str(fresh)], cwd, study["cache"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restored 8 run record(s)" in result.stdout
    assert result.stdout.count(SKIP) == 8
    assert {p.parent.name.startswith("restored-") for p in fresh.rglob("run.json")} == {True}
    assert len(list(fresh.rglob("run.json"))) == 8
    assert (fresh / "selection.json").read_text() == study["selection_text"][0]


@pytest.mark.slow
@needs_stage
def test_more_evaluation_seeds_run_only_the_new_seeds_and_keep_every_finished_job(study: dict[str, Any]) -> None:
    """`study.seeds=[...]` on the command line (an undecided hypothesis wants more seeds): the jobs already run are
    the same jobs (job_identity: the study block names none), so only the new seed's evaluation jobs train."""
    cwd, folder = study["cwd"], study["folder"]
    before = stamps(folder)
    more = study_cli(["tiny", "study.seeds=[0,1]"], cwd, study["cache"])
    assert more.returncode == 0, more.stderr[-3000:]
    assert more.stdout.count(SKIP) == 8  # 4 tuning + 4 evaluation jobs kept
    assert {p: t for p, t in stamps(folder).items() if p in before} == before
    new = [r for r in records(folder / "eval") if r["seed"] == 1]
    assert len(new) == 4 and {r["status"] for r in new} == {"finished"}
    assert not list(folder.rglob("superseded"))
