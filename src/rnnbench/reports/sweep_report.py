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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnbench.benchmark import cost_ratios
from rnnbench.reports.analysis import Analysis
from rnnbench.reports.archive import ARCHIVE_NAME, write_archive
from rnnbench.reports.cost import Architecture, Cost, environment_line, load_bench, one_implementation
from rnnbench.reports.findings import rule_text
from rnnbench.reports.html import code, image, page, paragraph
from rnnbench.reports.plots import write_plots
from rnnbench.reports.rows import Row
from rnnbench.reports.tables import (
    Table,
    aggregate_table,
    cost_table,
    findings_table,
    runs_table,
    tests_table,
    tuning_table,
    variants_table,
)
from rnnbench.study.spec import Study, eval_stops
from rnnbench.study.tuning import override_map
from rnnbench.tracking.job_identity import override_key
from rnnbench.tracking.run_record import stamp_seconds

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


STUDY_KEYS = ("+sweep", "seed", "stage", "stop_on_solve", "tuned")  # overrides rnnbench-study sets itself
UNENDED = ("running", "interrupted")  # run statuses a relaunch reruns (tracking.run_record.STATUSES)


def study_command(analysis: Analysis) -> str:
    """`rnnbench-study NAME [overrides]` for runs a study made: the overrides every one of its runs shares, less the
    ones the study command sets itself (stage, seeds, the tuned key, ...). While the study is in progress a value
    every run so far shares may only mean the others have not run yet (the tuning stage runs its grid one task
    after another), so a key the declared sweep grid sweeps is then left out: relaunching the whole study reruns
    nothing that finished, while a narrowed command would silently drop the rest of its grid. A key the sweep file
    fixes to the very value every run has (`model=lstm` in a grid of one) is implied by the file and left out."""
    tuned = analysis.study.tuning.key if analysis.study.tuning else None
    shared = set.intersection(*(set(r.overrides) for r in analysis.rows))
    partial = _progress(analysis) is not None
    own = sorted(
        o
        for o in shared
        if (key := o.partition("=")[0]) not in (*STUDY_KEYS, tuned)
        and not (partial and len(analysis.grid.get(key, ())) > 1)
        and analysis.grid.get(key) != (o.partition("=")[2],)  # the sweep file's own single value: implied
    )
    return shlex.join(["rnnbench-study", analysis.experiment, *own])


def _job_keys(overrides: tuple[str, ...]) -> dict[str, str]:
    """A run's overrides as {key: value} in the order written (study/tuning.override_map: no study block, paths or
    faults), without those rnnbench-study sets itself."""
    mine, own = override_map(overrides), {key.lstrip("+") for key in STUDY_KEYS}
    written = (override_key(o) for o in overrides)
    return {k: mine[k] for k in written if k in mine and k not in own}


def _merged(combos: set[tuple[str, ...]]) -> list[tuple[frozenset[str], ...]]:
    """Value combinations folded into products: two that differ in one position become one with both values there,
    until none does (a full product folds to one; a product minus a corner stays as few as it takes)."""
    merged = [tuple(frozenset([v]) for v in combo) for combo in sorted(combos)]
    while True:
        pair = next(
            (
                (a, b)
                for a in range(len(merged))
                for b in range(a + 1, len(merged))
                if sum(x != y for x, y in zip(merged[a], merged[b], strict=True)) == 1
            ),
            None,
        )
        if pair is None:
            return merged
        a, b = pair
        merged[a] = tuple(x | y for x, y in zip(merged[a], merged[b], strict=True))
        del merged[b]


