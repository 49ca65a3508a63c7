"""rnnbench-report's run table: every run.json is a row, failed and diverged runs included."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rnnbench.reports.cli import main
from rnnbench.tracking.run_record import write_record


def fake_record(status: str, seed: int, value: float | None) -> dict:
    return {
        "status": status,
        "task": "adding",
        "seed": seed,
        "overrides": ["model=lstm", f"seed={seed}"],
        "config": {"model": {"cell": "lstm"}},
        "primary_metric": "mse",
        "baseline": {"mse": 1 / 6},
        "test": {} if value is None else {"test/mse": value},
        "beats_baseline": None if value is None else value < 0.15,
        "num_parameters": 67713,
    }


def test_table_lists_every_run_with_its_status(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_record(tmp_path / "sweep" / "0" / "run.json", fake_record("finished", 0, 0.01))
    write_record(tmp_path / "sweep" / "1" / "run.json", fake_record("failed", 1, None))
    write_record(tmp_path / "sweep" / "2" / "run.json", fake_record("diverged", 2, None))
    assert main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "report" / "results.md").read_text() == printed
    with open(tmp_path / "report" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["seed"], r["status"], r["value"], r["beats_baseline"]) for r in rows] == [
        ("0", "finished", "0.01", "True"),
        ("1", "failed", "", ""),
        ("2", "diverged", "", ""),
    ]


def test_missing_path_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnbench-report: error: no run records at") and "\n" not in err
