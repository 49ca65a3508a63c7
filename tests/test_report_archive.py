"""The record archive next to every report: byte-identical for the same records, read back as a source, and a
committed report (tests/data/reports/fixture, made from its committed archive) regenerates to the same files."""

from __future__ import annotations

import copy
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from report_fakes import fake_sweep, fixture_records
from rnnbench.reports.archive import ARCHIVE_NAME, read_archive, write_archive
from rnnbench.reports.cli import analyses, main
from rnnbench.reports.sweep_report import (
    _merged,
    extension_commands,
    pending_line,
    stage_line,
    study_command,
    summary,
)
from rnnbench.tracking.run_record import write_record

FIXTURE = Path(__file__).parent / "data" / "reports"
REPO_REPORTS = Path(__file__).parents[1] / "reports"


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_archive_is_byte_identical_in_any_record_order(tmp_path: Path) -> None:
    records = fake_sweep()
    a = write_archive(tmp_path / "a" / ARCHIVE_NAME, records).read_bytes()
    b = write_archive(tmp_path / "b" / ARCHIVE_NAME, records[::-1]).read_bytes()
    assert a == b and a[4:8] == b"\0\0\0\0"  # gzip header without a timestamp
    back = read_archive(tmp_path / "a" / ARCHIVE_NAME)
    assert sorted(r["seed"] for r in back) == sorted(r["seed"] for r in records) and len(back) == 8


def test_a_report_from_its_archive_equals_the_report_from_the_run_folders(tmp_path: Path, monkeypatch) -> None:
    for i, record in enumerate(fake_sweep()):
        write_record(tmp_path / "multirun" / str(i) / "run.json", record)
    monkeypatch.chdir(tmp_path)
    assert main(["multirun", "--out", "reports"]) == 0
    first = files(tmp_path / "reports")
    shutil.rmtree("multirun")
    for name in first:  # keep the archive alone
        if not name.endswith(ARCHIVE_NAME):
            (tmp_path / "reports" / name).unlink()
    assert main([f"reports/cell/{ARCHIVE_NAME}", "--out", "reports"]) == 0
    assert files(tmp_path / "reports") == first


def test_the_committed_fixture_report_regenerates_from_its_records(tmp_path: Path, monkeypatch) -> None:
    """The committed records give the committed files (regenerate them with `cd tests/data && rnnbench-report
    reports/fixture/runs.jsonl.gz --out reports` after a deliberate change to the reports)."""
    assert read_archive(FIXTURE / "fixture" / ARCHIVE_NAME) == read_archive(
        write_archive(tmp_path / ARCHIVE_NAME, fixture_records())
    )
    shutil.copytree(FIXTURE, tmp_path / "reports")
    monkeypatch.chdir(tmp_path)
    assert main([f"reports/fixture/{ARCHIVE_NAME}", "--out", "reports"]) == 0
    # the sweep's folder; the index also lists the declared studies, which change whenever a sweep file is added
    assert files(tmp_path / "reports" / "fixture") == files(FIXTURE / "fixture")


def _committed(sweep: str) -> object:
    """One committed report (cell, the smallest of the full ones) in the default run, every other one slow."""
    return pytest.param(sweep, marks=() if sweep == "cell" else pytest.mark.slow)


@pytest.mark.parametrize("sweep", [_committed(p.parent.name) for p in sorted(REPO_REPORTS.glob(f"*/{ARCHIVE_NAME}"))])
def test_every_committed_report_regenerates_from_its_records(sweep: str, tmp_path: Path, monkeypatch) -> None:
    """By the command its own Regenerate block gives: the archive, and the bench file where it quotes one."""
    shutil.copytree(REPO_REPORTS / sweep, tmp_path / "reports" / sweep)
    bench = re.findall(r"--bench (\S+)", (REPO_REPORTS / sweep / "README.md").read_text())
    for path in set(bench):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_REPORTS.parent / path, tmp_path / path)
    monkeypatch.chdir(tmp_path)
    assert main([f"reports/{sweep}/{ARCHIVE_NAME}", *(["--bench", bench[0]] if bench else []), "--out", "reports"]) == 0
    assert files(tmp_path / "reports" / sweep) == files(REPO_REPORTS / sweep)