def extension_commands(analysis: Analysis) -> list[str]:
    """The relaunches that extended the study (`study.seeds=[...]`: more evaluation seeds for an undecided
    hypothesis), each after a comment line, read from the evaluation runs' own overrides: each names exactly the
    groups it extended, by the values of every key the study varies (a relaunch on 4-layer stacks of three variants
    of five is not written as one on every variant)."""
    keyed = [
        (_job_keys(row.overrides), tuple(o for o in row.overrides if o.startswith("study.")))
        for row in analysis.eval_rows
    ]
    seen: dict[str, list[str]] = {}
    for keys, _ in keyed:
        for key, value in keys.items():
            if value not in seen.setdefault(key, []):
                seen[key].append(value)
    varying = [key for key, values in seen.items() if len(values) > 1]
    extended: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for keys, extra in keyed:
        if extra:
            extended.setdefault(extra, set()).add(tuple(keys.get(key, "") for key in varying))
    base, lines = shlex.split(study_command(analysis)), []
    # fewer seeds first, as they ran
    for extra, combos in sorted(extended.items(), key=lambda item: (len(str(item[0])), item[0])):
        for combo in _merged(combos):
            narrowed = [
                f"{key}={','.join(v for v in seen[key] if v in values)}"
                for key, values in zip(varying, combo, strict=True)
                if len(values) < len(seen[key])
            ]
            lines.append(f"# then, for {' '.join(narrowed) or 'every group'}: {' '.join(extra)}")
            lines.append(shlex.join([*base, *narrowed, *extra]))
    return lines


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """The time at least one of the (start, end) spans was running: their union's length. Why: a study resumed
    across sessions (or days) spans the pauses between its launches; the machine time it took is what a reader
    planning a rerun needs."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def compute_line(records: list[dict[str, Any]]) -> str:
    """'Compute: 104 runs, 2.10 h of job time, 1.10 h of wall time with a run going (1.50 h from the first start to
    the last end).' from the records' timestamps."""
    spans = [(stamp_seconds(r.get("started_at")), stamp_seconds(r.get("finished_at"))) for r in records]
    spans = [(a, b) for a, b in spans if a is not None and b is not None]
    if not spans:
        return ""
    job = sum(b - a for a, b in spans) / 3600
    busy = busy_seconds(spans) / 3600
    span = (max(b for _, b in spans) - min(a for a, _ in spans)) / 3600
    return (
        f"Compute: {len(spans)} runs, {job:.2f} h of job time, {busy:.2f} h of wall time with a run going "
        f"({span:.2f} h from the first start to the last end, pauses between launches included)."
    )


def stage_line(analysis: Analysis) -> str:
    """For a study whose evaluation stage has not finished (an interrupted study, reported so that its records travel
    to the next machine): say how far it got, since its hypotheses are then read on the evaluation runs so far, or
    on none. Empty for a finished study: every tuned group holds a run per evaluation seed."""
    progress = _progress(analysis)
    if progress is None:
        return ""
    done, want = progress
    tuned, planned = _tuned(analysis), analysis.tune_planned
    if planned and tuned < planned:
        return (
            f"**In progress: the tuning stage has {tuned} of its {planned} runs**{_unended_note(analysis)} "
            f"(the sweep file's whole grid) and the evaluation stage {done}, so no verdict below is final: "
            f"`{study_command(analysis)}` resumes the study, restoring these records."
        )
    if short := _short_tuned(analysis):
        return (
            f"**In progress: {short} of the {len(analysis.tuning)} tuned groups lack some of their tuning runs** "
            f"(grid x tuning seeds; {tuned} tuning runs recorded, the evaluation stage has {done} of its "
            f"{sum(want.values())}), so no verdict below is final: `{study_command(analysis)}` resumes the study, "
            "restoring these records."
        )
    low, high = min(want.values()), max(want.values())
    seeds = f"x {low} seeds" if low == high else f"of {low} to {high} seeds"
    return (
        f"**In progress: the evaluation stage has {done} of its {sum(want.values())} runs** ({len(want)} tuned "
        f"groups {seeds}; {tuned} tuning runs recorded), so no verdict below is final: "
        f"`{study_command(analysis)}` resumes the study, restoring these records."
    )


def _tuned(analysis: Analysis) -> int:
    """Tuning runs that ended (finished, failed or diverged): an interrupted or running one is still to run."""
    return sum(1 for r in analysis.rows if r.stage == "tune" and r.status not in UNENDED)


def _unended_note(analysis: Analysis) -> str:
    """' (N more interrupted or running: a relaunch reruns them)' for the tuning stage, or ''."""
    n = sum(1 for r in analysis.rows if r.stage == "tune" and r.status in UNENDED)
    return f" ({n} more interrupted or running: a relaunch reruns them)" if n else ""


def pending_line(analysis: Analysis) -> str:
    """For a finished study whose sweep file now asks for more tuning runs than its records hold (a widened tuning
    grid, or tasks and factor values not launched yet): say so, so that a verdict is read as final for the grid
    recorded, not for the file as it stands. Empty otherwise, and while the study is in progress (stage_line)."""
    tuned = _tuned(analysis)
    if stage_line(analysis) or not analysis.tune_planned or tuned >= analysis.tune_planned:
        return ""
    return (
        f"**The sweep file asks for more than these records hold:** {analysis.tune_planned} tuning runs at its "
        f"current grid, {tuned} recorded. The verdicts below are final for the runs recorded here; "
        f"`rnnbench-study {analysis.experiment}` runs the rest (finished runs are skipped, records restored)."
    )


def late_lines(analysis: Analysis) -> list[str]:
    """Say which hypotheses were declared (or changed) after runs had been recorded, and whether any of those
    runs were evaluation runs: a claim declared after its test data were seen was not pre-registered."""
    out = []
    for hid, (evals, tunes) in analysis.late.items():
        when = f"after {tunes} tuning run(s) and {evals} evaluation run(s) had been recorded"
        if evals:
            why = "its verdict reads evaluation runs recorded before it was declared: not a pre-registered test"
        else:
            why = "before any evaluation run, so its test reads only runs recorded after it was declared"
        out.append(f"**Declared late.** `{hid}` was declared {when}: {why}.")
    return out


def superseded_line(analysis: Analysis) -> str:
    """Say that evaluation runs of an earlier protocol are in the records but in no figure (analysis.
    current_protocol), so that the runs count and the archive do not seem to disagree."""
    if eval_stops(analysis.study):
        why = "trained for the whole budget, where this study's claims read only solves and steps to solve and its"
        why += " evaluation runs now stop at their first solved check"
    else:
        why = "stopped at their first solved check, where this study's claims read the test metric and its"
        why += " evaluation runs now train for the whole budget"
    return (
        f"**{analysis.superseded} evaluation runs of an earlier protocol are left out** ({why}). They stay in the "
        f"archive; `rnnbench-study {analysis.experiment}` reruns those jobs under the current rule."
    )


def _progress(analysis: Analysis) -> tuple[int, dict[tuple, int]] | None:
    """(evaluation runs done, seeds wanted per tuned group) of a study whose tuning or evaluation stage has not
    finished; None for a finished study (or runs no study tuned). A group whose tuning runs fall short of the
    grid x tuning seeds is unfinished even where its evaluation runs are all there (a relaunch that narrowed the
    grid, then an interrupted one): its choice, and so its evaluation, may still change."""
    if not analysis.tuning:
        return None
    runs = {(v.task, v.setting, v.x, v.variant): v.runs for v in analysis.variants}
    groups = {(t.task, t.setting, t.x, t.variant) for t in analysis.tuning}
    asked = _seeds_asked(analysis)
    want = {g: asked.get(g, len(analysis.study.seeds)) for g in groups}
    done = sum(min(runs.get(g, 0), want[g]) for g in groups)
    return None if done >= sum(want.values()) and not _short_tuned(analysis) else (done, want)


def _short_tuned(analysis: Analysis) -> int:
    """How many tuned groups have fewer tuning runs than the tuning grid x its seeds."""
    tuning = analysis.study.tuning
    per_group = len(tuning.grid) * len(tuning.seeds) if tuning else 0
    return sum(sum(n for _, n in t.solved) < per_group for t in analysis.tuning)


def _seeds_asked(analysis: Analysis) -> dict[tuple, int]:
    """The evaluation seeds each evaluated group's launch asked for: the most that any of its runs' study block
    declared (a relaunch may add seeds for one task only, `study.seeds=[...]`), the study's own where none did."""
    own = len(analysis.study.seeds)
    return {
        (v.task, v.setting, v.x, v.variant): max(len((r.config.get("study") or {}).get("seeds") or ()) for r in v.rows)
        or own
        for v in analysis.variants
    }


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


