"""Writing a sweep's report folder, `<out>/<sweep>/`, and the index `<out>/README.md` over all sweeps there.

Per sweep: `README.md` (commands, findings, the rule, tables, plots), `results.csv` (every run), `index.html` (the
same, self-contained), PNG plots, `runs.jsonl.gz` (every record the report was made from: `rnnbench-report` reads
it back, so the report regenerates from the repository alone), and `summary.json`, which the index is built from so
it lists every sweep reported into `<out>`, not only the ones of this invocation. Nothing here holds a date or a
timing of the report itself, nor the paths the runs were read from.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from rnnbench.reports.analysis import Analysis
from rnnbench.reports.archive import ARCHIVE_NAME, write_archive
from rnnbench.reports.findings import rule_text
from rnnbench.reports.html import code, image, page, paragraph
from rnnbench.reports.plots import write_plots
from rnnbench.reports.rows import Row
from rnnbench.reports.tables import (
    Table,
    aggregate_table,
    findings_table,
    runs_table,
    tests_table,
    tuning_table,
    variants_table,
)

SUMMARY = "summary.json"


def launch_command(rows: tuple[Row, ...]) -> str:
    """The multirun command that produced these runs: shared overrides once, varying ones comma-joined."""
    values: dict[str, list[str]] = {}
    for row in (r for r in rows if r.stage != "tune"):
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


def _settings_note(analysis: Analysis) -> list[str | Table]:
    """Which keys split runs into separate groups (never pooled), if any."""
    notes = [
        f"{stage} runs of {task} differ in {', '.join(keys)}: each value forms its own group (column `setting`)."
        for (stage, task), keys in sorted(analysis.splits.items())
    ]
    return [" ".join(notes)] if notes else []


def _sections(analysis: Analysis) -> list[tuple[str, list[str | Table]]]:
    """The report's sections as (heading, [markdown paragraph or table]); README and HTML render the same list."""
    study = analysis.study
    claim = study.claim or "(no study block in these runs' config: tables and plots only)"
    finding: list[str | Table] = [f"**Seed's claim:** {claim}"]
    if study.hypotheses:
        finding += [findings_table(analysis), *rule_text(study, analysis.family)]
    sections: list[tuple[str, list[str | Table]]] = [("Findings", finding)]
    if analysis.results:
        sections.append(
            (
                f"Per group, against the reference ({study.reference})",
                [
                    "One row per hypothesis x group: the test's estimate, its one-sided p in the direction the data "
                    "point (`direction`), Holm's adjusted p over the study's family, and the group's verdict.",
                    tests_table(analysis),
                ],
            )
        )
    sections.append(
        (
            "Per variant",
            [
                "Every run counts: failed, diverged and other (unfinished) runs in their own columns. `mean [95% CI]`: "
                "over the finished runs, percentile bootstrap (inside the values' range); `values`: each finished "
                "seed; `learned`: runs that beat the task's trivial baseline or solved it; `solved`: with the exact "
                "(Clopper-Pearson) 95% interval, where the task has a solve criterion.",
                *_settings_note(analysis),
                variants_table(analysis),
            ],
        )
    )
    if analysis.aggregates:
        sections.append(
            (
                "Across groups",
                [
                    "Normalised score per run: (value - baseline) / (perfect - baseline), 0 for a failed or diverged "
                    "run; interquartile mean and mean with 95% stratified bootstrap CIs (runs resampled within each "
                    "group; Agarwal et al. 2021, computed with scipy.stats.bootstrap), and the performance profile "
                    "(profile.png).",
                    aggregate_table(analysis),
                ],
            )
        )
    if analysis.tuning:
        sections.append(
            (
                "Tuning",
                [
                    "Tuning runs (validation only, tuning seeds), per tuned value: the median validation metric and "
                    "the solves; `chosen`: the value the evaluation runs used. A choice at the edge of the grid means "
                    "the best value may lie outside it: widen the grid.",
                    tuning_table(analysis),
                ],
            )
        )
    sections.append(
        (
            "Runs",
            [status_line(analysis.rows) + " Also in results.csv.", runs_table(analysis.rows, study.factor)],
        )
    )
    return sections