def test_a_study_with_only_its_tuning_stage_run_reports_it_as_in_progress(tmp_path: Path, monkeypatch) -> None:
    """An interrupted study is reported to carry its records to the next machine: no crash for want of evaluation
    runs (the test-metric figures are left out), and the report and the front page say it is in progress instead of
    reading its hypotheses as undecided."""
    tuning = [r for r in fixture_records() if r["stage"] == "tune"]
    write_archive(tmp_path / "tuned" / ARCHIVE_NAME, tuning)
    monkeypatch.chdir(tmp_path)
    assert main([f"tuned/{ARCHIVE_NAME}", "--out", "reports"]) == 0
    readme = (tmp_path / "reports" / "fixture" / "README.md").read_text()
    assert (
        "**In progress: the evaluation stage has 0 of its 12 runs** (4 tuned groups x 3 seeds; 8 tuning runs" in readme
    )
    assert sorted(p.name for p in (tmp_path / "reports" / "fixture").glob("*.png")) == ["tuning.png"]
    front = [line for line in (tmp_path / "reports" / "README.md").read_text().splitlines() if "`gru_" in line]
    assert len(front) == 3 and all("in progress (inconclusive so far)" in line for line in front)
    # a declared study with no report says what running it takes (the shipped sweeps: none is reported here)
    planned = (
        r"- `attention`: .* To decide its hypotheses: \d+ tuning \+ \d+ evaluation runs of at most [\d,]+ optimiser"
    )
    assert re.search(planned, (tmp_path / "reports" / "README.md").read_text())
    assert len(read_archive(tmp_path / "reports" / "fixture" / ARCHIVE_NAME)) == 8
    some = tuning + [r for r in fixture_records() if r["stage"] == "eval"][:5]  # the evaluation stage under way
    for r in some[-5:-2]:  # one group's runs all still running: no point on its panel's log axis
        r.update(status="running", test={})
    write_archive(tmp_path / "tuned" / ARCHIVE_NAME, some)
    assert main([f"tuned/{ARCHIVE_NAME}", "--out", "reports"]) == 0
    assert "the evaluation stage has 5 of its 12 runs" in (tmp_path / "reports" / "fixture" / "README.md").read_text()


def test_more_seeds_for_some_groups_is_no_unfinished_evaluation_stage() -> None:
    """A relaunch added seeds for one group (`study.seeds=[0..4]`): it asks 5, the others their 3, so the
    study is complete once each group has the seeds its own launch declared, and in progress while one lacks some."""
    records = fixture_records()
    group = [r for r in records if r["stage"] == "eval" and r["config"]["model"]["cell"] == "gru"]
    x = group[0]["config"]["task"]["seq_len"]
    added = []
    for seed in (3, 4):
        extra = copy.deepcopy(next(r for r in group if r["config"]["task"]["seq_len"] == x))
        extra["seed"] = extra["config"]["seed"] = seed
        extra["config"]["study"]["seeds"] = [0, 1, 2, 3, 4]
        extra["overrides"] = [*extra["overrides"], "study.seeds=[0,1,2,3,4]"]
        added.append(extra)
    (analysis,) = analyses(records + added)
    assert stage_line(analysis) == ""
    assert extension_commands(analysis) == [  # the Regenerate block names the relaunch that added them: that group
        "# then, for model=gru task.seq_len=10: study.seeds=[0,1,2,3,4]",
        "rnnbench-study fixture model=gru task.seq_len=10 'study.seeds=[0,1,2,3,4]'",
    ]
    (partial,) = analyses(records + added[:1])
    assert "the evaluation stage has 13 of its 14 runs** (4 tuned groups of 3 to 5 seeds;" in stage_line(partial)


def test_extended_groups_fold_into_as_few_relaunches_as_name_them_exactly() -> None:
    """depth's extension: 4-layer stacks, plain (False/none), residual (True/none) and residual+ln (True/output) but
    not ln (False/output): two relaunches, neither naming ln; a full product folds to one."""
    combos = {("4", "False", "none"), ("4", "True", "none"), ("4", "True", "output")}
    assert _merged(combos) == [  # folded in sorted order: plain with residual, then residual+ln alone
        (frozenset({"4"}), frozenset({"False", "True"}), frozenset({"none"})),
        (frozenset({"4"}), frozenset({"True"}), frozenset({"output"})),
    ]
    full = {(a, b) for a in "xy" for b in "123"}
    assert _merged(full) == [(frozenset("xy"), frozenset("123"))]


