"""A sweep's report as a W&B Report (optional extra `wandb-report`): the same finding and tables, live panels.

`build_report` only constructs the report object (no network), so tests check it offline; `rnnbench-report
--wandb-report` then saves it to W&B, which needs an online login.
"""

from __future__ import annotations

from typing import Any

from rnnbench.reports.analysis import Analysis
from rnnbench.reports.findings import rule_text
from rnnbench.reports.sweep_report import launch_command, status_line
from rnnbench.reports.tables import findings_table, tests_table, variants_table


def build_report(analysis: Analysis, entity: str, project: str) -> Any:
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
        wr.LinePlot(title=f"val/{metric} per epoch", x="epoch", y=[f"val/{metric}"], groupby=compare),
        wr.BarPlot(title=f"test/{metric}", metrics=[f"test/{metric}"], groupby=compare),
        wr.BarPlot(title="parameters", metrics=["num_parameters"], groupby=compare),
        wr.BarPlot(title="seconds per epoch", metrics=["perf/epoch_time_s"], groupby=compare),
    ]
    text = [
        f"**Seed's claim:** {analysis.study.claim}",
        f"```\n{launch_command(analysis.rows)}\n```",
        status_line(analysis.rows),
    ]
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
