"""rnnbench-report over recorded runs: every run is a row, failures are shown, regeneration is byte-identical."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from report_fakes import fake_sweep
from rnnbench.reports.cli import main
from rnnbench.reports.sweep_report import busy_seconds, compute_line
from rnnbench.tracking.run_record import write_record

FILES = ("README.md", "results.csv", "index.html", "summary.json", "factor.png", "curves.png", "cost.png")
FILES += ("profile.png", "runs.jsonl.gz")


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A multirun folder of fake `cell` runs, one gru seed failed and one diverged."""
    for i, record in enumerate(fake_sweep()):
        write_record(tmp_path / "multirun" / str(i) / "run.json", record)
    return tmp_path / "multirun"


def test_report_shows_failed_and_diverged_runs(sweep_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    assert main([str(sweep_dir), "--out", str(out)]) == 0
    assert all((out / "cell" / name).is_file() for name in FILES)
    with open(out / "cell" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["seed"], r["status"], r["value"]) for r in rows] == [
        ("lstm", "0", "finished", "0.02"),
        ("lstm", "1", "finished", "0.03"),
        ("lstm", "2", "finished", "0.025"),
        ("lstm", "3", "finished", "0.035"),
        ("gru", "0", "finished", "0.028"),
        ("gru", "1", "finished", "0.022"),
        ("gru", "2", "failed", ""),
        ("gru", "3", "diverged", ""),
    ]
    readme = (out / "cell" / "README.md").read_text()
    assert readme.splitlines()[6].startswith("rnnbench-train -m model=lstm,gru seed=0,1,2,3 +sweep=cell budget=smoke")
    assert f"rnnbench-report {out}/cell/runs.jsonl.gz --out {out}" in readme  # regenerates from the archive
    # per variant: runs, finished, failed, diverged, other; gru's mean is over its 2 finished seeds only, with a
    # bootstrap interval inside their range
    assert "| adding | gru | mse | 4 | 2 | 1 | 1 | 0 | 0.025 [0.022, 0.028] | 0.028 0.022 | 2/4 |" in readme
    assert "| adding | lstm | mse | 4 | 4 | 0 | 0 | 0 | 0.0275 [0.0225, 0.0325] |" in readme
    assert "8 runs: 1 diverged, 1 failed, 6 finished." in readme
    assert "gru similar to lstm" in readme and "**Rule.**" in readme and "**Family.** Holm" in readme
    # the failed and diverged gru runs are in the test (4 vs 4), at the baseline in the difference of means
    assert "| gru_similar | adding | gru | lstm | 4 vs 4 | diff 0.0683, 90% CI" in readme
    html = (out / "cell" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "diverged" in html and "<style>" in html
    assert "[cell](cell/README.md)" in (out / "README.md").read_text()


def test_regeneration_is_byte_identical(sweep_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    assert main([str(sweep_dir), "--out", str(out)]) == 0
    first = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert main([str(sweep_dir), "--out", str(out)]) == 0
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == first
    assert b"tIME" not in (out / "cell" / "factor.png").read_bytes()  # no PNG timestamp chunk


def test_missing_path_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnbench-report: error: no run records at") and "\n" not in err


def test_wall_time_counts_the_time_a_run_was_going_not_the_pause_between_launches() -> None:
    """Two overlapping runs (10:00-11:00, 10:30-12:00) and one launched a day later (1 h): 3 h with a run going,
    3.5 h of job time, 27 h from the first start to the last end."""
    day = 86400
    assert busy_seconds([(0, 3600), (1800, 7200), (day, day + 3600)]) == 3 * 3600
    assert busy_seconds([(0, 3600), (600, 1200)]) == 3600  # one inside another
    runs = [("2026-12-01T10:00:00+0000", "2026-12-01T11:00:00+0000")]
    runs += [("2026-12-01T10:30:00+0000", "2026-12-01T12:00:00+0000")]
    runs.append(("2026-12-02T12:00:00+0000", "2026-12-02T13:00:00+0000"))
    records = [{"started_at": a, "finished_at": b} for a, b in runs] + [{"started_at": "garbled"}]
    assert compute_line(records) == (
        "Compute: 3 runs, 3.50 h of job time, 3.00 h of wall time with a run going (27.00 h from the first start to "
        "the last end, pauses between launches included)."
    )
