"""A whole sweep at the smoke budget, end to end: `rnnbench-train -m +sweep=cell` then `rnnbench-report`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench.reports.cli import main

TRAIN = str(Path(sys.executable).with_name("rnnbench-train"))


def test_smoke_sweep_to_report(tmp_path: Path) -> None:
    runs, out = tmp_path / "multirun", tmp_path / "reports"
    # the cell sweep cut to 2 cells x 1 task; budget=smoke gives 2 seeds of 2 batches each, probed (diagnostics on)
    command = [TRAIN, "-m", "+sweep=cell", "budget=smoke", "task=adding", "model=lstm,gru", "logger=none"]
    done = subprocess.run(
        [*command, f"hydra.sweep.dir={runs}"], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert main([str(runs), "--out", str(out)]) == 0
    folder = out / "cell"
    for name in ("README.md", "results.csv", "index.html", "factor.png", "curves.png", "cost.png", "grad_vs_lag.png"):
        assert (folder / name).stat().st_size > 0
    with open(folder / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["task"], r["variant"], r["seed"], r["status"]) for r in rows) == [
        ("adding", cell, seed, "finished") for cell in ("gru", "lstm") for seed in ("0", "1")
    ]
    readme = (folder / "README.md").read_text()
    # the budget's seeds lead: train.yaml merges the budget before the sweep file that selects it
    assert "rnnbench-train -m seed=0,1 task=adding model=lstm,gru +sweep=cell budget=smoke logger=none" in readme
    assert "[cell](cell/README.md)" in (out / "README.md").read_text()


MINE = """# @package _global_
defaults:
  - _self_
  - override /budget: smoke
experiment: mine
study:
  claim: "my own claim: a GRU beats an LSTM on adding"
  compare: model.cell
  reference: lstm
  hypotheses:
    - {id: gru_beats_lstm, variant: gru, relation: better}
hydra:
  sweeper:
    params:
      task: adding
      model: lstm,gru
"""


@pytest.mark.slow  # a second whole sweep-to-report chain (~25 s); test_smoke_sweep_to_report runs by default
def test_a_users_own_sweep_gets_a_verdict_with_no_code_change(tmp_path: Path) -> None:
    """A sweep file with its own hypothesis in a --config-dir, run at the smoke budget, then reported."""
    conf, runs, out = tmp_path / "my_conf", tmp_path / "multirun", tmp_path / "reports"
    (conf / "sweep").mkdir(parents=True)
    (conf / "sweep" / "mine.yaml").write_text(MINE)
    command = [TRAIN, "--config-dir", str(conf), "-m", "+sweep=mine", "seed=0", "logger=none"]
    done = subprocess.run(
        [*command, f"hydra.sweep.dir={runs}"], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert main([str(runs), "--out", str(out)]) == 0
    summary = json.loads((out / "mine" / "summary.json").read_text())
    (found,) = summary["findings"]
    # two smoke batches teach neither cell anything: the verdict says so instead of testing noise
    assert (found["id"], found["verdict"]) == ("gru_beats_lstm", "neither learned")
    assert summary["claim"] == "my own claim: a GRU beats an LSTM on adding"
    readme = (out / "mine" / "README.md").read_text()
    assert "| gru_beats_lstm | adding | gru | lstm | 1 vs 1 | neither learned |" in readme