def cost_text(cost: Cost | None, archs: Mapping[str, frozenset[Architecture]]) -> list[str | Table]:
    """The report's cost section: what the epoch times can and cannot say here, and the bench's ratios."""
    ran = "; ".join(f"{v}: {', '.join(sorted({a.impl for a in found}))}" for v, found in archs.items())
    if one_implementation(archs):
        epoch = f"Every variant ran on one implementation ({ran}): the epoch times above compare them."
    else:
        epoch = (
            f"The variants ran on different implementations ({ran}; `impl: auto` picks each cell's fastest), so "
            "the epoch times above compare implementations as much as cells: they are not compared here."
        )
    if (cost is None or not cost.rows) and one_implementation(archs):
        return [epoch]
    if cost is None:
        return [epoch + " `rnnbench-report --bench FILE` adds time and memory measured on one implementation."]
    if not cost.rows:
        return [epoch + f" The bench ({cost.source}) measures none of these variants against the reference."]
    return [
        epoch,
        f"Time (median step) and peak memory as ratios measured on one implementation by `rnnbench-bench` "
        f"({cost.source}: {cost.environment}); parameters exact. `train`: forward + backward; `forward`: "
        "inference; `equal_params`: each cell's hidden size chosen to match the LSTM's parameter count.",
        cost_table(cost),
    ]


