"""A W&B workspace per sweep (wandb-workspaces): the runs of one `experiment`, grouped by the study's compared key.

Sections: the primary validation metric against `trainer/global_step`; the test metric against the study's factor
(when it declares one); parameters and time. The compared key and the factor come from the study block in the
runs' own config (`config["study"]`, rnnbench.study.spec), defaulting to `model.cell` as the study spec does.
`build_workspace` only constructs the object (no network), so tests check it offline; `rnnbench-report
--wandb-workspace` saves it, which needs an online login.
"""

from __future__ import annotations

from typing import Any

from rnnbench.study.spec import Study, parse_study
from rnnbench.tracking.wandb_run import STEP_METRIC


def study_of(records: list[dict[str, Any]]) -> Study:
    """The study block the sweep's runs were launched with (the first run that has one), or the default study."""
    block = next((r["config"]["study"] for r in records if (r.get("config") or {}).get("study")), None)
    return parse_study(block) if block else Study()


def build_workspace(records: list[dict[str, Any]], entity: str, project: str) -> Any:
    """The workspace of one experiment's runs (records as run.json or `--source wandb` gives them)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    experiment = records[0]["experiment"]
    metric = records[0]["primary_metric"]
    study = study_of(records)
    group = [expr.Config(key) for key in study.compare]
    sections = [
        ws.Section(
            name=f"val/{metric} per step",
            is_open=True,
            panels=[
                wr.LinePlot(title=f"val/{metric}", x=STEP_METRIC, y=[f"val/{metric}"]),
                wr.LinePlot(title="train/loss", x=STEP_METRIC, y=["train/loss"]),
            ],
        ),
    ]
    if study.factor:
        factor_plot = wr.ScatterPlot(
            title=f"test/{metric} against {study.factor}",
            x=wr.Config(study.factor),
            y=wr.SummaryMetric(f"test/{metric}"),
        )
        sections.append(ws.Section(name=f"against {study.factor}", is_open=True, panels=[factor_plot]))
    sections.append(
        ws.Section(
            name="parameters and time",
            is_open=True,
            panels=[
                wr.BarPlot(title=f"test/{metric}", metrics=[f"test/{metric}"]),
                wr.BarPlot(title="parameters", metrics=["num_parameters"]),
                wr.BarPlot(title="training seconds", metrics=["train_time_s"]),
                wr.BarPlot(title="seconds per epoch", metrics=["perf/epoch_time_s"]),
            ],
        )
    )
    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"rnnbench sweep: {experiment}",
        sections=sections,
        settings=ws.WorkspaceSettings(x_axis=STEP_METRIC),
        runset_settings=ws.RunsetSettings(
            filters=f"Config('experiment') == '{experiment}'",
            groupby=group,
            pinned_columns=[f"summary:test/{metric}", "summary:status", *(f"config:{k}" for k in study.compare)],
        ),
    )


def save_workspace(records: list[dict[str, Any]], entity: str, project: str) -> str:
    """Save one experiment's workspace to `entity/project` (online) and return its URL."""
    return build_workspace(records, entity, project).save().url
