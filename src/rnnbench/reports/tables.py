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
from rnnbench.reports.rows import Row


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


def runs_table(rows: tuple[Row, ...], x_name: str | None) -> Table:
    """Every run, failed and diverged ones included, with its status."""
    columns = (
        "task",
        *_x(x_name, x_name or ""),
        "variant",
        "seed",
        "status",
        "metric",
        "value",
        "baseline",
        "beats_baseline",
        "num_parameters",
        "epoch_time_s",
        "epochs",
        "run",
    )
    body = tuple(
        (
            r.task,
            *_x(x_name, fmt_x(r.x)),
            r.variant,
            fmt(r.seed),
            r.status,
            r.metric,
            fmt(r.value),
            fmt(r.baseline),
            fmt(r.beats_baseline),
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
    """Per (task, factor, variant): run counts by status, mean ± std, 95% CI, baseline beaten, params, time."""
    x_name = analysis.claim.x
    columns = (
        "task",
        *_x(x_name, x_name or ""),
        "variant",
        "metric",
        "runs",
        "finished",
        "failed",
        "diverged",
        "other",
        "mean",
        "std",
        "ci95_low",
        "ci95_high",
        "beats_baseline",
        "num_parameters",
        "epoch_time_s",
    )
    rows = tuple(
        (
            v.task,
            *_x(x_name, fmt_x(v.x)),
            v.variant,
            v.metric,
            *_status_cells(v),
            fmt(v.summary.mean),
            fmt(v.summary.std),
            fmt(v.summary.ci_low),
            fmt(v.summary.ci_high),
            f"{v.beats}/{v.runs}",
            fmt(v.num_parameters),
            fmt(v.epoch_time_s),
        )
        for v in analysis.variants
    )
    return Table(columns, rows)


def comparisons_table(analysis: Analysis) -> Table:
    """Each variant against the reference in its group: difference, Welch's t-test, Hedges' g, the group's verdict."""
    x_name = analysis.claim.x
    columns = (
        "task",
        *_x(x_name, x_name or ""),
        "variant",
        "reference",
        "diff",
        "welch_t",
        "df",
        "p",
        "hedges_g",
        "claim",
        "verdict",
    )
    rows = tuple(
        (
            c.variant.task,
            *_x(x_name, fmt_x(c.variant.x)),
            c.variant.variant,
            c.reference.variant,
            fmt(c.result.diff),
            fmt(c.result.t),
            fmt(c.result.df),
            fmt(c.result.p),
            fmt(c.result.g),
            c.expectation.relation if c.expectation else "",
            c.verdict,
        )
        for c in analysis.comparisons
    )
    return Table(columns, rows)


def findings_table(analysis: Analysis) -> Table:
    """Each tested expectation of the seed's claim, its verdict and the sentence stating it."""
    claim = analysis.claim
    rows = tuple(
        (f.expectation.describe(str(claim.reference), claim.x), f.verdict, f.sentence) for f in analysis.findings
    )
    return Table(("tested as", "verdict", "finding"), rows)