def _quotes_bench(analysis: Analysis) -> bool:
    """Whether the report's Cost section reads the bench (so its Regenerate block must pass it again): there is a
    Cost section, and its variants either ran on different implementations or the bench has ratios for them."""
    has_section = len(analysis.archs) > 1
    return (
        has_section
        and analysis.cost is not None
        and (bool(analysis.cost.rows) or not one_implementation(analysis.archs))
    )


def _sections(analysis: Analysis) -> list[tuple[str, list[str | Table]]]:
    """The report's sections as (heading, [markdown paragraph or table]); README and HTML render the same list."""
    study = analysis.study
    claim = study.claim or "(no study block in these runs' config: tables and plots only)"
    finding: list[str | Table] = [f"**Seed's claim:** {claim}"]
    if study.hypotheses:
        finding += [findings_table(analysis), *late_lines(analysis), *rule_text(study, analysis.family)]
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
    if len(analysis.archs) > 1:
        sections.append(("Cost", cost_text(analysis.cost, analysis.archs)))
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
    bench = f" --bench {analysis.cost.source}" if analysis.cost and _quotes_bench(analysis) else ""
    if any(r.stage in ("tune", "eval") for r in analysis.rows):
        runs = [
            "# the study (tune, select, evaluate; resumes, restoring the committed records):",
            study_command(analysis),
            *extension_commands(analysis),
        ]
        runs.append(f"rnnbench-report outputs/studies/{analysis.experiment}{bench} --out {out}")
    else:
        runs = ["# the runs (a fresh multirun), then the report from their folder:", launch_command(analysis.rows)]
        runs.append(f"rnnbench-report <sweep dir>{bench} --out {out}")
    return "\n".join(
        [
            *runs,
            "# or this report again, from the records committed with it:",
            f"rnnbench-report {archive}{bench} --out {out}",
        ]
    )


