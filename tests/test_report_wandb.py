"""The W&B source and W&B Report, offline: a fake public API stands in for `wandb.Api()`."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from report_fakes import fake_sweep
from rnnbench.reports.cli import analyses
from rnnbench.reports.collect import local_records
from rnnbench.reports.sweep_report import write_sweep
from rnnbench.reports.wandb_report import build_report, log_report_files, results_table
from rnnbench.reports.wandb_source import run_record, split_overrides, wandb_records
from rnnbench.reports.wandb_workspace import build_workspace
from rnnbench.tracking.run_record import write_record
from rnnbench.tracking.wandb_run import SWEEP_PARAMS_KEY, record_summary
from rnnbench.training.train import run_name


class FakeRun:
    """What rnnbench-train leaves in W&B for one job, as the public API returns it: the state finish_run's exit code
    leaves, the resolved config (plus `sweep_params` under `wandb agent`), the summary `record_summary` writes over
    the last logged values. `legacy`: the summary of runs logged before it had `status`."""

    def __init__(self, record: dict[str, Any], legacy: bool = False) -> None:
        self.name = run_name(record["overrides"])
        self.group = record["experiment"]
        self.state = "finished" if record["status"] == "finished" else "failed"
        self.config = record["config"]
        if record.get("agent"):
            params = [o.split("=", 1) for o in record["overrides"] if not o.startswith("+")]
            self.config = record["config"] | {SWEEP_PARAMS_KEY: dict(params)}
        last = {"train/loss": float(record["history"][-1]["train/loss"])}  # a diverged run's last loss is NaN
        if legacy:
            self.summary_metrics = {
                **record["test"],
                **{f"baseline/{k}": v for k, v in record["baseline"].items()},
                "num_parameters": record["num_parameters"],
                **last,
            }
        else:
            self.summary_metrics = last | record_summary({k: v for k, v in record.items() if k != "agent"})
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

    def __init__(self, records: list[dict[str, Any]], legacy: bool = False) -> None:
        self.records = records
        self.legacy = legacy
        self.asked: list[tuple[str, Any]] = []

    def runs(self, path: str, filters: dict[str, Any] | None = None) -> list[FakeRun]:
        self.asked.append((path, filters))
        return [FakeRun(r, self.legacy) for r in self.records if not filters or r["experiment"] == filters["group"]]


def _rows(records: list[dict[str, Any]]) -> list[Any]:
    return [row for analysis in analyses(records) for row in analysis.rows]


def _agent_sweep() -> list[dict[str, Any]]:
    """The fake sweep with two runs launched by `wandb agent`, one of them the diverged one."""
    return [r | {"agent": True} if i in (0, 7) else r for i, r in enumerate(fake_sweep())]


@pytest.mark.parametrize("legacy", [False, True])
def test_wandb_source_gives_the_same_rows_as_run_json(tmp_path: Path, legacy: bool) -> None:
    """With the summary's status (and with runs logged before it, from the state and a NaN loss)."""
    for i, record in enumerate(fake_sweep()):
        write_record(tmp_path / str(i) / "run.json", record)
    api = FakeApi(_agent_sweep(), legacy)
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


def test_wandb_source_reads_statuses_from_the_summary_not_the_state() -> None:
    """A run interrupted by Ctrl-C exits non-zero (state failed) with a finite loss: its summary says interrupted."""
    record = fake_sweep()[6] | {"status": "interrupted"}
    (remote,) = wandb_records(FakeApi([record]), "me", "rnnbench")
    assert remote["status"] == "interrupted"
    (legacy,) = wandb_records(FakeApi([record], legacy=True), "me", "rnnbench")
    assert legacy["status"] == "failed"  # all the state could say


def test_an_agent_run_logged_with_a_clobbered_config_is_named_not_crashed_on() -> None:
    run = FakeRun(fake_sweep()[0])
    run.config = run.config | {"task": "adding", "model": "lstm"}  # what agent runs got before rnnbench kept it
    with pytest.raises(ValueError, match="has task='adding' in its config, not the composed task"):
        run_record(run)


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
    assert [p.title for p in grid.panels] == ["val/mse per step", "test/mse", "parameters", "seconds per epoch"]


