"""Writing a sweep's report folder, `<out>/<sweep>/`, and the index `<out>/README.md` over all sweeps there.

Per sweep: `README.md` (commands, finding, tables, plots), `results.csv` (every run), `index.html` (the same,
self-contained), PNG plots, and `summary.json`, which the index is built from so it lists every sweep reported
into `<out>`, not only the ones of this invocation. Nothing here holds a date or a timing of the report itself.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path

from rnnbench.reports.analysis import Analysis
from rnnbench.reports.findings import RULE
from rnnbench.reports.html import code, image, page, paragraph
from rnnbench.reports.plots import write_plots
from rnnbench.reports.rows import Row
from rnnbench.reports.tables import Table, comparisons_table, findings_table, runs_table, variants_table

SUMMARY = "summary.json"


def launch_command(rows: tuple[Row, ...]) -> str:
    """The multirun command that produced these runs: shared overrides once, varying ones comma-joined."""
    values: dict[str, list[str]] = {}
    for row in rows:
        for override in row.overrides:
            key, _, value = override.partition("=")
            seen = values.setdefault(key, [])
            if value not in seen:
                seen.append(value)
    return shlex.join(["rnnbench-train", "-m", *(f"{k}={','.join(v)}" for k, v in values.items())])


def status_line(rows: tuple[Row, ...]) -> str:
    """'12 runs: 10 finished, 1 failed, 1 diverged.'"""
    counts = Counter(r.status for r in rows)
    parts = ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
    return f"{len(rows)} runs: {parts}."


def _sections(analysis: Analysis) -> list[tuple[str, list[str | Table]]]:
    """The report's sections as (heading, [markdown paragraph or table]); README and HTML render the same list."""
    claim = analysis.claim
    finding: list[str | Table] = [f"**Seed's claim:** {claim.text}"]
    if claim.expectations:
        finding += [findings_table(analysis), f"Rule: {RULE}"]
    sections: list[tuple[str, list[str | Table]]] = [
        ("Finding", finding),
        (
            "Per variant",
            [
                "Statistics over the finished runs; failed, diverged and other (unfinished) runs are counted in their "
                "own columns. `beats_baseline`: runs that beat the task's trivial baseline, out of all runs.",
                variants_table(analysis),
            ],
        ),
    ]
    if analysis.comparisons:
        sections.append(
            (
                f"Against the reference ({claim.reference})",
                [
                    "diff = variant mean - reference mean; Welch's t-test (two-sided); Hedges' g (pooled std, "
                    "small-sample corrected).",
                    comparisons_table(analysis),
                ],
            )
        )
    sections.append(
        ("Runs", [status_line(analysis.rows) + " Also in results.csv.", runs_table(analysis.rows, claim.x)])
    )
    return sections


def readme(analysis: Analysis, report_command: str, plots: list[str]) -> str:
    """The sweep's README.md."""
    lines = [
        f"# Sweep `{analysis.experiment}`",
        "",
        "Regenerate the runs, then this report:",
        "",
        "```bash",
        launch_command(analysis.rows),
        report_command,
        "```",
    ]
    for heading, items in _sections(analysis):
        lines += ["", f"## {heading}", ""]
        lines += "\n\n".join((i.markdown() if isinstance(i, Table) else i).strip("\n") for i in items).splitlines()
    lines += ["", "## Plots", "", "\n\n".join(f"![{name[:-4]}]({name})" for name in plots)]
    return "\n".join(lines) + "\n"


def html_page(analysis: Analysis, report_command: str, folder: Path, plots: list[str]) -> str:
    """The sweep's index.html: the README's content with the plots embedded."""
    commands = code(f"{launch_command(analysis.rows)}\n{report_command}")
    head = ("Commands", [commands])
    body = [(h, [i if isinstance(i, Table) else paragraph(i) for i in items]) for h, items in _sections(analysis)]
    return page(f"Sweep {analysis.experiment}", [head, *body, ("Plots", [image(folder / p) for p in plots])])


def summary(analysis: Analysis) -> dict:
    """What the index needs about a sweep."""
    return {
        "experiment": analysis.experiment,
        "claim": analysis.claim.text,
        "runs": status_line(analysis.rows),
        "findings": [{"verdict": f.verdict, "sentence": f.sentence} for f in analysis.findings],
    }


def write_sweep(analysis: Analysis, out: Path, report_command: str) -> Path:
    """Write `<out>/<experiment>/` and return it."""
    folder = out / analysis.experiment
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(analysis, folder)
    (folder / "README.md").write_text(readme(analysis, report_command, plots))
    (folder / "results.csv").write_text(runs_table(analysis.rows, analysis.claim.x).csv())
    (folder / "index.html").write_text(html_page(analysis, report_command, folder, plots))
    (folder / SUMMARY).write_text(json.dumps(summary(analysis), indent=2, sort_keys=True) + "\n")
    return folder


def write_index(out: Path) -> Path:
    """`<out>/README.md`: one line per sweep reported into `out`, with its verdicts."""
    lines = ["# Reports", "", "One folder per sweep, regenerated by `rnnbench-report` from recorded runs.", ""]
    lines += ["| sweep | seed's claim | runs | verdicts |", "|---|---|---|---|"]
    for path in sorted(out.glob(f"*/{SUMMARY}")):
        info = json.loads(path.read_text())
        verdicts = "; ".join(f["verdict"] for f in info["findings"]) or "(no claim)"
        name = info["experiment"]
        lines.append(f"| [{name}]({path.parent.name}/README.md) | {info['claim']} | {info['runs']} | {verdicts} |")
    index = out / "README.md"
    index.write_text("\n".join(lines) + "\n")
    return index