def readme(analysis: Analysis, out: str, plots: list[str], compute: str = "") -> str:
    """The sweep's README.md."""
    lines = [f"# Sweep `{analysis.experiment}`", "", "Regenerate:", "", "```bash", commands(analysis, out), "```"]
    lines += ["", compute] if compute else []
    lines += ["", progress] if (progress := stage_line(analysis) or pending_line(analysis)) else []
    lines += ["", superseded_line(analysis)] if analysis.superseded else []
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


def summary(analysis: Analysis, plots: list[str], compute: str = "") -> dict:
    """What the index (the study's front page) needs about a sweep."""
    return {
        "experiment": analysis.experiment,
        "claim": analysis.study.claim,
        "runs": status_line(analysis.rows),
        "compute": compute,
        **({"in_progress": True} if stage_line(analysis) else {}),  # only when true: finished studies' files stay
        **({"tuning_declared": [_tuned(analysis), analysis.tune_planned]} if pending_line(analysis) else {}),
        "family": analysis.family,
        "findings": [
            {
                "id": f.hypothesis.id,
                "claim": f.hypothesis.claim,
                "figure": f.hypothesis.figure_name if f.hypothesis.figure_name in plots else None,
                "verdict": f.verdict,
                "sentence": f.sentence,
                "to_decide": f.to_decide,
            }
            for f in analysis.findings
        ],
    }


def write_sweep(analysis: Analysis, records: list[dict[str, Any]], out: Path, shown_out: str) -> Path:
    """Write `<out>/<experiment>/` (with the records' archive) and return it; `shown_out` is --out as typed."""
    folder = out / analysis.experiment
    folder.mkdir(parents=True, exist_ok=True)
    plots = write_plots(analysis, folder)
    compute = compute_line(records)
    (folder / "README.md").write_text(readme(analysis, shown_out, plots, compute))
    (folder / "results.csv").write_text(runs_table(analysis.rows, analysis.study.factor).csv())
    (folder / "index.html").write_text(html_page(analysis, shown_out, folder, plots))
    (folder / SUMMARY).write_text(json.dumps(summary(analysis, plots, compute), indent=2, sort_keys=True) + "\n")
    write_archive(folder / ARCHIVE_NAME, records)
    return folder