def commands(analysis: Analysis, out: str) -> str:
    """How to regenerate the runs and this report; the report command reads the archive written next to it."""
    archive = f"{out.rstrip('/')}/{analysis.experiment}/{ARCHIVE_NAME}"
    return "\n".join(
        [
            "# the runs (a fresh multirun), then the report from their folder:",
            launch_command(analysis.rows),
            f"rnnbench-report <sweep dir> --out {out}",
            "# or this report again, from the records committed with it:",
            f"rnnbench-report {archive} --out {out}",
        ]
    )


def readme(analysis: Analysis, out: str, plots: list[str]) -> str:
    """The sweep's README.md."""
    lines = [f"# Sweep `{analysis.experiment}`", "", "Regenerate:", "", "```bash", commands(analysis, out), "```"]
    for heading, items in _sections(analysis):
        lines += ["", f"## {heading}", ""]
        lines += "\n\n".join((i.markdown() if isinstance(i, Table) else i).strip("\n") for i in items).splitlines()
    lines += ["", "## Plots", "", "\n\n".join(f"![{name[:-4]}]({name})" for name in plots)]
    return "\n".join(lines) + "\n"


def html_page(analysis: Analysis, out: str, folder: Path, plots: list[str]) -> str:
    """The sweep's index.html: the README's content with the plots embedded."""
    head = ("Commands", [code(commands(analysis, out))])
    body = [(h, [i if isinstance(i, Table) else paragraph(i) for i in items]) for h, items in _sections(analysis)]
    return page(f"Sweep {analysis.experiment}", [head, *body, ("Plots", [image(folder / p) for p in plots])])


def summary(analysis: Analysis) -> dict:
    """What the index needs about a sweep."""
    return {
        "experiment": analysis.experiment,
        "claim": analysis.study.claim,
        "runs": status_line(analysis.rows),
        "family": analysis.family,
        "findings": [
            {"id": f.hypothesis.id, "verdict": f.verdict, "sentence": f.sentence, "to_decide": f.to_decide}
            for f in analysis.findings
        ],
    }


def write_sweep(analysis: Analysis, records: list[dict[str, Any]], out: Path, shown_out: str) -> Path:
    """Write `<out>/<experiment>/` (with the records' archive) and return it; `shown_out` is --out as typed."""
    folder = out / analysis.experiment
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(analysis, folder)
    (folder / "README.md").write_text(readme(analysis, shown_out, plots))
    (folder / "results.csv").write_text(runs_table(analysis.rows, analysis.study.factor).csv())
    (folder / "index.html").write_text(html_page(analysis, shown_out, folder, plots))
    (folder / SUMMARY).write_text(json.dumps(summary(analysis), indent=2, sort_keys=True) + "\n")
    write_archive(folder / ARCHIVE_NAME, records)
    return folder


def _index_verdict(f: dict) -> str:
    """'gru_similar: inconclusive (to decide: about 8 seeds per variant)' for one finding of a summary."""
    head = f"{f.get('id', '')}: {f['verdict']}".lstrip(": ")
    return f"{head} (to decide: {f['to_decide']})" if f.get("to_decide") else head


def write_index(out: Path) -> Path:
    """`<out>/README.md`: one line per sweep reported into `out`, with its verdicts and, for an undecided hypothesis,
    how many seeds or what budget would decide it."""
    intro = "One folder per sweep, regenerated by `rnnbench-report` from the run records it holds (`runs.jsonl.gz`)."
    lines = ["# Reports", "", intro, ""]
    lines += ["| sweep | seed's claim | runs | verdicts |", "|---|---|---|---|"]
    for path in sorted(out.glob(f"*/{SUMMARY}")):
        info = json.loads(path.read_text())
        verdicts = "; ".join(_index_verdict(f) for f in info["findings"]) or "(no claim)"
        name = info["experiment"]
        lines.append(f"| [{name}]({path.parent.name}/README.md) | {info['claim']} | {info['runs']} | {verdicts} |")
    index = out / "README.md"
    index.write_text("\n".join(lines) + "\n")
    return index