def _with_study(records: list[dict[str, Any]], study: dict[str, Any]) -> list[dict[str, Any]]:
    return [r | {"config": r["config"] | {"study": study}} for r in records]


def test_wandb_workspace_is_built_offline_from_the_runs_study_block() -> None:
    runs = _with_study(fake_sweep(), {"compare": ["model.cell", "model.hidden_size"], "factor": "task.seq_len"})
    workspace = build_workspace(runs, entity="me", project="rnnbench")
    assert (workspace.entity, workspace.project, workspace.name) == ("me", "rnnbench", "rnnbench sweep: cell")
    assert workspace.settings.x_axis == "trainer/global_step"
    assert [s.name for s in workspace.sections] == ["val/mse per step", "against task.seq_len", "parameters and time"]
    view = workspace._to_model().model_dump(by_alias=True, mode="json")  # what save() sends, built offline
    (runset,) = view["spec"]["section"]["runSets"]
    assert runset["filters"]["filters"] == [
        {"key": {"section": "config", "name": "experiment"}, "op": "=", "value": "cell", "disabled": False}
    ]
    assert runset["grouping"] == [
        {"section": "config", "name": "model.value.cell"},
        {"section": "config", "name": "model.value.hidden_size"},
    ]
    curve, train = workspace.sections[0].panels
    assert (curve.x, curve.y) == ("trainer/global_step", ["val/mse"]) and train.y == ["train/loss"]
    (factor,) = workspace.sections[1].panels
    assert (factor.x.name, factor.y.name) == ("task.seq_len", "test/mse")
    assert [p.metrics for p in workspace.sections[2].panels] == [
        ["test/mse"],
        ["num_parameters"],
        ["train_time_s"],
        ["perf/epoch_time_s"],
    ]


def test_wandb_workspace_without_a_study_groups_by_the_cell_and_has_no_factor_plot() -> None:
    workspace = build_workspace(fake_sweep(), entity="me", project="rnnbench")
    assert [s.name for s in workspace.sections] == ["val/mse per step", "parameters and time"]
    assert [g.name for g in workspace.runset_settings.groupby] == ["model.cell"]


def test_wandb_report_links_to_the_workspace() -> None:
    (analysis,) = analyses(fake_sweep())
    _, text, _ = build_report(analysis, "me", "rnnbench", workspace_url="https://wandb.ai/me/rnnbench?nw=abc").blocks
    assert "[The sweep's W&B workspace](https://wandb.ai/me/rnnbench?nw=abc)" in text.text


def test_the_report_folder_and_its_results_table_go_to_w_and_b(tmp_path: Path) -> None:
    """Logged into an offline run and read back with W&B's inspector: a table of results.csv, a report artifact."""
    import wandb

    records = fake_sweep()
    (analysis,) = analyses(records)
    folder = write_sweep(analysis, records, tmp_path / "reports", "reports")
    table = results_table(folder)
    rows = list(csv.reader((folder / "results.csv").open()))
    assert table.columns == rows[0] and len(table.data) == len(rows) - 1 == 8
    run = wandb.init(mode="offline", dir=str(tmp_path), project="rnnbench", job_type="report")
    log_report_files(run, analysis, folder)
    run.finish()
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(Path(run.dir).parent)],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    history = [r["history"]["item"] for r in seen if r["type"] == "history"]
    (logged,) = [row for row in history if "results._type" in row]  # the inspector flattens the table's fields
    assert (logged["results._type"], logged["results.ncols"], logged["results.nrows"]) == ("table-file", 15, 8)
    assert len(rows[0]) == 15
    artifacts = [(r["artifact"]["type"], r["artifact"]["name"]) for r in seen if r["type"] == "artifact"]
    assert ("report", "report-cell") in artifacts
