"""`rnnbench-report`: regenerate the sweep reports in `--out` (default `reports/`) from recorded runs.

Runs come from local run.json files (multirun folders, run folders or files), from record archives
(`reports/<sweep>/runs.jsonl.gz`, written next to every report), or, with `--source wandb`, from a W&B project
through the public API. Runs are split by experiment (the sweep that launched them); each gets a folder
`<out>/<experiment>/`, and `<out>/README.md` indexes them. The hypotheses come from the study block the runs
recorded in their config. The same runs always give byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.reports.analysis import Analysis, analyse, analyses
from rnnbench.reports.collect import local_records
from rnnbench.reports.cost import BenchError, load_bench
from rnnbench.reports.groups import PoolingError
from rnnbench.reports.rows import experiment_of
from rnnbench.reports.sweep_report import BENCH_PATH, SUMMARY, write_index, write_sweep

if TYPE_CHECKING:
    from rnnbench.study.stages import Launch

__all__ = ["analyses", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench-report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help="run.json files, folders holding them, or runs.jsonl.gz archives"
    )
    parser.add_argument("--out", default="reports", help="report folder (default: reports)")
    parser.add_argument("--source", choices=("local", "wandb"), default="local", help="where the runs are read from")
    parser.add_argument("--entity", help="W&B entity (with --source wandb or --wandb-report)")
    parser.add_argument("--project", default="rnnbench", help="W&B project (default: rnnbench)")
    parser.add_argument("--experiment", help="only this experiment (sweep name)")
    parser.add_argument(
        "--bench", type=Path, help="an rnnbench-bench --json file: each report's time and memory on one implementation"
    )
    parser.add_argument("--wandb-report", action="store_true", help="also save each sweep as a W&B Report (online)")
    parser.add_argument("--wandb-workspace", action="store_true", help="also save a W&B workspace per sweep (online)")
    return parser


def _records(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The runs named on the command line, from the chosen source."""
    if args.source == "wandb":
        import wandb

        from rnnbench.reports.wandb_source import wandb_records

        return wandb_records(wandb.Api(), args.entity, args.project, args.experiment)
    records = local_records(args.paths)
    return [r for r in records if not args.experiment or experiment_of(r) == args.experiment]


def _declared(analysis: Analysis, launch: Launch) -> Analysis:
    """The analysis with what its sweep file declares now: the grid's values and the tuning runs it asks for."""
    from rnnbench.study.stages import grid_values, plan

    return replace(analysis, grid=grid_values(launch), tune_planned=plan(launch).tune_runs)


def _as_given(path: Path) -> str:
    """The bench file as the Regenerate block repeats it: relative to the working directory where it lies under
    it, so that a committed report names no one machine's absolute path."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Console entry."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.source == "local" and not args.paths:
        parser.error("give run folders, run.json files or runs.jsonl.gz archives, or --source wandb")
    if (args.source == "wandb" or args.wandb_report or args.wandb_workspace) and not args.entity:
        parser.error("--entity is needed to read from or write to W&B")
    try:
        records = _records(args)
    except FileNotFoundError as err:
        print(f"rnnbench-report: error: {err}", file=sys.stderr)
        return 2
    if not records:
        where = f"W&B {args.entity}/{args.project}" if args.source == "wandb" else ", ".join(map(str, args.paths))
        print(f"rnnbench-report: error: no runs in {where}", file=sys.stderr)
        return 2
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_experiment.setdefault(experiment_of(record), []).append(record)
    try:
        bench = (_as_given(args.bench), load_bench(args.bench)) if args.bench else None
        if (Path(args.out) / BENCH_PATH).is_file():  # the front page's: checked before any report is written
            load_bench(Path(args.out) / BENCH_PATH, "the front page's bench")
        done = [(analyse(name, by_experiment[name], bench), by_experiment[name]) for name in sorted(by_experiment)]
    except (PoolingError, BenchError) as err:
        print(f"rnnbench-report: error: {err}", file=sys.stderr)
        return 2
    from rnnbench.study.stages import declared_launches, plan  # composes the sweep configs: only here

    launches = declared_launches()
    declared = {name: launch.study for name, launch in launches.items()}
    done = [(_declared(a, launches[a.experiment]) if a.experiment in launches else a, own) for a, own in done]
    out = Path(args.out)
    for analysis, own in done:
        folder = write_sweep(analysis, own, out, args.out)
        print(f"{analysis.experiment}: {folder / 'README.md'}")
        for finding in analysis.findings:
            print(f"  {finding.hypothesis.id}: {finding.sentence}")
        workspace = None
        if args.wandb_workspace:
            from rnnbench.reports.wandb_workspace import save_workspace

            workspace = save_workspace(own, args.entity, args.project)
            print(f"  W&B workspace: {workspace}")
        if args.wandb_report:
            from rnnbench.reports.wandb_report import publish_report

            print(f"  W&B report: {publish_report(analysis, folder, args.entity, args.project, workspace)}")
    waiting = [name for name in declared if not (out / name / SUMMARY).is_file()]
    plans = {name: plan(launches[name]).sentence() for name in waiting}
    print(f"index: {write_index(out, declared, plans)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