def test_an_unfinished_study_is_resumed_by_its_whole_grid_not_by_the_part_that_ran() -> None:
    """Only T = 10 has run so far: every record shares task.seq_len=10, which a finished study would read as a
    narrowed launch. The declared grid sweeps it, so while in progress the resume command leaves it out; once the
    study is complete (or where no sweep declares that key) the shared value is the launch's own."""
    grid = {"task.seq_len": ("10", "50"), "model": ("lstm", "gru")}
    short = [r for r in fixture_records() if r["config"]["task"]["seq_len"] == 10]
    (partial,) = analyses([r for r in short if r["stage"] == "tune"])
    assert stage_line(partial) and study_command(partial) == "rnnbench-study fixture task.seq_len=10"
    declared = replace(partial, grid=grid)
    assert study_command(declared) == "rnnbench-study fixture"
    assert "`rnnbench-study fixture` resumes the study" in stage_line(declared)
    tuned = sum(r["stage"] == "tune" for r in short)  # and where the sweep file's grid asks for more tuning runs:
    line = stage_line(replace(declared, tune_planned=tuned + 4))
    assert f"**In progress: the tuning stage has {tuned} of its {tuned + 4} runs** (the sweep file's" in line
    cut = [dict(r, status="interrupted") if i == 0 else r for i, r in enumerate(short) if r["stage"] == "tune"]
    (halted,) = analyses(cut)  # an interrupted tuning run is still to run: not counted as one of the stage's runs
    line = stage_line(replace(halted, grid=grid, tune_planned=tuned + 4))
    assert f"the tuning stage has {tuned - 1} of its {tuned + 4} runs** (1 more interrupted or running: a " in line
    (narrowed,) = analyses(short)  # T = 10 tuned and evaluated: a complete study launched with task.seq_len=10
    assert not stage_line(narrowed)
    assert study_command(replace(narrowed, grid=grid)) == "rnnbench-study fixture task.seq_len=10"


def test_a_group_tuned_on_part_of_its_grid_keeps_the_study_in_progress() -> None:
    """Every evaluation seed is there, but one group's tuning lacks a run (a narrowed relaunch, then an interrupted
    one): its choice may still change, so the study is in progress; with the run back it is complete."""
    records = fixture_records()
    tuning = [i for i, r in enumerate(records) if r["stage"] == "tune"]
    (complete,) = analyses(records)
    assert stage_line(complete) == ""
    (short,) = analyses([r for i, r in enumerate(records) if i != tuning[0]])
    line = stage_line(short)
    assert "**In progress: 1 of the 4 tuned groups lack some of their tuning runs** (grid x tuning seeds; 7" in line


def test_a_finished_study_whose_sweep_file_asks_for_more_says_so_without_calling_itself_in_progress() -> None:
    """The sweep file widened its tuning grid after the study ran (cell and depth added 3e-4): the verdicts stand
    for the runs recorded, and the report says how many tuning runs the file asks for and how to run them."""
    (complete,) = analyses(fixture_records())
    tuned = sum(r.stage == "tune" for r in complete.rows)
    assert pending_line(complete) == "" and pending_line(replace(complete, tune_planned=tuned)) == ""
    widened = replace(complete, tune_planned=tuned + 4)
    assert stage_line(widened) == ""  # not in progress: every tuned group is complete at its recorded grid
    line = pending_line(widened)
    assert f"{tuned + 4} tuning runs at its current grid, {tuned} recorded" in line
    assert "`rnnbench-study fixture` runs the rest" in line
    assert summary(widened, [])["tuning_declared"] == [tuned, tuned + 4] and "in_progress" not in summary(widened, [])
    assert "tuning_declared" not in summary(complete, [])


def test_a_value_the_sweep_file_fixes_is_implied_not_repeated_in_the_study_command() -> None:
    short = [r for r in fixture_records() if r["config"]["task"]["seq_len"] == 10]
    (narrowed,) = analyses(short)
    assert study_command(replace(narrowed, grid={"task.seq_len": ("10",)})) == "rnnbench-study fixture"
    assert study_command(replace(narrowed, grid={"task.seq_len": ("50",)})) == "rnnbench-study fixture task.seq_len=10"


def test_a_report_names_the_evaluation_runs_of_an_earlier_protocol_it_left_out(tmp_path: Path, monkeypatch) -> None:
    """Evaluation runs made under the other `stop_on_solve` than the study's rule sets now: in the archive, in no
    figure, and said so (reports/seq_len's adding runs, stopped at their first solve before the rule)."""
    records = fixture_records()
    stopped = [copy.deepcopy(r) for r in records if r["stage"] == "eval"]
    for r in stopped:
        r["config"]["stop_on_solve"] = not r["config"].get("stop_on_solve")
        r["overrides"] = [*r["overrides"], f"stop_on_solve={r['config']['stop_on_solve']}"]
    write_archive(tmp_path / "runs" / ARCHIVE_NAME, records + stopped)
    monkeypatch.chdir(tmp_path)
    assert main([f"runs/{ARCHIVE_NAME}", "--out", "reports"]) == 0
    readme = (tmp_path / "reports" / "fixture" / "README.md").read_text()
    assert f"**{len(stopped)} evaluation runs of an earlier protocol are left out**" in readme
    assert len(read_archive(tmp_path / "reports" / "fixture" / ARCHIVE_NAME)) == len(records) + len(stopped)
