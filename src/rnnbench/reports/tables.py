"""Tables of a sweep report, built once as strings and rendered as Markdown, CSV or HTML.

Cells are formatted here and only here (fixed significant digits, no timestamps), and rows come pre-sorted, so
the same runs always give byte-identical files.
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass

from rnnbench.reports.analysis import Analysis, VariantStats
from rnnbench.reports.cost import Cost
from rnnbench.reports.rows import Row
from rnnbench.reports.stats import Interval


def fmt(value: object) -> str:
    """One cell: whole numbers as integers, other floats to 4 significant digits, '' for missing, 'nan' if undefined."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return str(int(value)) if value.is_integer() and abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def fmt_x(x: float | None) -> str:
    """A swept factor value: integral values without a decimal point."""
    return "" if x is None else fmt(int(x) if x.is_integer() else x)


@dataclass(frozen=True)
class Table:
    """Column names and rows of already-formatted cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def markdown(self) -> str:
        """A GitHub Markdown table ('|' inside cells escaped)."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """CSV text with a header line and '\\n' line ends."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()

    def html(self) -> str:
        """An HTML <table> with escaped cells."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _x(x_name: str | None, value: str) -> tuple[str, ...]:
    """The swept-factor cell, present only in sweeps that have a factor."""
    return (value,) if x_name else ()


def _ci(interval: Interval | None) -> str:
    """'0.5 [0.2, 0.8]'; the estimate alone where no interval can be given; '' for none."""
    if interval is None or math.isnan(interval.estimate):
        return ""
    if math.isnan(interval.low):
        return fmt(interval.estimate)
    return f"{fmt(interval.estimate)} [{fmt(interval.low)}, {fmt(interval.high)}]"


def _where(analysis: Analysis) -> tuple[str, ...]:
    """Column names locating a group: task, setting (where runs split into settings), factor."""
    x_name = analysis.study.factor
    return ("task", *(("setting",) if analysis.has_settings else ()), *_x(x_name, x_name or ""))


def _place(analysis: Analysis, task: str, setting: str, x: float | None) -> tuple[str, ...]:
    return (task, *((setting,) if analysis.has_settings else ()), *_x(analysis.study.factor, fmt_x(x)))


def runs_table(rows: tuple[Row, ...], x_name: str | None) -> Table:
    """Every run, tuning runs, failed and diverged ones included, with its status."""
    columns = (
        "stage",
        "task",
        *_x(x_name, x_name or ""),
        "variant",
        "seed",
        "status",
        "metric",
        "value",
        "baseline",
        "beats_baseline",
        "solved",
        "steps_to_solve",
        "num_parameters",
        "epoch_time_s",
        "epochs",
        "run",
    )
    body = tuple(
        (
            r.stage or "",
            r.task,
            *_x(x_name, fmt_x(r.x)),
            r.variant,
            fmt(r.seed),
            r.status,
            r.metric,
            fmt(r.value),
            fmt(r.baseline),
            fmt(r.beats_baseline),
            fmt(r.solved),
            fmt(r.steps_to_solve),
            fmt(r.num_parameters),
            fmt(r.epoch_time_s),
            fmt(r.epochs),
            r.run,
        )
        for r in rows
    )
    return Table(columns, body)


def _status_cells(v: VariantStats) -> tuple[str, ...]:
    return (
        fmt(v.runs),
        fmt(v.status["finished"]),
        fmt(v.status["failed"]),
        fmt(v.status["diverged"]),
        fmt(v.status["other"]),
    )


def variants_table(analysis: Analysis) -> Table:
    """Per cell: run counts by status, mean with its bootstrap CI, learned and solved counts, params, time."""
    columns = (
        *_where(analysis),
        "variant",
        "metric",
        "runs",
        "finished",
        "failed",
        "diverged",
        "other",
        "mean [95% CI]",
        "values",
        "learned",
        "solved [95% CI]",
        "num_parameters",
        "epoch_time_s",
    )
    rows = tuple(
        (
            *_place(analysis, v.task, v.setting, v.x),
            v.variant,
            v.metric,
            *_status_cells(v),
            _ci(v.mean),
            " ".join(fmt(x) for x in v.values),
            f"{v.learned}/{v.runs}",
            "" if v.solved is None else f"{v.n_solved}/{v.runs} {_ci(v.solved).partition(' ')[2]}",
            fmt(v.num_parameters),
            fmt(v.epoch_time_s),
        )
        for v in analysis.variants
    )
    return Table(columns, rows)


def tests_table(analysis: Analysis) -> Table:
    """Each hypothesis in each group: status, effect, raw and Holm-adjusted p, the group's verdict, what decides it."""
    columns = (
        "hypothesis",
        *_where(analysis),
        "variant",
        "reference",
        "runs",
        "estimate",
        "p",
        "direction",
        "p_holm",
        "verdict",
        "to decide",
    )
    rows = tuple(
        (
            r.hypothesis.id,
            *_place(analysis, r.task, r.setting, r.x),
            r.hypothesis.variant,
            str(analysis.study.reference),
            f"{r.variant.runs} vs {r.reference.runs}",
            r.estimate if r.status == "tested" else r.status,
            fmt(r.p) if r.tested else "",
            ("claimed" if r.towards_claim else "opposite") if r.tested else "",
            fmt(r.p_adj) if r.tested else "",
            r.verdict,
            r.to_decide,
        )
        for r in analysis.results
    )
    return Table(columns, rows)