def _index_verdict(f: dict, in_progress: bool = False) -> str:
    """'inconclusive (to decide: about 8 seeds per variant)' for one finding of a summary; 'in progress (...)' for
    a study whose evaluation stage has not run."""
    if in_progress:
        return f"in progress ({f['verdict']} so far)"
    return f"{f['verdict']} (to decide: {f['to_decide']})" if f.get("to_decide") else f["verdict"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


BENCH_PATH = Path("bench/bench.json")  # under --out: the bench document the front page's cost claims read
COST_CLAIMS = (  # the seed's cost claims: (claim, kind, numerator or cell) -> cost_ratios rows
    ("GRU: fewer parameters and less time than the LSTM", "cell", "gru"),
    ("bidirectional: twice the parameters, compute and memory", "direction", "lstm"),
    ("peepholes: minimal overhead", "cell", "peephole_lstm"),
)


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def cost_claims(doc: dict[str, Any], source: str) -> list[str]:
    """The front page's cost section: each seed's cost claim with the bench's same-implementation ratios at equal
    hidden size, unidirectional cells (bi / uni: the LSTM), as the range over the benchmark shapes. No verdict: each
    figure is one process's median, and repeated runs of the bench moved ratios by up to ~15 % on this machine."""
    rows = [r for r in cost_ratios(doc) if r["sizing"] == "equal_hidden" and r["direction"] in ("uni", None)]
    lines = [
        f"Cost claims, on one implementation (`rnnbench-bench`, {source}: {environment_line(doc)}): ratios at equal "
        "hidden size, the range over the benchmark shapes (BxTxIxH "
        f"{', '.join(sorted({r['shape'] for r in rows}))}); `train` is forward + backward. Repeated bench runs "
        "moved these ratios by up to ~15 % on this 2-core machine, so read differences below that as none.",
        "",
        "| seed's claim | ratio | impl | parameters | train time | forward time | train peak memory |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for claim, kind, name in COST_CLAIMS:
        mine = [r for r in rows if r["kind"] == kind and name == (r["numerator"] if kind == "cell" else r["cell"])]
        for impl in sorted({r["impl"] for r in mine}):
            train = [r for r in mine if r["impl"] == impl and r["mode"] == "train"]
            forward = [r for r in mine if r["impl"] == impl and r["mode"] == "forward"]
            if not train:
                continue
            what = f"{name} / lstm" if kind == "cell" else f"{name}: bi / uni"
            fwd = _span([r["time"] for r in forward]) if forward else "-"
            lines.append(
                f"| {claim} | {what} | {impl} | {_span([r['params'] for r in train])} | "
                f"{_span([r['time'] for r in train])} | {fwd} | {_span([r['peak_bytes'] for r in train])} |"
            )
    return lines


def write_index(out: Path, declared: dict[str, Study] | None = None, plans: dict[str, str] | None = None) -> Path:
    """`<out>/README.md`, the study's front page: each hypothesis of every sweep reported into `out`, its verdict,
    the figure that shows it and what the literature found (the `literature` its sweep file declares now: commentary,
    not part of any run); then the sweeps, their runs and compute; then the declared studies with no report yet and,
    from `plans`, what running each takes (its hypotheses stay undecided until then)."""
    declared, plans = declared or {}, plans or {}
    infos = [json.loads(path.read_text()) for path in sorted(out.glob(f"*/{SUMMARY}"))]
    intro = "The study's front page, regenerated by `rnnbench-report` from the run records each sweep's folder holds"
    lines = ["# Reports", "", f"{intro} (`runs.jsonl.gz`): every number below comes from recorded runs.", ""]
    lines += ["| claim | study | verdict | figure | literature |", "|---|---|---|---|---|"]
    for info in infos:
        name = info["experiment"]
        literature = {h.id: h.literature for h in declared[name].hypotheses} if name in declared else {}
        for f in info["findings"]:
            claim = _cell(f.get("claim") or f.get("sentence", ""))
            figure = f"[{f['figure'][:-4]}]({name}/{f['figure']})" if f.get("figure") else ""
            study = f"[{name}]({name}/README.md) `{f.get('id', '')}`"
            said = _cell(literature.get(f.get("id", ""), ""))
            verdict = _cell(_index_verdict(f, info.get("in_progress", False)))
            lines.append(f"| {claim} | {study} | {verdict} | {figure} | {said} |")
    lines += ["", "| sweep | seed's claim | runs | compute |", "|---|---|---|---|"]
    for info in infos:
        name = info["experiment"]
        compute = _cell(info.get("compute", ""))
        runs = info["runs"]
        if "tuning_declared" in info:
            recorded, declared_runs = info["tuning_declared"]
            runs += f" Its sweep file now asks for {declared_runs} tuning runs, {recorded} recorded: the rest not run."
        lines.append(f"| [{name}]({name}/README.md) | {_cell(info['claim'])} | {runs} | {compute} |")
    bench = out / BENCH_PATH
    if bench.is_file():
        lines += [
            "",
            *cost_claims(
                load_bench(bench, "the front page's bench"), f"[{BENCH_PATH.as_posix()}]({BENCH_PATH.as_posix()})"
            ),
        ]
    reported = {info["experiment"] for info in infos}
    waiting = sorted(name for name in declared if name not in reported)
    if waiting:
        lines += ["", "Declared studies not reported yet (run `rnnbench-study NAME`, then `rnnbench-report`):", ""]
        for name in waiting:
            planned = f" To decide its hypotheses: {plans[name]}." if name in plans else ""
            lines.append(f"- `{name}`: {_cell(declared[name].claim)}{planned}")
    index = out / "README.md"
    index.write_text("\n".join(lines) + "\n")
    return index
