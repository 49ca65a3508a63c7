"""Safety: checkpoints load with weights_only=True; a W&B API key in the environment ends up in no file a run or a
report writes; the HTML report escapes the names it renders (experiment, variant labels)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from report_fakes import fake_record
from rnnbench.reports.cli import main as report
from rnnbench.tracking.run_record import read_record, write_record

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # the shape of a real key, 40 hex digits; not one
SMOKE = ["trainer=smoke", "task.n_train=64", "task.n_val=32", "task.n_test=32"]


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow  # a training run, its W&B folder and a report searched byte by byte (~25 s)
def test_no_secret_reaches_configs_records_wandb_or_reports_and_the_checkpoint_loads_weights_only(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "WANDB_API_KEY": FAKE_KEY, "WANDB_MODE": "offline"}
    run = tmp_path / "run"
    exe = Path(sys.executable).parent / "rnnbench-train"
    result = subprocess.run(
        [str(exe), *SMOKE, "experiment=safety", f"hydra.run.dir={run}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_record(run / "run.json")
    assert record["status"] == "finished" and (run / ".hydra" / "config.yaml").is_file()
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))  # the W&B run, config included, is on disk
    assert report([str(run), "--out", str(tmp_path / "reports")]) == 0
    assert _files_holding(tmp_path, FAKE_KEY) == []  # run.json, .hydra/, wandb/, checkpoints/, reports/
    state = torch.load(record["checkpoint"], weights_only=True)  # plain tensors and primitives: no pickled code
    assert set(state["state_dict"]) and state["global_step"] == 2


def test_the_html_report_escapes_names(tmp_path: Path) -> None:
    experiment = "<script>alert('experiment')</script>"
    label = '<img src=x onerror="alert(1)">'
    for seed in range(2):
        for cell in ("lstm", label):
            record = fake_record("lstm", seed, 0.02 + 0.01 * seed)
            record["experiment"] = record["config"]["experiment"] = experiment
            record["config"]["model"]["cell"] = cell
            write_record(tmp_path / "runs" / f"{cell[:4]}{seed}" / "run.json", record)
    assert report([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    pages = list((tmp_path / "out").rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text()
        assert "<script" not in text and "<img src=x" not in text and 'onerror="' not in text
    body = "\n".join(p.read_text() for p in pages)
    assert "&lt;script&gt;alert(&#x27;experiment&#x27;)&lt;/script&gt;" in body  # shown, as text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body