def findings_table(analysis: Analysis) -> Table:
    """Each hypothesis of the study, its verdict over groups, and what would decide it if undecided."""
    rows = tuple((f.hypothesis.id, f.described, f.verdict, f.sentence, f.to_decide) for f in analysis.findings)
    return Table(("hypothesis", "tested as", "verdict", "finding", "to decide"), rows)


def aggregate_table(analysis: Analysis) -> Table:
    """Per variant: normalised score over the study's groups, IQM and mean with stratified bootstrap CIs."""
    rows = tuple((a.variant, fmt(a.strata), fmt(a.runs), _ci(a.iqm), _ci(a.mean)) for a in analysis.aggregates)
    return Table(("variant", "groups", "runs", "IQM [95% CI]", "mean [95% CI]"), rows)


def tuning_table(analysis: Analysis) -> Table:
    """Per tuning cell: the tuned values, the median validation metric and solves at each, and the choice."""
    rows = tuple(
        (
            *_place(analysis, s.task, s.setting, s.x),
            s.variant,
            " ".join(fmt(v) for v in s.values),
            " ".join(fmt(s.median(i)) for i in range(len(s.values))),
            " ".join(f"{k}/{n}" for k, n in s.solved),
            fmt(s.chosen),
            "at the edge of the grid" if s.at_edge else "",
        )
        for s in analysis.tuning
    )
    key = analysis.study.tuning.key if analysis.study.tuning else "tuned value"
    return Table((*_where(analysis), "variant", key, "median val metric", "solved", "chosen", "flag"), rows)


def cost_table(cost: Cost) -> Table:
    """One row per bench ratio: shape, mode, sizing, implementation, what is divided, time, memory, parameters."""
    rows = []
    for r in cost.rows:
        what = f"{r['numerator']} / {r['denominator']}" + (f" ({r['direction']})" if r["kind"] == "cell" else "")
        what = what if r["kind"] == "cell" else f"{r['cell']}: bi / uni"
        rows.append(
            (r["shape"], r["mode"], r["sizing"], r["impl"], what, f"{r['time']:.2f}", f"{r['peak_bytes']:.2f}",
             f"{r['params']:.2f}")
        )  # fmt: skip
    columns = ("shape BxTxIxH", "mode", "sizing", "impl", "ratio", "time", "peak memory", "parameters")
    return Table(columns, tuple(rows))
