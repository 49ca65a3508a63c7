"""A sweep's report as a W&B Report (optional extra `wandb-report`): the same finding and tables, live panels.

`build_report` only constructs the report object (no network), so tests check it offline; `rnnbench-report
--wandb-report` then saves it to W&B, which needs an online login (`publish_report`): first a `report` run of the
sweep's group logs `results.csv` as a `wandb.Table` and the report folder as an artifact, then the Report is saved,
linking to the sweep's workspace when `--wandb-workspace` saved one.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rnnbench.reports.analysis import Analysis
from rnnbench.reports.findings import rule_text
from rnnbench.reports.sweep_report import launch_command, status_line
from rnnbench.reports.tables import findings_table, tests_table, variants_table


def build_report(analysis: Analysis, entity: str, project: str, workspace_url: str | None = None) -> Any:
    """A `wandb_workspaces` Report for one sweep: finding and tables as Markdown, panels over the sweep's runs."""
    import wandb_workspaces.reports.v2 as wr

    metric = analysis.rows[0].metric
    compare = f"config.{analysis.study.compare[0]}"
    runset = wr.Runset(
        entity=entity,
        project=project,
        name=analysis.experiment,
        filters=f"Config('experiment') == '{analysis.experiment}'",
        groupby=[compare],
    )
    panels = [
        wr.LinePlot(title=f"val/{metric} per step", x="trainer/global_step", y=[f"val/{metric}"], groupby=compare),
        wr.BarPlot(title=f"test/{metric}", metrics=[f"test/{metric}"], groupby=compare),
        wr.BarPlot(title="parameters", metrics=["num_parameters"], groupby=compare),
        wr.BarPlot(title="seconds per epoch", metrics=["perf/epoch_time_s"], groupby=compare),
    ]
    text = [
        f"**Seed's claim:** {analysis.study.claim}",
        f"```\n{launch_command(analysis.rows)}\n```",
        status_line(analysis.rows),
    ]
    if workspace_url:
        text.append(f"[The sweep's W&B workspace]({workspace_url}): every run, grouped by `{compare}`.")
    if analysis.study.hypotheses:
        text += [findings_table(analysis).markdown(), *rule_text(analysis.study, analysis.family)]
    text.append(variants_table(analysis).markdown())
    if analysis.results:
        text.append(tests_table(analysis).markdown())
    return wr.Report(
        entity=entity,
        project=project,
        title=f"rnnbench sweep: {analysis.experiment}",
        description=analysis.study.claim,
        blocks=[
            wr.H1(text=f"Sweep {analysis.experiment}"),
            wr.MarkdownBlock(text="\n\n".join(text)),
            wr.PanelGrid(runsets=[runset], panels=panels),
        ],
    )


def _cell(value: str) -> Any:
    """A results.csv cell as a number where it is one (None where empty), so the W&B table sorts and plots it."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value or None


def results_table(folder: Path) -> Any:
    """The sweep's `results.csv` (one row per run) as a `wandb.Table`."""
    import wandb

    with open(folder / "results.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    return wandb.Table(columns=header, data=[[_cell(v) for v in row] for row in rows])


def log_report_files(run: Any, analysis: Analysis, folder: Path) -> None:
    """Log the report's results as a table and its folder as a `report` artifact into `run`."""
    import wandb

    run.log({"results": results_table(folder)})
    artifact = wandb.Artifact(f"report-{analysis.experiment}", type="report", description=analysis.study.claim)
    artifact.add_dir(str(folder))
    run.log_artifact(artifact)


def publish_report(
    analysis: Analysis, folder: Path, entity: str, project: str, workspace_url: str | None = None
) -> str:
    """Upload the report folder and results table (a `report` run), save the W&B Report; returns its URL."""
    import wandb

    run = wandb.init(
        entity=entity,
        project=project,
        group=analysis.experiment,
        job_type="report",
        name=f"report {analysis.experiment}",
    )
    try:
        log_report_files(run, analysis, folder)
    finally:
        run.finish()
    return build_report(analysis, entity, project, workspace_url).save().url
