"""The W&B source and W&B Report, offline: a fake public API stands in for `wandb.Api()`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from report_fakes import fake_sweep
from rnnbench.reports.cli import analyses
from rnnbench.reports.collect import local_records
from rnnbench.reports.wandb_report import build_report
from rnnbench.reports.wandb_source import split_overrides, wandb_records
from rnnbench.tracking.run_record import write_record
from rnnbench.training.train import run_name

STATES = {"finished": "finished", "failed": "failed", "diverged": "failed"}  # what wandb.finish(exit_code) leaves


class FakeRun:
    """What rnnbench-train leaves in W&B for one job, as the public API returns it."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.name = run_name(record["overrides"])
        self.group = record["experiment"]
        self.state = STATES[record["status"]]
        self.config = record["config"]
        last_loss = record["history"][-1]["train/loss"]
        self.summary_metrics = {
            **record["test"],
            **{f"baseline/{k}": v for k, v in record["baseline"].items()},
            "num_parameters": record["num_parameters"],
            "train/loss": float(last_loss),  # a diverged run's last loss is NaN
        }
        self._history = record["history"]

    def scan_history(self) -> list[dict[str, Any]]:
        """Lightning's rows: a step row with the training loss, then the epoch-end row; plus a row without epoch."""
        rows: list[dict[str, Any]] = [{"_step": 0, "trainer/global_step": 0}]
        for h in self._history:
            step = {"trainer/global_step": h["step"]}
            rows.append({"epoch": h["epoch"], "train/loss": h["train/loss"], "val/mse": None, **step})
            rows.append(
                {"epoch": h["epoch"], **{k: v for k, v in h.items() if k.startswith(("val/", "perf/"))}, **step}
            )
        return rows


class FakeApi:
    """`wandb.Api()` with only `runs`, remembering what it was asked for."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.asked: list[tuple[str, Any]] = []

    def runs(self, path: str, filters: dict[str, Any] | None = None) -> list[FakeRun]:
        self.asked.append((path, filters))
        return [FakeRun(r) for r in self.records if not filters or r["experiment"] == filters["group"]]


def _rows(records: list[dict[str, Any]]) -> list[Any]:
    return [row for analysis in analyses(records) for row in analysis.rows]


def test_wandb_source_gives_the_same_rows_as_run_json(tmp_path: Path) -> None:
    for i, record in enumerate(fake_sweep()):
        write_record(tmp_path / str(i) / "run.json", record)
    api = FakeApi(fake_sweep())
    local = _rows(local_records([tmp_path]))
    remote = _rows(wandb_records(api, "me", "rnnbench", experiment="cell"))
    assert api.asked == [("me/rnnbench", {"group": "cell"})]
    assert [r.status for r in remote].count("diverged") == 1 and [r.status for r in remote].count("failed") == 1
    assert len(local) == len(remote) == 8
    for a, b in zip(local, remote, strict=True):  # NaN != NaN, so compare curves with NaN made comparable
        assert a.__dict__ | {"curve": None} == b.__dict__ | {"curve": None}
        assert [(e, "nan" if math.isnan(v) else v) for e, v in a.curve] == [
            (e, "nan" if math.isnan(v) else v) for e, v in b.curve
        ]


def test_split_overrides_keeps_lists_together() -> None:
    assert split_overrides("model=lstm,model.hidden_size=[64,32],+x='a,b'") == [
        "model=lstm",
        "model.hidden_size=[64,32]",
        "+x='a,b'",
    ]
    assert split_overrides("defaults") == []


def test_wandb_report_is_built_offline() -> None:
    (analysis,) = analyses(fake_sweep())
    report = build_report(analysis, entity="me", project="rnnbench")
    assert (report.entity, report.project, report.title) == ("me", "rnnbench", "rnnbench sweep: cell")
    heading, text, grid = report.blocks
    assert heading.text == "Sweep cell"
    assert "gru similar to lstm" in text.text and "| adding | gru | mse | 4 | 2 | 1 | 1 |" in text.text
    assert "| gru_similar | adding | gru | lstm | 4 vs 4 |" in text.text
    (runset,) = grid.runsets
    assert (runset.entity, runset.project) == ("me", "rnnbench")
    assert [p.title for p in grid.panels] == ["val/mse per epoch", "test/mse", "parameters", "seconds per epoch"]
